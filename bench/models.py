"""Model jobs through the platform next to the same model called directly in this process, in one run.

For sentiment (VADER: one text, a 256-text batch) and detection (yolov8n in PyTorch, then ONNX Runtime):
model load time (imports included, in a fresh process), per-job latency p50 (one job at a time) and
throughput (several clients at once; directly: 1000 / p50 in this one process).
Through the platform a job is HTTP submit + `GET ?wait` (sentiment: the default pool of 2 processes;
detection: 1 process with every core's threads, the lowest latency for a lone image); directly it is
the core's functions.

    .venv/bin/python -m bench.models                  # about 12 minutes on 2 cores (3 runs)
    .venv/bin/python -m bench.models --weights models/yolov8n.pt

Without trained weights (offline) detection runs on yolov8n with random weights: the same network and
the same computation, but it finds nothing, so its NMS and drawing have less to do than on real photos.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import requests

from launcher.platform import isolated, until
from launcher.sandbox import unreachable
from tests.support import images

ROOT = Path(__file__).resolve().parents[1]

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


class Row(NamedTuple):
    what: str
    load_s: float | None
    p50_ms: float
    per_s: float
    unit: str
    rss_mb: float | None = None  # a worker child's peak resident memory once its model is loaded


def row(what: str, load_s: float | None, latency_ms: list[float], per_s: float, unit: str,
        rss_mb: float | None = None) -> Row:
    return Row(what, load_s, statistics.median(latency_ms), per_s, unit, rss_mb)


def report(runs: list[list[Row]]) -> str:
    """Each figure as the median over the runs; the p50's range over the runs in brackets."""
    lines = [f"  {'':<46} {'load':>8}   {'p50 (range over runs)':>26}   {'throughput':>17}   child RSS"]
    for rows in zip(*runs, strict=True):
        loads = [r.load_s for r in rows if r.load_s is not None]
        load = f"{statistics.median(loads):6.2f} s" if loads else "      – "
        p50s = [r.p50_ms for r in rows]
        spread = f"[{min(p50s):.1f}–{max(p50s):.1f}]"
        lines.append(f"  {rows[0].what:<46} {load}   {statistics.median(p50s):8.1f} ms {spread:>16}   "
                     f"{statistics.median(r.per_s for r in rows):8.1f} {rows[0].unit + '/s':<8}   {_mb(rows)}")
    return "\n".join(lines)


def _mb(rows: tuple[Row, ...]) -> str:
    sizes = [r.rss_mb for r in rows if r.rss_mb is not None]
    return f"{statistics.median(sizes):5.0f} MB" if sizes else ""


class Client:
    """Jobs through one platform's HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def run(self, job_type: str, **kwargs: Any) -> dict[str, Any]:
        job = requests.post(f"{self.url}/v1/jobs/{job_type}", timeout=30, **kwargs).json()
        for _ in range(3):  # a long-poll may end before the job does: ask again
            record = requests.get(f"{self.url}/v1/jobs/{job['job_id']}", params={"wait": 30}, timeout=40).json()
            if record["status"] in ("SUCCESS", "FAILURE", "REVOKED"):
                break
        assert record["status"] == "SUCCESS", record
        return dict(record)

    def model(self, queue: str) -> dict[str, Any]:
        """The model status a worker child reported once loaded (load_s, rss_mb)."""
        def loaded() -> dict[str, Any] | None:
            model = requests.get(f"{self.url}/ready", timeout=5).json()["queues"][queue].get("model")
            return model if model and model["status"] == "loaded" else None

        return dict(until(loaded, 180, f"the {queue} model to load"))


def cold_load_s(load: str) -> float:
    """Seconds to import and load a model in a fresh process, as a worker child does at its start."""
    code = f"import time; t = time.perf_counter(); {load}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0"}


def sentiment_direct(args: argparse.Namespace) -> list[Row]:
    from workers.sentiment import core

    load_s = cold_load_s("from workers.sentiment import core; core.load_model('vader')")
    engine = core.load_model("vader")
    one, batch = timed(lambda: core.analyze([TEXT], engine), args.texts), timed(lambda: core.analyze(BATCH, engine), 20)
    return [row("direct  VADER, 1 text", load_s, one, 1000 / statistics.median(one), "texts"),
            row("direct  VADER, 256 texts", load_s, batch, 256_000 / statistics.median(batch), "texts")]


def sentiment_platform(args: argparse.Namespace) -> list[Row]:
    with isolated({"sentiment": 2}, name="bench", API_WORKERS="1", SENTIMENT_MODEL="vader") as platform:
        url = str(platform.url)
        client = Client(url)
        model = client.model("sentiment")
        timed(lambda: client.run("sentiment", json={"text": TEXT}), 10)  # warm connections
        one = timed(lambda: client.run("sentiment", json={"text": TEXT}), args.texts)
        one_per_s = throughput(lambda: client.run("sentiment", json={"text": TEXT}), args.texts, args.clients)
        batch = timed(lambda: client.run("sentiment", json={"texts": BATCH}), 20)
        jobs_per_s = throughput(lambda: client.run("sentiment", json={"texts": BATCH}), 40, args.clients)
    load_s, rss = model["load_s"], model["rss_mb"]
    return [row("platform VADER, 1 text (2 processes)", load_s, one, one_per_s, "texts", rss),
            row("platform VADER, 256 texts (2 processes)", load_s, batch, jobs_per_s * 256, "texts", rss)]


def detection_direct(paths: list[Path], args: argparse.Namespace) -> list[Row]:
    """Both backends in one fresh process, one image each in turn (so both see the same machine load);
    their load times each in a fresh process of its own, as a worker child loads."""
    command = [sys.executable, "-m", "bench.models", "--images", str(args.images), "--threads", str(args.threads),
               "--direct", *map(str, paths)]
    done = subprocess.run(command, cwd=ROOT, env=child_env(), capture_output=True, text=True, check=True)
    samples = json.loads(done.stdout.strip().splitlines()[-1])  # after whatever ultralytics prints
    rows = []
    for path in paths:
        load_s = cold_load_s(f"from workers.detection import core; core.load_model({str(path)!r}, [], "
                             f"threads={args.threads})")
        backend, job = samples[str(path)]
        rows.append(row(f"direct  {backend}, bus.jpg: decode+detect", load_s, job, 1000 / statistics.median(job),
                        "images"))
    return rows


def direct_child(paths: list[str], images: int, threads: int) -> None:
    from workers.detection import core

    models = {path: core.load_model(path, [], threads=threads) for path in paths}
    samples: dict[str, list[float]] = {path: [] for path in paths}
    for i in range(images + 3):
        for path, model in models.items():
            started = time.perf_counter()
            core.detect(core.decode(PHOTO), model)
            if i >= 3:  # after a warm-up
                samples[path].append((time.perf_counter() - started) * 1000)
    print("\n" + json.dumps({path: (models[path].backend, samples[path]) for path in paths}))


def detection_platform(weights: Path, args: argparse.Namespace) -> list[Row]:
    files = {"image": ("bus.jpg", PHOTO)}
    with isolated({"detection": 1}, name="bench", API_WORKERS="1", DETECTION_MODEL=str(weights)) as platform:
        url = str(platform.url)
        client = Client(url)
        model = client.model("detection")
        timed(lambda: client.run("detection", files=files), 3)
        job = timed(lambda: client.run("detection", files=files), args.images)
        per_s = throughput(lambda: client.run("detection", files=files), args.images, args.clients)
        job_id = client.run("detection", files=files)["job_id"]
        png = timed(lambda: requests.get(f"{url}/v1/jobs/{job_id}/annotated.png", timeout=30).content, 10)
    backend = "onnxruntime" if weights.suffix == ".onnx" else "pytorch"
    return [row(f"platform {backend}, bus.jpg (1 process)", model["load_s"], job, per_s, "images", model["rss_mb"]),
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
    parser.add_argument("--repeat", type=int, default=3, help="runs; each figure is the median over them")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch threads for the direct calls (default: every core, as the detection pool)")
    parser.add_argument("--direct", nargs="+", help=argparse.SUPPRESS)  # the fresh process of `detection_direct`
    args = parser.parse_args()
    if args.direct:
        direct_child(args.direct, args.images, args.threads)
        return
    problem = unreachable()
    if problem:
        raise SystemExit(problem)
    pt, onnx = detection_weights(args)
    runs = []
    for run in range(1, args.repeat + 1):
        rows = [*sentiment_direct(args), *sentiment_platform(args), *detection_direct([pt, onnx], args)]
        for path in (pt, onnx):
            rows += detection_platform(path, args)
        runs.append(rows)
        print(f"run {run} of {args.repeat} done", file=sys.stderr)
    print(f"sentiment: VADER; detection: {pt.name} and {onnx.name}, bus.jpg (810×1080); {args.repeat} runs")
    print(report(runs))

if __name__ == "__main__":
    main()
