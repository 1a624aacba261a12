"""Images for detection tests: the two photos ultralytics ships, and images made here."""

from __future__ import annotations

import importlib.util
import io
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

_spec = importlib.util.find_spec("ultralytics")
assert _spec is not None and _spec.origin is not None, "ultralytics is not installed"
ASSETS = Path(_spec.origin).parent / "assets"
PHOTOS = {"bus.jpg": (810, 1080), "zidane.jpg": (1280, 720)}  # name → (width, height)


def photo(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


def scene(width: int, height: int, fmt: str = "PNG", orientation: int | None = None) -> bytes:
    """Shapes on a plain background; `orientation` writes that EXIF tag (JPEG)."""
    image = Image.new("RGB", (width, height), (90, 140, 200))
    pen = ImageDraw.Draw(image)
    pen.rectangle((width // 8, height // 4, width // 2, height * 3 // 4), fill=(200, 40, 40))
    pen.ellipse((width * 5 // 8, height // 8, width * 7 // 8, height // 2), fill=(30, 160, 60))
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation  # Orientation
    image.save(out, format=fmt, exif=exif.tobytes())
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that only declares its size (its pixel data is empty): enough for a header check, nothing to decode."""
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        _chunk(b"IDAT", b"") + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
