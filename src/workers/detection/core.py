"""Objects in an image: ultralytics YOLO (PyTorch `.pt` or ONNX Runtime `.onnx` weights), boxes in the
original image's pixels, and a drawing of them for people to look at."""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import InputError

if TYPE_CHECKING:
    from PIL.Image import Image

WEIGHT_SUFFIXES = (".pt", ".onnx")
DRAWING_MAX_SIDE = 2048  # the drawing is a preview: larger images are scaled down to this
PALETTE = ("#FF3838", "#2C99A8", "#FF9D97", "#3DDB86", "#FFB21D", "#00C2FF", "#CFD231", "#344593",
           "#48F90A", "#FF701F", "#92CC17", "#6473FF", "#1A9334", "#0018EC", "#00D4BB", "#FF95C8")


@dataclass(frozen=True)
class Detector:
    name: str
    yolo: Any = field(repr=False)
    backend: str  # "pytorch" or "onnxruntime"


def find_weights(name: str, folders: Sequence[Path]) -> Path | None:
    """An absolute path as given, or the first of `folders` that holds `name`."""
    path = Path(name).expanduser()
    if path.is_absolute():
        return path if path.is_file() else None
    return next((folder / path for folder in folders if (folder / path).is_file()), None)


def missing_message(name: str, folders: Sequence[Path]) -> str:
    where = " or ".join(f"{folder}/" for folder in folders)
    return (f"The detection weights {name!r} are not on this machine: put the file in {where} (on a machine with "
            f"internet, `make models` fetches yolov8n.pt), then restart the detection workers.")


def load_model(name: str, folders: Sequence[Path], *, threads: int = 1, allow_downloads: bool = False) -> Detector:
    """Find the weights in `folders` (then ultralytics' weights folder), load them and run one warm-up image."""
    from workers import torchvision_nms

    torchvision_nms.register()  # before ultralytics imports torchvision
    import torch

    torch.set_num_threads(threads)
    from ultralytics import YOLO
    from ultralytics.utils import SETTINGS

    search = [*folders, Path(SETTINGS["weights_dir"])]
    path = find_weights(name, search)
    if path is None and allow_downloads and not Path(name).is_absolute():
        path = _download(name, Path(folders[0]))
    if path is None:
        raise InputError(missing_message(name, search), code="model_unavailable")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise InputError(f"The detection weights {str(path)!r} are not a .pt or .onnx file.", code="model_unavailable")
    yolo = YOLO(str(path), task="detect")
    if yolo.task != "detect":
        raise InputError(f"The weights {str(path)!r} are a {yolo.task} model, not a detection model.",
                         code="model_unavailable")
    detector = Detector(path.name, yolo, "onnxruntime" if path.suffix == ".onnx" else "pytorch")
    detect(_blank(), detector)  # the first call builds the graph and imports the rest: not a user's job
    return detector


def _download(name: str, folder: Path) -> Path | None:
    """ultralytics' own download of its published weights (only with ALLOW_DOWNLOADS)."""
    from ultralytics.utils.downloads import attempt_download_asset

    folder.mkdir(parents=True, exist_ok=True)
    try:
        path = Path(attempt_download_asset(folder / name))
    except Exception:  # offline, or not a published name: the caller reports where to put the file
        return None
    return path if path.is_file() else None


def _blank() -> Image:
    from PIL import Image

    return Image.new("RGB", (64, 64))


def decode(data: bytes) -> Image:
    """The upload as an RGB image, turned upright as its EXIF orientation says."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            return ImageOps.exif_transpose(opened).convert("RGB")
    # ImportError: ultralytics replaces `Image.open` with one that, on a file Pillow cannot identify,
    # tries to load a HEIF plugin, which is not installed (and never auto-installed: YOLO_AUTOINSTALL=0).
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError, Image.DecompressionBombError) as exc:
        raise InputError(f"The image cannot be decoded (JPEG, PNG, WebP): {exc}", code="undecodable_image") from None


def detect(image: Image, model: Detector, confidence: float = 0.25, max_detections: int = 100) -> dict[str, Any]:
    """Labelled boxes `[x1, y1, x2, y2]` in the image's own pixels, most confident first."""
    started = time.perf_counter()
    result = model.yolo.predict(image, conf=confidence, max_det=max_detections, verbose=False)[0]
    inference_ms = (time.perf_counter() - started) * 1000
    boxes = result.boxes
    detections = [
        {"label": str(result.names[int(cls)]), "confidence": round(float(conf), 4),
         "box": [round(float(v), 1) for v in xyxy]}
        for xyxy, conf, cls in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), strict=True)
    ]
    return {"detections": detections, "image": {"width": image.width, "height": image.height},
            "model": model.name, "inference_ms": round(inference_ms, 1)}


def draw(image: Image, detections: list[dict[str, Any]]) -> bytes:
    """A PNG of the image with each box and its label (scaled down to `DRAWING_MAX_SIDE` if larger)."""
    from PIL import Image, ImageDraw, ImageFont

    scale = min(1.0, DRAWING_MAX_SIDE / max(image.size))
    canvas = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR) \
        if scale < 1 else image.copy()
    pen = ImageDraw.Draw(canvas)
    line = max(2, round(max(canvas.size) / 400))
    font = ImageFont.load_default(size=max(12, round(max(canvas.size) / 50)))
    for det in sorted(detections, key=lambda d: d["confidence"]):  # the most confident on top
        x1, y1, x2, y2 = (v * scale for v in det["box"])
        color = PALETTE[zlib.crc32(det["label"].encode()) % len(PALETTE)]
        pen.rectangle((x1, y1, x2, y2), outline=color, width=line)
        text = f"{det['label']} {det['confidence']:.2f}"
        left, top, right, bottom = pen.textbbox((x1, y1), text, font=font)
        lift = bottom - top + 2 * line if y1 - (bottom - top) - 2 * line >= 0 else 0  # above the box if it fits
        pen.rectangle((left - line, top - lift - line, right + line, bottom - lift + line), fill=color)
        pen.text((x1, y1 - lift), text, fill="white", font=font)
    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=3)
    return out.getvalue()


__all__ = ["Detector", "decode", "detect", "draw", "find_weights", "load_model", "missing_message"]
