"""Model jobs through the platform next to the same model called directly in this process, in one run.

For sentiment (VADER: one text, a 256-text batch) and detection (yolov8n in PyTorch, then ONNX Runtime):
model load time (imports included, in a fresh process), per-job latency p50 (one job at a time) and
throughput (several clients at once; directly: 1000 / p50 in this one process).
Through the platform a job is HTTP submit + `GET ?wait` with the default pools (sentiment 2
processes, detection 1 process with every core's threads); directly it is the core's functions.

    .venv/bin/python bench/models.py                  # about 5 minutes on 2 cores
    .venv/bin/python bench/models.py --weights models/yolov8n.pt

Without trained weights (offline) detection runs on yolov8n with random weights: the same network and
the same computation, but it finds nothing, so its NMS and drawing have less to do than on real photos.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from support import images, services  # noqa: E402
from support.isolated import isolated_platform  # noqa: E402
from support.wait import until  # noqa: E402

TEXT = "The staff were friendly and the food was excellent, but the room was a little noisy."
BATCH = [TEXT, "I hate waiting in line.", "The meeting is at noon."] * 85 + [TEXT]  # 256 texts
PHOTO = images.photo("bus.jpg")


def timed(action: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def throughput(action: Callable[[], object], n: int, clients: int) -> float:
    """Actions per second with `clients` at once."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: action(), range(n)))
    return n / (time.perf_counter() - started)


def row(what: str, load_s: float | None, latency_ms: list[float], per_s: float, unit: str) -> str:
    load = f"{load_s:6.2f} s" if load_s is not None else "     –  "
    return f"  {what:<40} load {load}   p50 {statistics.median(latency_ms):8.1f} ms   {per_s:8.1f} {unit}/s"


class Client:
    """Jobs through one platform's HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def run(self, job_type: str, **kwargs: Any) -> dict[str, Any]:
        job = requests.post(f"{self.url}/v1/jobs/{job_type}", timeout=30, **kwargs).json()
        record = requests.get(f"{self.url}/v1/jobs/{job['job_id']}", params={"wait": 30}, timeout=40).json()
        assert record["status"] == "SUCCESS", record
        return record

    def model_load_s(self, queue: str) -> float:
        def loaded() -> dict[str, Any] | None:
            model = requests.get(f"{self.url}/ready", timeout=5).json()["queues"][queue].get("model")
            return model if model and model["status"] == "loaded" else None

        return float(until(loaded, 180, f"the {queue} model to load")["load_s"])


def cold_load_s(load: str) -> float:
    """Seconds to import and load a model in a fresh process, as a worker child does at its start."""
    code = f"import time; t = time.perf_counter(); {load}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT / "src"),
                         "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0"}, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def sentiment_direct(args: argparse.Namespace) -> list[str]:
    from workers.sentiment import core

    load_s = cold_load_s("from workers.sentiment import core; core.load_model('vader')")
    engine = core.load_model("vader")
    one, batch = timed(lambda: core.analyze([TEXT], engine), args.texts), timed(lambda: core.analyze(BATCH, engine), 20)
    return [row("direct  VADER, 1 text", load_s, one, 1000 / statistics.median(one), "texts"),
            row("direct  VADER, 256 texts", load_s, batch, 256_000 / statistics.median(batch), "texts")]


def sentiment_platform(args: argparse.Namespace) -> list[str]:
    with isolated_platform("sentiment", 2, SENTIMENT_MODEL="vader") as (url, _):
        client = Client(url)
        load_s = client.model_load_s("sentiment")
        timed(lambda: client.run("sentiment", json={"text": TEXT}), 10)  # warm connections
        one = timed(lambda: client.run("sentiment", json={"text": TEXT}), args.texts)
        one_per_s = throughput(lambda: client.run("sentiment", json={"text": TEXT}), args.texts, args.clients)
        batch = timed(lambda: client.run("sentiment", json={"texts": BATCH}), 20)
        jobs_per_s = throughput(lambda: client.run("sentiment", json={"texts": BATCH}), 40, args.clients)
    return [row("platform VADER, 1 text (2 processes)", load_s, one, one_per_s, "texts"),
            row("platform VADER, 256 texts (2 processes)", load_s, batch, jobs_per_s * 256, "texts")]


def detection_direct(weights: Path, args: argparse.Namespace) -> list[str]:
    from workers.detection import core

    load = f"core.load_model({str(weights)!r}, [], threads={args.threads})"
    load_s = cold_load_s(f"from workers.detection import core; {load}")
    model = core.load_model(str(weights), [], threads=args.threads)
    timed(lambda: core.detect(core.decode(PHOTO), model), 3)
    job = timed(lambda: core.detect(core.decode(PHOTO), model), args.images)
    return [row(f"direct  {model.backend}, bus.jpg: decode+detect", load_s, job, 1000 / statistics.median(job),
                "images")]


def detection_platform(weights: Path, args: argparse.Namespace) -> list[str]:
    files = {"image": ("bus.jpg", PHOTO)}
    with isolated_platform("detection", 1, DETECTION_MODEL=str(weights)) as (url, _):
        client = Client(url)
        load_s = client.model_load_s("detection")
        timed(lambda: client.run("detection", files=files), 3)
        job = timed(lambda: client.run("detection", files=files), args.images)
        per_s = throughput(lambda: client.run("detection", files=files), args.images, args.clients)
        job_id = client.run("detection", files=files)["job_id"]
        png = timed(lambda: requests.get(f"{url}/v1/jobs/{job_id}/annotated.png", timeout=30).content, 10)
    backend = "onnxruntime" if weights.suffix == ".onnx" else "pytorch"
    return [row(f"platform {backend}, bus.jpg (1 process)", load_s, job, per_s, "images"),
            row("platform GET annotated.png (drawn on request)", None, png, 1000 / statistics.median(png), "images")]


def detection_weights(args: argparse.Namespace) -> tuple[Path, Path]:
    from workers.detection import weights

    folder = ROOT / "run" / "bench-models"
    pt = args.weights or folder / "yolov8n-untrained.pt"
    if not pt.is_file():
        weights.untrained(pt)
    onnx = pt.with_suffix(".onnx")
    if not onnx.is_file() or onnx.stat().st_mtime < pt.stat().st_mtime:
        onnx = weights.export_onnx(pt)
    return pt, onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, help="a trained .pt (default: yolov8n with random weights)")
    parser.add_argument("--texts", type=int, default=200, help="single-text jobs per measure")
    parser.add_argument("--images", type=int, default=30, help="images per measure")
    parser.add_argument("--clients", type=int, default=4, help="clients at once for throughput")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch threads for the direct calls (default: every core, as the detection pool)")
    args = parser.parse_args()
    services.require_services()
    pt, onnx = detection_weights(args)
    lines = ["sentiment", *sentiment_direct(args), *sentiment_platform(args), f"detection ({pt.name}, {onnx.name})"]
    for path in (pt, onnx):
        lines += detection_direct(path, args)
        lines += detection_platform(path, args)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
