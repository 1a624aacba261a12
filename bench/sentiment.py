"""Sentiment throughput: texts per second through the platform, as single-text jobs and as 256-text jobs
next to the engine called directly (`core.load_model` + `core.analyze` in a loop) in as many processes as
the pool has (the default pool: 2 processes). Two platform figures: end to end (HTTP submit + `GET ?wait`
from 4 clients, which share the cores with the API and the pool), and the worker's (the pool, paused
while the jobs are queued over HTTP, then resumed; rate from the jobs' finish stamps). The target applies
to the worker's figure of 256-text jobs: in a deployment the clients and the API do not run on the
workers' cores. For VADER's 256-text jobs, a floor too: the engine wired by hand into a bare Celery task
on the same settings and pool size (`bench/noop_app.py`), drained the same way.

    .venv/bin/python -m bench.sentiment [--size small|full] [--repeat 3] [--engines vader,distilbert]

Two engines: VADER (the platform's default) and a transformers classifier of DistilBERT-base's size
(6 layers, dim 768), built offline with random weights: it computes exactly what a trained one does.
Each process gets the same torch threads as a pool child (cores / processes). Each repetition runs
the platform, then the direct calls.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.figures import ROOT, arguments, repeats, row, write_result
from bench.jobs import celery_drained_rate, drained_rate, model_ready, run_jobs, submit_many
from bench.platform import platform

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no progress bars from transformers in the output
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SENTENCES = [
    "The staff were friendly and the food was excellent, but the room was a little noisy.",
    "I waited forty minutes for a cold meal and nobody said sorry.",
    "The meeting has been moved to Thursday afternoon.",
    "What a wonderful surprise, thank you all so much!",
]
BATCH = [SENTENCES[i % len(SENTENCES)] for i in range(256)]
POOL = 2  # the default SENTIMENT_CONCURRENCY
CLIENTS = 4
SIZES = {"small": {"single": 20, "batch": 8, "seconds": 1.0},
         "full": {"single": 400, "batch": 240, "seconds": 3.0}}
TRANSFORMER_JOBS = {"single": 24, "batch": 6}  # a 256-text job takes 4-6 s of one core here


def distilbert(folder: Path = ROOT / "run" / "bench-models" / "distilbert-base-random") -> Path:
    """A DistilBERT-base-sized sequence classifier with random weights and a word vocabulary (VADER's
    lexicon and the benchmark's words), saved as `save_pretrained` does; made once, then reused."""
    if (folder / "config.json").is_file():
        return folder
    from workers import torchvision_nms

    torchvision_nms.register()  # transformers imports torchvision
    import torch
    import vaderSentiment
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizer

    lexicon = Path(vaderSentiment.__file__).parent / "vader_lexicon.txt"
    words = {line.split("\t")[0].lower() for line in lexicon.read_text(errors="replace").splitlines() if line}
    words |= {w.strip(".,!?").lower() for s in SENTENCES for w in s.split()}
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(w for w in words if w and " " not in w)]
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=len(vocab), id2label={0: "NEGATIVE", 1: "POSITIVE"},
                              label2id={"NEGATIVE": 0, "POSITIVE": 1})
    partial = folder.with_name(f".{os.getpid()}.{folder.name}")
    DistilBertForSequenceClassification(config).eval().save_pretrained(partial)
    DistilBertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, model_max_length=512).save_pretrained(partial)
    partial.rename(folder)
    return folder


# --- the direct calls, in POOL processes that load the engine once ---
_engine: Any = None


def _load(name: str, threads: int) -> None:
    global _engine
    from workers.sentiment import core

    _engine = core.load_model(name, batch_size=32, threads=threads)


def _texts_per_s(texts: list[str], start_at: float, seconds: float, calls: int) -> float:
    """Label `texts` again and again from `start_at`, at least `calls` times and for `seconds`; texts per
    second, to the end of the last call."""
    from workers.sentiment import core

    time.sleep(max(0.0, start_at - time.time()))
    done, started = 0, time.perf_counter()
    while done < calls * len(texts) or time.perf_counter() - started < seconds:
        core.analyze(texts, _engine)
        done += len(texts)
    return done / (time.perf_counter() - started)


def direct_rate(pool: ProcessPoolExecutor, texts: list[str], seconds: float, calls: int) -> float:
    """Texts per second of POOL processes labelling at once."""
    start_at = time.time() + 0.3
    futures = [pool.submit(_texts_per_s, texts, start_at, seconds, calls) for _ in range(POOL)]
    return sum(f.result() for f in futures)


def start_direct(engine: str) -> ProcessPoolExecutor:
    threads = max(1, len(os.sched_getaffinity(0)) // POOL)  # what a pool child gets (JobTask.torch_threads)
    pool = ProcessPoolExecutor(POOL, mp_context=get_context("spawn"), initializer=_load, initargs=(engine, threads))
    for future in [pool.submit(time.sleep, 0.2) for _ in range(POOL * 2)]:
        future.result()  # every process has loaded the engine
    return pool


def measure_engine(engine: str, args: Any, sizes: dict[str, Any]) -> list[dict[str, Any]]:
    name = "VADER" if engine == "vader" else "DistilBERT-base size"
    model = "vader" if engine == "vader" else str(distilbert())
    jobs = sizes if engine == "vader" or args.size == "small" else {**sizes, **TRANSFORMER_JOBS}
    single, batch = json.dumps({"text": SENTENCES[0]}).encode(), json.dumps({"texts": BATCH}).encode()
    ours: dict[str, list[float]] = {"single": [], "batch": []}
    pool: dict[str, list[float]] = {"single": [], "batch": []}
    base: dict[str, list[float]] = {"single": [], "batch": []}
    bodies, texts = {"single": single, "batch": batch}, {"single": 1, "batch": len(BATCH)}
    floor: list[float] = []
    by_hand = engine == "vader"  # the figure that misses its target; a transformer's jobs take seconds
    with platform({"sentiment": POOL, **({"noop": POOL} if by_hand else {})}, SENTIMENT_MODEL=model) as stack:
        model_ready(stack, "sentiment")
        url = str(stack.url)
        run_jobs(url, POOL * 4, CLIENTS, "sentiment", single, "application/json")  # warm up
        if by_hand:
            from bench.noop_app import sentiment

            celery_drained_rate(stack, sentiment, {"texts": BATCH}, POOL * 4, CLIENTS)  # warm up
        direct = start_direct(model)
        try:
            for _ in range(repeats(args)):
                for kind, body in bodies.items():
                    n = jobs[kind]
                    ours[kind].append(texts[kind] * n / run_jobs(url, n, CLIENTS, "sentiment", body,
                                                                 "application/json"))
                    pool[kind].append(texts[kind] * drained_rate(
                        stack, "sentiment", lambda b=body, n=n: submit_many(url, n, "sentiment", b, "application/json",
                                                                            CLIENTS)))
                if by_hand:
                    floor.append(len(BATCH) * celery_drained_rate(stack, sentiment, {"texts": BATCH}, jobs["batch"],
                                                                   CLIENTS))
                base["single"].append(direct_rate(direct, SENTENCES[:1], sizes["seconds"], jobs["single"] // POOL))
                base["batch"].append(direct_rate(direct, BATCH, sizes["seconds"], jobs["batch"] // POOL))
        finally:
            direct.shutdown()
    labels = {"baseline_label": f"core.analyze in {POOL} processes"}
    end_to_end, worker = f"{CLIENTS} clients on the same cores", f"the pool ({POOL} processes) on jobs queued over HTTP"
    rows = [row(f"{name}: single-text jobs, end to end", "texts/s", ours["single"], base["single"],
                platform_label=f"POST {{text}} + GET ?wait, {end_to_end}", **labels),
            row(f"{name}: single-text jobs, worker", "texts/s", pool["single"], base["single"],
                platform_label=worker, **labels),
            row(f"{name}: 256-text jobs, end to end", "texts/s", ours["batch"], base["batch"],
                platform_label=f"POST {{texts: 256}} + GET ?wait, {end_to_end}", **labels),
            row(f"{name}: 256-text jobs, worker", "texts/s", pool["batch"], base["batch"], target=(">=", 0.9),
                platform_label=worker, **labels)]
    if floor:
        rows.append(row(f"{name}: 256-text jobs, Celery by hand", "texts/s", floor, base["batch"], **labels,
                        platform_label=f"a bare Celery task calling core.analyze, {POOL} processes, same settings"))
    return rows


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--engines", default=None, help="comma-separated: vader, distilbert (small: vader)")
    args = parser.parse_args()
    engines = (args.engines or ("vader" if args.size == "small" else "vader,distilbert")).split(",")
    rows = [r for engine in engines for r in measure_engine(engine.strip(), args, SIZES[args.size])]
    write_result(args, "sentiment", "Sentiment throughput", rows, method=__doc__.split("\n\n")[0].replace("\n", " "),
                 extra={"pool": POOL, "clients": CLIENTS, "engines": engines})


if __name__ == "__main__":
    main()
