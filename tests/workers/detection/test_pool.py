"""How the pools are sized: memory per child from `<TYPE>_MAX_MEMORY_MB`, torch threads per child."""

from types import SimpleNamespace

import pytest

from common.settings import get_settings
from workers.base import JobTask
from workers.celery_app import _bound_child_memory, _prefetch


@pytest.mark.parametrize("queues, limit_mb", [
    (["detection"], 1536),  # the defaults of the specs
    (["sentiment"], 1536),
    (["audio_length"], 1024),
    (["scrape"], 1024),
    (["scrape", "detection"], 1536),
])
def test_every_pool_replaces_a_child_past_three_quarters_of_its_cap(queues: list[str], limit_mb: int) -> None:
    conf = SimpleNamespace(worker_max_memory_per_child=None)
    _bound_child_memory(conf=conf, options={"queues": queues})
    assert conf.worker_max_memory_per_child == limit_mb * 1024 * 3 // 4  # KiB, as Celery counts


def test_no_queue_no_cap() -> None:
    conf = SimpleNamespace(worker_max_memory_per_child=None)
    _bound_child_memory(conf=conf, options={"queues": None})
    assert conf.worker_max_memory_per_child is None


def test_torch_threads_share_the_cores_among_the_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    task = JobTask()
    for processes, threads in [(1, 4), (2, 2), (3, 1), (8, 1)]:
        monkeypatch.setattr(JobTask, "processes", processes)
        assert task.torch_threads() == threads
    monkeypatch.setenv("TORCH_THREADS", "3")
    get_settings.cache_clear()
    try:
        assert task.torch_threads() == 3
    finally:
        monkeypatch.delenv("TORCH_THREADS")
        get_settings.cache_clear()


def test_each_pool_reserves_its_types_prefetch(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = SimpleNamespace(worker_prefetch_multiplier=None)
    _prefetch(conf=conf, options={"queues": ["scrape"]})
    assert conf.worker_prefetch_multiplier == 1  # the default of every spec
    monkeypatch.setenv("SCRAPE_PREFETCH", "4")
    get_settings.cache_clear()
    try:
        _prefetch(conf=conf, options={"queues": ["scrape"]})
    finally:
        monkeypatch.delenv("SCRAPE_PREFETCH")
        get_settings.cache_clear()
    assert conf.worker_prefetch_multiplier == 4
