"""Objects in an image: ultralytics YOLO (PyTorch `.pt` or ONNX Runtime `.onnx` weights), boxes in the
original image's pixels. (The drawing of them, `annotated.png`, is made on request: `workers.detection.drawing`.)"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import InputError

if TYPE_CHECKING:
    from PIL.Image import Image

WEIGHT_SUFFIXES = (".pt", ".onnx")


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
    if path is None and allow_downloads and folders and not Path(name).is_absolute():
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
    if detector.backend == "onnxruntime":
        _calm_onnx_session(yolo, path, threads)
        detect(_blank(), detector)
    return detector


def _calm_onnx_session(yolo: Any, path: Path, threads: int) -> None:
    """ultralytics opens ONNX Runtime's session with its defaults: a thread per core, spinning between runs.
    Where cores are shared (other pools, other jobs), the spinning made the median image 1.7× slower here.
    Open it again with `threads` threads that sleep when idle (the same fastest time)."""
    import onnxruntime

    backend = getattr(getattr(yolo.predictor, "model", None), "backend", None)
    if backend is None or not hasattr(backend, "session"):  # another ultralytics layout: keep its session
        return
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    backend.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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
    return detect_many([image], model, [(confidence, max_detections)])[0]


def detect_many(images: Sequence[Image], model: Detector, options: Sequence[tuple[float, int]]) -> list[dict[str, Any]]:
    """`detect` of each image with its own `(confidence, max_detections)`, with one call of the model per image
    size. ultralytics runs a list of same-sized images each at the rectangle it gets alone, but letterboxes a
    list of mixed sizes to one square: with the test weights that changed most boxes of a photo, and took about
    1.4× the time of single calls here."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        by_size.setdefault(image.size, []).append(i)
    results: dict[int, dict[str, Any]] = {}
    for indices in by_size.values():
        found = _detect_same_size([images[i] for i in indices], model, [options[i] for i in indices])
        results.update(zip(indices, found, strict=True))
    return [results[i] for i in range(len(images))]


def _detect_same_size(images: list[Image], model: Detector, options: list[tuple[float, int]]) -> list[dict[str, Any]]:
    """One call of the model keeping the boxes above the lowest confidence, up to the highest count; then each
    image's are cut to its own: the boxes it keeps alone, since in NMS only a box at least as confident
    suppresses another. `inference_ms` is the whole call's."""
    started = time.perf_counter()
    results = model.yolo.predict(images, conf=min(c for c, _ in options), max_det=max(m for _, m in options),
                                 verbose=False)
    inference_ms = round((time.perf_counter() - started) * 1000, 1)
    return [{"detections": _detections(result, confidence, most),
             "image": {"width": image.width, "height": image.height}, "model": model.name, "inference_ms": inference_ms}
            for image, result, (confidence, most) in zip(images, results, options, strict=True)]


def _detections(result: Any, confidence: float, most: int) -> list[dict[str, Any]]:
    """The boxes of one image's `result` (most confident first) above `confidence`, at most `most`."""
    boxes = result.boxes[result.boxes.conf > confidence][:most]  # a tensor compare, as ultralytics' own filter
    return [
        {"label": str(result.names[int(cls)]), "confidence": round(float(conf), 4),
         "box": [round(float(v), 1) for v in xyxy]}
        for xyxy, conf, cls in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), strict=True)
    ]


__all__ = ["Detector", "decode", "detect", "detect_many", "find_weights", "load_model", "missing_message"]
