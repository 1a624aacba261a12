"""A platform of its own for the load test, and what it is measured with: process memory and CPU, and the
job records it wrote.

Its own vhost and key prefix: every `job:*` key under the prefix is a job this platform created, so the
records can be counted exactly while other tests run against the session's platform.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil
import redis

from support import services
from support.isolated import isolated_platform
from support.processes import Proc


@dataclass(frozen=True)
class Platform:
    url: str
    prefix: str
    api_pid: int  # gunicorn's master
    worker: Proc


@contextmanager
def dedicated_platform(queue: str, concurrency: int, api_workers: int, api_threads: int,
                       **env: str) -> Iterator[Platform]:
    """An API under gunicorn and one worker pool on `queue`, yielded once the pool consumes; removed after."""
    services.require_services()
    with isolated_platform(queue, concurrency, API_WORKERS=str(api_workers), API_THREADS=str(api_threads),
                           **env) as (url, worker):
        yield Platform(url, worker.extra["key_prefix"], int(worker.extra["api_pid"]), worker)


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
