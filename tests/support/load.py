"""A platform of its own for the load test, and what it is measured with: process memory and CPU, and the
job records it wrote.

Its own vhost and key prefix: every `job:*` key under the prefix is a job this platform created, so the
records can be counted exactly while other tests run against the session's platform.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil
import redis
import requests

from support import services
from support.processes import Proc, env_for, free_port, spawn, start_worker
from support.wait import until


@dataclass(frozen=True)
class Platform:
    url: str
    prefix: str
    api: Proc
    worker: Proc


@contextmanager
def dedicated_platform(queue: str, concurrency: int, api_workers: int, api_threads: int,
                       **env: str) -> Iterator[Platform]:
    """An API under gunicorn and one worker pool on `queue`, yielded once the pool consumes; removed after."""
    services.require_services()
    run = uuid.uuid4().hex[:8]
    vhost, prefix, port = services.create_vhost(), f"test-load-{run}:", free_port()
    penv = env_for(vhost, prefix, API_PORT=str(port), API_WORKERS=str(api_workers), API_THREADS=str(api_threads),
                   **env)
    url = f"http://127.0.0.1:{port}"
    api = spawn(f"api-load-{run}", [sys.executable, "-m", "gunicorn", "-c", "src/api/gunicorn_conf.py",
                                    "api.wsgi:app"], penv)
    worker = start_worker(penv, queue, f"{queue}-load-{run}", concurrency)
    try:
        def consuming() -> bool:
            for proc in (api, worker):
                if proc.popen.poll() is not None:
                    raise AssertionError(f"{proc.name} exited:\n{proc.tail()}")
            return requests.get(f"{url}/ready", timeout=5).json()["queues"][queue]["consumers"] >= 1

        until(consuming, 120, f"a dedicated {queue} pool consuming at {url}")
        yield Platform(url, prefix, api, worker)
    finally:
        worker.stop()
        api.stop()
        services.delete_vhost(vhost)
        services.delete_keys(prefix)


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (gunicorn's master and its workers; a Celery pool and its children)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def rss_bytes(pid: int) -> int:
    return sum(p.memory_info().rss for p in tree(pid))


def job_records(prefix: str) -> dict[str, dict[str, str]]:
    """Every job record under `prefix`: job id → its status, attempts and type."""
    fields = ("status", "attempts", "type")
    with redis.Redis.from_url(services.REDIS_URL) as r:
        keys = [k.decode() for k in r.scan_iter(match=f"{prefix}job:*", count=5000)]
        with r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, fields)
            values = pipe.execute()
    return {key.removeprefix(f"{prefix}job:"): {f: (v or b"").decode() for f, v in zip(fields, row, strict=True)}
            for key, row in zip(keys, values, strict=True)}
