"""Batching across jobs (docs/batching.md): single-text jobs through the pool (2 processes) with
`<TYPE>_BATCH_MAX` set, next to the engine called directly in as many processes. The platform's figure is
the worker's: jobs queued over HTTP while the pool was paused, then drained (rate from the jobs' finish
stamps, `bench.jobs.drained_rate`). VADER single-text jobs with `SENTIMENT_BATCH_MAX=64` against the direct
loop (`core.analyze` of one text at a time), and the same jobs with batching off (today's behaviour);
embedding single-text jobs with `EMBEDDING_BATCH_MAX=32` against `core.embed` called with batches of 32;
DistilBERT-base size (random weights, `bench.sentiment.distilbert`) single-text jobs with
`SENTIMENT_BATCH_MAX=32` against `core.analyze` called with batches of 32, drained and end to end (32 HTTP
clients on the same cores). A lone job's p50 with batching on against the same with batching off plus
`BATCH_WAIT_MS`.

    .venv/bin/python -m bench.batching [--size small|full] [--repeat 3]
"""

from __future__ import annotations

import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from bench.figures import arguments, repeats, row, write_result
from bench.jobs import Http, drained_rate, model_ready, run_jobs, submit_many
from bench.platform import platform
from bench.sentiment import SENTENCES, direct_rate, distilbert, start_direct

POOL = 2
CLIENTS = 4
E2E_CLIENTS = 32  # HTTP clients at once, each POST then GET ?wait: enough jobs in flight for batches to form
E2E_API = {"API_THREADS": "40"}  # 36 long-polls per API process (threads but 4): one per client, however spread
WAIT_MS = 5  # `<TYPE>_BATCH_WAIT_MS`, its default
SIZES = {"small": {"vader": 200, "embedding": 64, "distilbert": 64, "seconds": 1.0},
         "full": {"vader": 3000, "embedding": 960, "distilbert": 640, "seconds": 3.0}}
EMBED_BATCH = [f"{SENTENCES[i % len(SENTENCES)]} ({i})" for i in range(32)]

_engine: Any = None


def _load_embedding(threads: int) -> None:
    global _engine
    from workers.embedding import core

    _engine = core.load_model(None, threads=threads, batch_size=32)
    core.embed(EMBED_BATCH, _engine)  # warm up: the first forward pass is several times slower


def _embedded_per_s(start_at: float, seconds: float, calls: int) -> float:
    from workers.embedding import core

    time.sleep(max(0.0, start_at - time.time()))  # the processes start together (a start time, not a wait)
    done, started = 0, time.perf_counter()
    while done < calls * len(EMBED_BATCH) or time.perf_counter() - started < seconds:
        core.embed(EMBED_BATCH, _engine)
        done += len(EMBED_BATCH)
    return done / (time.perf_counter() - started)


def embedding_direct(seconds: float, calls: int) -> float:
    threads = max(1, len(os.sched_getaffinity(0)) // POOL)
    with ProcessPoolExecutor(POOL, mp_context=get_context("spawn"), initializer=_load_embedding,
                             initargs=(threads,)) as pool:
        for future in [pool.submit(time.sleep, 0.2) for _ in range(POOL * 2)]:
            future.result()  # every process has loaded the engine
        start_at = time.time() + 0.3
        return sum(f.result() for f in [pool.submit(_embedded_per_s, start_at, seconds, calls) for _ in range(POOL)])


def drained(stack: Any, queue: str, n: int) -> float:
    url = str(stack.url)
    bodies = [json.dumps({"text": f"{SENTENCES[i % len(SENTENCES)]} ({i})"}).encode() for i in range(4)]
    return drained_rate(stack, queue, lambda: [job for body in bodies
                                               for job in submit_many(url, n // 4, queue, body, "application/json",
                                                                      CLIENTS)])


def lone_latency_ms(stack: Any, n: int = 40) -> float:
    """p50 of n jobs sent one after another (POST, then GET ?wait): each finds the queue empty."""
    http, samples = Http(str(stack.url)), []
    try:
        for i in range(n):
            started = time.perf_counter()
            _, job = http.call("POST", "/v1/jobs/sentiment", json.dumps({"text": SENTENCES[i % 4]}).encode(),
                               "application/json")
            _, record = http.call("GET", f"/v1/jobs/{job['job_id']}?wait=30")
            assert record["status"] == "SUCCESS", record
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        http.close()
    return statistics.median(samples)


def vader_rows(args: Any, sizes: dict[str, Any]) -> list[dict[str, Any]]:
    n, ours, off, base, lone_on, lone_off = sizes["vader"], [], [], [], [], []
    direct = start_direct("vader")
    try:
        with platform({"sentiment": POOL}, SENTIMENT_MODEL="vader", SENTIMENT_BATCH_MAX="64") as stack:
            model_ready(stack, "sentiment")
            drained(stack, "sentiment", 200)  # warm up
            for _ in range(repeats(args)):
                ours.append(drained(stack, "sentiment", n))
                base.append(direct_rate(direct, SENTENCES[:1], sizes["seconds"], n // POOL))
                lone_on.append(lone_latency_ms(stack))
        with platform({"sentiment": POOL}, SENTIMENT_MODEL="vader") as stack:
            model_ready(stack, "sentiment")
            drained(stack, "sentiment", 100)  # warm up
            for _ in range(repeats(args)):
                off.append(drained(stack, "sentiment", max(100, n // 4)))
                lone_off.append(lone_latency_ms(stack) + WAIT_MS)
    finally:
        direct.shutdown()
    label = {"baseline_label": f"core.analyze of one text at a time in {POOL} processes"}
    worker = f"the pool ({POOL} processes) on jobs queued over HTTP"
    return [row("VADER single-text jobs, BATCH_MAX=64", "texts/s", ours, base, platform_label=worker, **label),
            row("VADER single-text jobs, batching off", "texts/s", off, base, platform_label=worker, **label),
            row("VADER lone job p50, BATCH_MAX=64", "ms", lone_on, lone_off, target=("<=", 1.0),
                baseline_label=f"batching off, plus BATCH_WAIT_MS ({WAIT_MS} ms)",
                platform_label=f"POST + GET ?wait, one at a time, BATCH_WAIT_MS={WAIT_MS}")]


def embedding_rows(args: Any, sizes: dict[str, Any]) -> list[dict[str, Any]]:
    n, ours, base = sizes["embedding"], [], []
    with platform({"embedding": POOL}, EMBEDDING_BATCH_MAX="32") as stack:
        model_ready(stack, "embedding")
        drained(stack, "embedding", 64)  # warm up
        for _ in range(repeats(args)):
            ours.append(drained(stack, "embedding", n))
            base.append(embedding_direct(sizes["seconds"], n // POOL // len(EMBED_BATCH)))
    return [row("embedding single-text jobs, BATCH_MAX=32", "texts/s", ours, base, target=(">=", 0.9),
                platform_label=f"the pool ({POOL} processes) on jobs queued over HTTP",
                baseline_label=f"core.embed with batches of 32 in {POOL} processes")]


def distilbert_rows(args: Any, sizes: dict[str, Any]) -> list[dict[str, Any]]:
    n, model, ours, e2e, base = sizes["distilbert"], str(distilbert()), [], [], []
    batch = [f"{SENTENCES[i % len(SENTENCES)]} ({i})" for i in range(32)]
    single = json.dumps({"text": SENTENCES[0]}).encode()
    direct = start_direct(model)
    try:
        with platform({"sentiment": POOL}, SENTIMENT_MODEL=model, SENTIMENT_BATCH_MAX="32", **E2E_API) as stack:
            model_ready(stack, "sentiment")
            drained(stack, "sentiment", 64)  # warm up
            for _ in range(repeats(args)):
                ours.append(drained(stack, "sentiment", n))
                e2e.append(n / run_jobs(str(stack.url), n, E2E_CLIENTS, "sentiment", single, "application/json"))
                base.append(direct_rate(direct, batch, sizes["seconds"], n // POOL // len(batch)))
    finally:
        direct.shutdown()
    label = {"baseline_label": f"core.analyze with batches of 32 in {POOL} processes"}
    return [row("DistilBERT-size single-text jobs, BATCH_MAX=32", "texts/s", ours, base, target=(">=", 0.9),
                platform_label=f"the pool ({POOL} processes) on jobs queued over HTTP", **label),
            row("DistilBERT-size single-text jobs, BATCH_MAX=32, end to end", "texts/s", e2e, base,
                platform_label=f"{E2E_CLIENTS} HTTP clients on the same cores, each POST then GET ?wait", **label)]


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--types", default="sentiment,embedding,distilbert",
                        help="comma-separated: sentiment (VADER), embedding, distilbert")
    args = parser.parse_args()
    types, sizes = args.types.split(","), SIZES[args.size]
    rows = (vader_rows(args, sizes) if "sentiment" in types else []) + \
        (embedding_rows(args, sizes) if "embedding" in types else []) + \
        (distilbert_rows(args, sizes) if "distilbert" in types else [])
    write_result(args, "batching", "Batching across jobs", rows, method=__doc__.split("\n\n")[0].replace("\n", " "),
                 extra={"pool": POOL, "clients": CLIENTS})


if __name__ == "__main__":
    main()
