"""`python -m workers.detection.weights`: put YOLO weights in `models/` (what `make models` runs).

On a machine with internet it downloads ultralytics' published weights (`yolov8n.pt` unless named)
and, with `--onnx`, also exports them for ONNX Runtime (`yolov8n.onnx`; set DETECTION_MODEL to it).
Copy the files to the workers' `models/` folder if those have no internet.

`--untrained` works offline: it saves the same network with random weights. It computes exactly as
much as the trained one (for benchmarks and tests) but finds nothing real: never serve it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from common.settings import get_settings
from workers import torchvision_nms


def fetch(name: str, folder: Path) -> Path:
    """Download published weights into `folder` (ultralytics' own download; needs internet)."""
    torchvision_nms.register()
    from ultralytics.utils.downloads import attempt_download_asset

    folder.mkdir(parents=True, exist_ok=True)
    try:
        path = Path(attempt_download_asset(folder / name))
    except Exception as exc:  # ultralytics raises several kinds when offline
        raise SystemExit(f"{name} could not be downloaded (is this machine online?): {exc}") from None
    if not path.is_file():
        raise SystemExit(f"{name} could not be downloaded: it is not one of ultralytics' published weights")
    return path


def export_onnx(weights: Path, imgsz: int = 640) -> Path:
    """The same model for ONNX Runtime, saved next to `weights` (works offline; needs onnx, onnxslim).
    With dynamic input sizes, so that a 3:4 photo is run at 480 × 640 as in PyTorch, not padded to 640²."""
    torchvision_nms.register()
    from ultralytics import YOLO

    with warnings.catch_warnings():  # torch.onnx's tracer warns at length about what YOLO's export handles
        warnings.simplefilter("ignore")
        return Path(YOLO(str(weights)).export(format="onnx", imgsz=imgsz, dynamic=True))


def untrained(path: Path, config: str = "yolov8n.yaml", seed: int = 0) -> Path:
    """The network of `config` with random weights and the COCO class names, saved as a `.pt`."""
    torchvision_nms.register()
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import ROOT, YAML

    torch.manual_seed(seed)
    model = YOLO(config)
    network: Any = model.model
    network.names = YAML.load(ROOT / "cfg/datasets/coco.yaml")["names"]
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.detection.weights", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="yolov8n.pt", help="weights file name (default: yolov8n.pt)")
    parser.add_argument("--onnx", action="store_true", help="also export an .onnx for ONNX Runtime")
    parser.add_argument("--untrained", action="store_true", help="random weights, offline (benchmarks, tests)")
    parser.add_argument("--folder", type=Path, default=get_settings().models_dir, help="default: MODELS_DIR")
    args = parser.parse_args(argv)
    path = untrained(args.folder / args.name) if args.untrained else fetch(args.name, args.folder)
    print(f"weights: {path}")
    if args.onnx:
        print(f"onnx:    {export_onnx(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
