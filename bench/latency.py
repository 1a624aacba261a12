"""Latency of one small job: HTTP submit + `GET ?wait` of an audio_length job on a tiny WAV, next to
`apply_async(...).get()` of a no-op Celery task on the same settings, sequentially, in the same run.

    .venv/bin/python -m bench.latency [--size small|full] [--jobs 300] [--repeat 3]

One job at a time, each repetition runs the platform's jobs then the baseline's; p50 and p99 are
taken per repetition and compared within it. The platform's client is a kept-alive http.client
connection; the same jobs through `requests` (which costs about 2 ms of client time per call here)
are reported too, without a target.
"""

from __future__ import annotations

import statistics
import time

import requests

from bench.figures import arguments, percentile, repeats, row, summary, write_result
from bench.jobs import Http, multipart
from bench.platform import platform, until
from tests.support.media import tone


def platform_latency(url: str, jobs: int) -> list[float]:
    body, content_type = multipart("audio", "t.wav", tone(0.1))
    samples = []
    http = Http(url)
    try:
        for _ in range(jobs):
            started = time.perf_counter()
            _, job = http.call("POST", "/v1/jobs/audio_length", body, content_type)
            _, record = http.call("GET", f"/v1/jobs/{job['job_id']}?wait=30")
            assert record["status"] == "SUCCESS", record
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        http.close()
    return samples


def requests_latency(url: str, jobs: int) -> list[float]:
    """The same jobs through the `requests` library, as a script would send them."""
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
    from bench.noop_app import noop

    samples = []
    for _ in range(jobs):
        started = time.perf_counter()
        noop.apply_async(args=[{}]).get(timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--jobs", type=int, default=None, help="jobs per measure (default 300; small: 10)")
    args = parser.parse_args()
    jobs = args.jobs or (10 if args.size == "small" else 300)
    p50: tuple[list[float], list[float]] = ([], [])
    p99: tuple[list[float], list[float]] = ([], [])
    via_requests: list[float] = []
    with platform({"audio_length": 1, "noop": 1}) as stack:
        url = str(stack.url)
        until(lambda: requests.get(f"{url}/ready").json()["queues"]["audio_length"]["consumers"], 60, "a worker")
        platform_latency(url, 10), celery_latency(10)  # warm up connections and the worker
        for run in range(1, repeats(args) + 1):
            ours, base, slow = platform_latency(url, jobs), celery_latency(jobs), requests_latency(url, jobs)
            for into, samples in ((0, ours), (1, base)):
                p50[into].append(statistics.median(samples))
                p99[into].append(percentile(samples, 99))
            via_requests.append(statistics.median(slow))
            print(f"run {run}")
            print("  " + summary("platform: HTTP submit + GET ?wait", ours))
            print("  " + summary("baseline: apply_async().get()", base))
            print("  " + summary("platform through requests", slow))
    ratios = [a / b for a, b in zip(*p50, strict=True)]
    print(f"p50 ratio platform/baseline: median {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}); target ≤ 2")
    labels = {"platform_label": "HTTP submit + GET ?wait (audio_length, 0.1 s WAV)",
              "baseline_label": "apply_async().get() of a no-op task"}
    rows = [row("latency p50", "ms", p50[0], p50[1], target=("<=", 2.0), **labels),
            row("latency p99", "ms", p99[0], p99[1], **labels),
            row("latency p50, client: requests", "ms", via_requests, p50[1], **{**labels, "platform_label":
                "the same jobs sent with the requests library"})]
    write_result(args, "latency", "Latency of one small job", rows, method=__doc__.split("\n\n")[0].replace("\n", " "),
                 extra={"jobs": jobs, "better": "lower"})


if __name__ == "__main__":
    main()
