"""Detection throughput: images per second through the platform, with PyTorch weights and with the
same model exported to ONNX, next to ultralytics `predict` on the same image in a loop in one process
with the same threads.

    .venv/bin/python -m bench.detection [--size small|full] [--repeat 3] [--images 24] [--engines pytorch,onnx]

Two platform figures: end to end (HTTP upload + `GET ?wait` from 2 clients, which share the 2 cores with
the API and the pool), and the worker's (the pool, paused while the images are queued over HTTP, then
resumed; rate from the jobs' finish stamps, the first ones left out). The pool is the default
(`DETECTION_CONCURRENCY`: 2 processes, each with cores ÷ processes torch threads); the direct loop gets
every core's threads in its one process, the same threads in all. The target applies to the worker's
figure: in a deployment the clients and the API do not run on the worker's cores.

The weights are yolov8n built offline from `yolov8n.yaml` by the tests' recipe
(`tests/support/models.py`: random weights biased to see people, so each photo yields a few dozen boxes
through the real code path); the photo is ultralytics' `bus.jpg` (810×1080). Each repetition runs the
platform, then the direct loop.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench.figures import ROOT, arguments, repeats, row, write_result
from bench.jobs import drained_rate, model_ready, multipart, run_jobs, submit_many
from bench.platform import platform
from common.settings import get_settings
from tests.support import images, models

CLIENTS = 4
PHOTO = images.ASSETS / "bus.jpg"


def weights(engine: str) -> Path:
    """The test weights (.pt), or their ONNX export (made once under run/bench-models/, then reused)."""
    pt = models.detection_weights()
    if engine == "pytorch":
        return pt
    folder = ROOT / "run" / "bench-models"
    onnx = folder / pt.with_suffix(".onnx").name
    if onnx.is_file() and onnx.stat().st_mtime >= pt.stat().st_mtime:
        return onnx
    from workers.detection.weights import export_onnx

    work = folder / f".export-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        exported = export_onnx(Path(shutil.copy(pt, work / pt.name)))
        os.replace(exported, onnx)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return onnx


def direct(path: Path, threads: int) -> Any:
    """ultralytics' own model, as a user loads it, with the pool's torch threads; warmed up."""
    from workers import torchvision_nms

    torchvision_nms.register()  # a CPU torch with the registry's torchvision (see docs/models.md)
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(threads)
    model = YOLO(str(path), task="detect")
    for _ in range(2):
        model.predict(str(PHOTO), verbose=False)
    return model


def direct_rate(model: Any, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        model.predict(str(PHOTO), verbose=False)
    return n / (time.perf_counter() - started)


def measure_engine(engine: str, n: int, args: Any) -> list[dict[str, Any]]:
    path = weights(engine)
    threads = len(os.sched_getaffinity(0))  # the direct loop's; the pool's processes share them (JobTask.torch_threads)
    processes = get_settings().types["detection"].concurrency
    body, content_type = multipart("image", PHOTO.name, PHOTO.read_bytes())
    ours: list[float] = []
    pool: list[float] = []
    base: list[float] = []
    with platform({"detection": processes}, DETECTION_MODEL=str(path)) as stack:
        model_ready(stack, "detection")
        url = str(stack.url)
        run_jobs(url, 2, CLIENTS, "detection", body, content_type)  # warm up
        model = direct(path, threads)
        for _ in range(repeats(args)):
            ours.append(n / run_jobs(url, n, CLIENTS, "detection", body, content_type))
            pool.append(drained_rate(stack, "detection",
                                     lambda: submit_many(url, n, "detection", body, content_type, CLIENTS)))
            base.append(direct_rate(model, n))
    baseline = f"YOLO.predict in a loop, {threads} threads"
    return [row(f"{engine} ({path.suffix}), end to end", "images/s", ours, base, baseline_label=baseline,
                platform_label=f"POST image + GET ?wait, {CLIENTS} clients on the same cores, {processes} processes"),
            row(f"{engine} ({path.suffix}), worker", "images/s", pool, base, target=(">=", 0.9),
                baseline_label=baseline, platform_label=f"the pool ({processes} processes) on images queued over HTTP")]


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--images", type=int, default=None, help="images per measure (default 24; small: 6)")
    parser.add_argument("--engines", default=None, help="comma-separated: pytorch, onnx (small: pytorch)")
    args = parser.parse_args()
    n = args.images or (6 if args.size == "small" else 24)
    engines = (args.engines or ("pytorch" if args.size == "small" else "pytorch,onnx")).split(",")
    rows = [r for engine in engines for r in measure_engine(engine.strip(), n, args)]
    write_result(args, "detection", "Detection throughput", rows, method=__doc__.split("\n\n")[0].replace("\n", " "),
                 extra={"images": n, "clients": CLIENTS, "photo": PHOTO.name})


if __name__ == "__main__":
    main()
