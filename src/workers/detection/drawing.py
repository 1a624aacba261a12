"""A detection job's picture: its image with each box and label drawn, as a PNG.

The detection worker, which decodes the image anyway, keeps the upload when it has at most
`DETECTION_ANNOTATED_MAX_PIXELS`, else a preview (`preview`: a JPEG scaled down to that). The API draws
on the preview on request (`GET /v1/jobs/<id>/annotated.png`, through `ANNOTATED`, the renderer the spec
declares), so a job never pays for a drawing nobody looks at
(encoding a photo as PNG takes about as long as detecting in it), and a drawing never decodes more than
`DETECTION_ANNOTATED_MAX_PIXELS` pixels, however large the upload (a 40 MP PNG alone is 120 MB decoded).
The drawing is cached within its owner's `UPLOAD_BYTES_KEPT` (`common.kept`), else drawn on each request.
Pillow only (imported inside the functions): nothing here loads a model.
"""

from __future__ import annotations

import io
import zlib
from typing import TYPE_CHECKING, Any

from common import kept, records
from common.errors import NotFound
from common.settings import get_settings

if TYPE_CHECKING:
    import redis
    from PIL.Image import Image

    from workers.detection.spec import DetectionSettings

MAX_PIXELS = 4_000_000  # the default of DETECTION_ANNOTATED_MAX_PIXELS
PREVIEW_QUALITY = 90
MIN_PREVIEW_PIXELS = 64 * 64  # a JPEG of a few KB, under any upload of more than `max_pixels`
PALETTE = ("#FF3838", "#2C99A8", "#FF9D97", "#3DDB86", "#FFB21D", "#00C2FF", "#CFD231", "#344593",
           "#48F90A", "#FF701F", "#92CC17", "#6473FF", "#1A9334", "#0018EC", "#00D4BB", "#FF95C8")


def annotate(data: bytes, result: dict[str, Any], max_pixels: int = MAX_PIXELS) -> bytes:
    """The image of `data` with the boxes of a detection `result` (in the upright image's pixels)."""
    canvas = upright(data, max_pixels)
    scale = canvas.width / result["image"]["width"]
    draw_boxes(canvas, result["detections"], scale)
    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def fit(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """`size` scaled down, keeping its proportions, to at most `max_pixels` pixels (never up)."""
    width, height = size
    if width * height <= max_pixels:
        return width, height
    scale = (max_pixels / (width * height)) ** 0.5
    height = max(1, int(height * scale))
    return max(1, min(int(width * scale), max_pixels // height)), height  # a 1-pixel-high strip stays under too


def upright(data: bytes, max_pixels: int = MAX_PIXELS) -> Image:
    """The image turned as its EXIF orientation says (as detection saw it), at most `max_pixels`."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("RGB", fit(opened.size, max_pixels))  # JPEG: decode at 1/2, 1/4 or 1/8 size when enough
        opened.load()
        image = opened if opened.mode == "RGB" else opened.convert("RGB")  # no copy of an RGB image
        ImageOps.exif_transpose(image, in_place=True)
    image.thumbnail(fit(image.size, max_pixels), Image.Resampling.BILINEAR)
    return image


def preview(image: Image, max_pixels: int = MAX_PIXELS, max_bytes: int | None = None) -> bytes | None:
    """What `annotate` will draw on, made where `image` (the upright decoded upload) is at hand: None when
    it has at most `max_pixels` (the upload itself will do), else `image` scaled down to that, as a JPEG of
    at most `max_bytes` (the upload's size: what its owner's kept bytes reserved), smaller again if needed."""
    from PIL import Image as PilImage

    if image.width * image.height <= max_pixels:
        return None
    while True:
        scaled = image.resize(fit(image.size, max_pixels), PilImage.Resampling.BILINEAR, reducing_gap=2.0)
        out = io.BytesIO()
        scaled.save(out, format="JPEG", quality=PREVIEW_QUALITY)
        # A PNG of a few colours can be far smaller than any JPEG of its pixels: a quarter of them each time.
        if max_bytes is None or out.tell() <= max_bytes or max_pixels <= MIN_PREVIEW_PIXELS:
            return out.getvalue()
        max_pixels //= 4


def draw_boxes(canvas: Image, detections: list[dict[str, Any]], scale: float = 1.0) -> None:
    """Each box and its `label confidence`, the most confident on top, a colour per label."""
    from PIL import ImageDraw, ImageFont

    pen = ImageDraw.Draw(canvas)
    line = max(2, round(max(canvas.size) / 400))
    font = ImageFont.load_default(size=max(12, round(max(canvas.size) / 50)))
    for det in sorted(detections, key=lambda d: d["confidence"]):
        x1, y1, x2, y2 = (v * scale for v in det["box"])
        color = PALETTE[zlib.crc32(det["label"].encode()) % len(PALETTE)]
        pen.rectangle((x1, y1, x2, y2), outline=color, width=line)
        text = f"{det['label']} {det['confidence']:.2f}"
        left, top, right, bottom = pen.textbbox((x1, y1), text, font=font)
        lift = bottom - top + 2 * line if y1 - (bottom - top) - 2 * line >= 0 else 0  # above the box if it fits
        pen.rectangle((left - line, top - lift - line, right + line, bottom - lift + line), fill=color)
        pen.text((x1, y1 - lift), text, fill="white", font=font)


class AnnotatedImage:
    """`annotated.png`: drawn once, then cached for the rest of its job record's life, if it fits under its owner's
    `UPLOAD_BYTES_KEPT` (counted there); past it, drawn on each request."""

    def cached(self, r: redis.Redis, job_id: str) -> bytes | None:
        png: bytes | None = r.get(records.annotated_key(job_id))  # type: ignore[assignment]
        return png

    def draw(self, r: redis.Redis, job_id: str, result: dict[str, Any], settings: DetectionSettings) -> bytes:
        # A preview when the upload had more than DETECTION_ANNOTATED_MAX_PIXELS, else the upload itself.
        image: bytes | None = r.get(records.preview_key(job_id)) or records.load_kept_upload(r, job_id)  # type: ignore[assignment]
        if image is None:
            raise NotFound(f"Job {job_id}'s image is no longer stored.", code="no_annotated_image")
        png = annotate(image, result, settings.annotated_max_pixels)
        # cached (for the rest of the record's life) only within its owner's UPLOAD_BYTES_KEPT, and counted there
        kept.cache(r, records.job_key(job_id), records.annotated_key(job_id), png, get_settings())
        return png


ANNOTATED = AnnotatedImage()

__all__ = ["ANNOTATED", "MAX_PIXELS", "annotate", "draw_boxes", "fit", "preview", "upright"]
