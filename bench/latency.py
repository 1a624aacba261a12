"""Latency of one small job: HTTP submit + `GET ?wait` of an audio_length job on a tiny WAV, next to
`apply_async(...).get()` of a no-op Celery task on the same settings, sequentially, in the same run.

    .venv/bin/python bench/latency.py --jobs 300 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests
from harness import platform, summary, until

from support.media import tone


def platform_latency(url: str, jobs: int) -> list[float]:
    audio = tone(0.1)
    samples = []
    with requests.Session() as http:
        for _ in range(jobs):
            started = time.perf_counter()
            job = http.post(f"{url}/v1/jobs/audio_length", files={"audio": ("t.wav", audio)}).json()
            record = http.get(f"{url}/v1/jobs/{job['job_id']}", params={"wait": 30}).json()
            assert record["status"] == "SUCCESS", record
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def celery_latency(jobs: int) -> list[float]:
    from noop_app import noop

    samples = []
    for _ in range(jobs):
        started = time.perf_counter()
        noop.apply_async(args=[{}]).get(timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with platform({"audio_length": 1, "noop": 1}) as (url, env, _):
        import os

        os.environ.update({k: env[k] for k in ("BROKER_URL", "REDIS_URL", "KEY_PREFIX")})
        until(lambda: requests.get(f"{url}/ready").json()["queues"]["audio_length"]["consumers"], 60, "a worker")
        platform_latency(url, 10), celery_latency(10)  # warm up connections and the worker
        ratios = []
        for run in range(1, args.repeat + 1):
            ours, base = platform_latency(url, args.jobs), celery_latency(args.jobs)
            ratios.append(statistics.median(ours) / statistics.median(base))
            print(f"run {run}")
            print("  " + summary("platform: HTTP submit + GET ?wait", ours))
            print("  " + summary("baseline: apply_async().get()", base))
        print(f"p50 ratio platform/baseline: median {statistics.median(ratios):.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f}); target ≤ 2")


if __name__ == "__main__":
    main()
