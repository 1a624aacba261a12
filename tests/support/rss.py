"""The peak memory (RSS) of a group of processes while a block runs, sampled from outside with psutil."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil


def rss_mb(processes: list[psutil.Process]) -> float:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def family(pid: int) -> list[psutil.Process]:
    """A process and its children (gunicorn's master and workers, a Celery worker and its pool)."""
    main = psutil.Process(pid)
    return [main, *main.children()]


@contextmanager
def peak_rss_mb(processes: Callable[[], list[psutil.Process]]) -> Iterator[dict[str, float]]:
    """`peak["mb"]`: the largest summed RSS of `processes()` seen every 20 ms while the block ran, and
    of each one alone, `peak["one_mb"]`. A measurement running beside the test, not a synchronisation."""
    peak = {"mb": 0.0, "one_mb": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            found = processes()
            peak["mb"] = max(peak["mb"], rss_mb(found))
            peak["one_mb"] = max([peak["one_mb"], *(rss_mb([p]) for p in found)])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join(5)
