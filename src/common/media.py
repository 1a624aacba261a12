"""Recognise uploads by their first bytes, never by their name."""

from __future__ import annotations

import io

from common.errors import InputError, Oversized

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")


def sniff_image(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def check_image(data: bytes, limit: int) -> None:
    """Refuse an image with more than `limit` pixels from its header alone (Pillow opens lazily:
    nothing is decoded here, so a small file that would inflate to gigabytes costs nothing)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise Oversized(f"The image has too many pixels: {exc}", code="too_many_pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"The image's header cannot be read: {exc}", code="undecodable_image") from None
    if width * height > limit:
        raise Oversized(f"The image is {width}×{height} ({width * height / 1e6:.1f} megapixels); the limit is "
                        f"{limit / 1e6:g} megapixels.", code="too_many_pixels")


def sniff_audio(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None
