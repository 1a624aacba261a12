"""Long-polls cannot starve the API: each process holds at most MAX_WAITING_PER_PROCESS of them (by default its
threads − 4); past that a wait answers at once, and `/health` keeps answering. Real gunicorn, real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import requests

from support import services
from support.processes import env_for, start_api
from support.wait import until

THREADS, WORKERS = 8, 2  # start_api runs 2 gunicorn workers
CAP = THREADS - 4  # the default: API_THREADS - 4 (at least half of them)
WAIT_S = 10


@contextmanager
def api_without_workers(platform_env: dict[str, str]) -> Iterator[str]:
    """An API publishing to a vhost nobody consumes: its jobs stay PENDING."""
    vhost = services.create_vhost()
    try:
        proc, url = start_api(env_for(vhost, platform_env["KEY_PREFIX"], API_THREADS=str(THREADS)))
        try:
            yield url
        finally:
            proc.stop()
    finally:
        services.delete_vhost(vhost)


def test_waits_past_the_cap_answer_at_once_and_health_answers_while_every_wait_is_held(platform_env) -> None:
    with api_without_workers(platform_env) as url:
        job_id = requests.post(f"{url}/v1/jobs/scrape", json={"url": "http://127.0.0.1:9/", "selectors": {"t": "p"}},
                               timeout=30).json()["job_id"]
        answers: list[tuple[float, requests.Response]] = []

        def wait() -> None:
            started = time.monotonic()
            response = requests.get(f"{url}/v1/jobs/{job_id}", params={"wait": WAIT_S}, timeout=60)
            answers.append((time.monotonic() - started, response))

        polls = 3 * THREADS * WORKERS
        with ThreadPoolExecutor(polls) as pool:
            for _ in range(polls):
                pool.submit(wait)
            until(lambda: len(answers) >= polls - CAP * WORKERS, WAIT_S - 2,
                  f"all but {CAP * WORKERS} of {polls} long-polls to answer at once")
            started = time.monotonic()
            health = requests.get(f"{url}/health", timeout=30)
            health_s = time.monotonic() - started
            held = polls - len(answers)
        assert health.status_code == 200 and health_s < 1, f"/health took {health_s:.2f} s"
        assert 0 < held <= CAP * WORKERS
        quick = [r for s, r in answers if s < WAIT_S - 1]
        assert len(quick) == polls - held
        assert all(r.status_code == 200 and r.json()["status"] == "PENDING" and r.headers["Retry-After"] == "1"
                   for r in quick)
        print(f"\n{held} long-polls held, {len(quick)} answered at once; /health in {health_s * 1000:.0f} ms")
