"""A detection job's picture: its image with each box and label drawn, as a PNG.

The API draws it on request (`GET /v1/jobs/<id>/annotated.png`) from the job's kept upload and its
result, so a job never pays for a drawing nobody looks at (encoding a photo as PNG takes about as long
as detecting in it). Pillow only: nothing here loads a model.
"""

from __future__ import annotations

import io
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_SIDE = 2048  # a preview: larger images are scaled down to this
PALETTE = ("#FF3838", "#2C99A8", "#FF9D97", "#3DDB86", "#FFB21D", "#00C2FF", "#CFD231", "#344593",
           "#48F90A", "#FF701F", "#92CC17", "#6473FF", "#1A9334", "#0018EC", "#00D4BB", "#FF95C8")


def annotate(data: bytes, result: dict[str, Any], max_side: int = MAX_SIDE) -> bytes:
    """The image of `data` with the boxes of a detection `result` (in the upright image's pixels)."""
    canvas = upright(data, max_side)
    scale = canvas.width / result["image"]["width"]
    draw_boxes(canvas, result["detections"], scale)
    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def upright(data: bytes, max_side: int = MAX_SIDE) -> Image:
    """The image turned as its EXIF orientation says (as detection saw it), at most `max_side` a side."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("RGB", (max_side, max_side))  # JPEG: decode at 1/2, 1/4 or 1/8 size when that is enough
        image = ImageOps.exif_transpose(opened).convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return image


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


__all__ = ["MAX_SIDE", "annotate", "draw_boxes", "upright"]
