"""The base task's record writes while Redis refuses them, run in this process against a private Redis:
a start that could not be stored leaves nothing of the previous job's attempt (its fencing number) for the
job, and progress is best effort whatever the refusal. And its hooks past the memory cap, run by Celery's own
tracer as in a pool child: the job ends FAILURE `out_of_memory`, and no `MemoryError` leaves the child (its
worker's main process would stop on it)."""

from __future__ import annotations

import re
import resource
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery.app.trace import build_tracer
from celery.exceptions import CDeprecationWarning, Reject

from common import records
from common.records import JobStatus
from common.store import get_redis
from support.private import PrivateRedis, full, private_redis
from support.processes import settings_of


@pytest.fixture
def store(platform_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateRedis]:
    """This process's settings point at a private Redis (own key prefix); a start gives up after 1 s."""
    monkeypatch.setenv("STORE_RETRY_S", "1")
    with private_redis() as server, settings_of({**platform_env, "REDIS_URL": server.url,
                                                 "KEY_PREFIX": f"test-base-{uuid.uuid4().hex[:8]}:"}):
        yield server


@pytest.fixture
def task() -> Any:
    """The worker's own task object, bound to its app as in a pool child. The catalog's `queue=` on the task
    is deprecated in Celery (a warning the worker shows too; here warnings are errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CDeprecationWarning)
        import workers.audio_length.task  # noqa: F401  (registers the task)
        from workers.celery_app import app

        return app.tasks["audio_length.run"]


def new_job() -> str:
    job_id = str(uuid.uuid4())
    records.create(get_redis(), job_id, "audio_length", blob=b"the upload")
    return job_id


@contextmanager
def running(task: Any, job_id: str) -> Iterator[Any]:
    """What the worker's pool child does for a job: push its request, and run the body within it; yields the
    request (the job's run lives on it, `job_run`, never on the task object)."""
    task.push_request(id=job_id, called_directly=False)
    try:
        yield task.request
    finally:
        task.pop_request()


def test_a_start_that_could_not_be_stored_keeps_no_attempt_of_the_previous_job(store: PrivateRedis, task: Any) -> None:
    previous, job_id = new_job(), new_job()
    with running(task, previous) as request:
        task.before_start(previous, (), {})
        assert request.job_run.attempt == 1 and request.job_run.started > 0

    store.stop()
    with running(task, job_id) as request, pytest.raises(Reject) as rejected:  # requeued, not acked
        try:
            task.before_start(job_id, (), {})
        finally:
            assert getattr(request, "job_run", None) is None
            assert task.current.attempt is None and task.current.started == 0.0 and task.current.upload is None
    assert rejected.value.requeue


def test_progress_goes_on_while_redis_is_full(store: PrivateRedis, task: Any) -> None:
    job_id = new_job()
    with running(task, job_id):
        task.before_start(job_id, (), {})
        with full(store):
            task.progress(50)  # refused (OOM): logged, the job goes on
        assert records.load(get_redis(), job_id)["progress"] == 0  # type: ignore[index]
        task.progress(60)
        assert records.load(get_redis(), job_id)["progress"] == 60  # type: ignore[index]


@contextmanager
def data_cap(headroom_mb: int) -> Iterator[None]:
    """This process's data segment capped (`RLIMIT_DATA`, as `workers.memory` caps a pool child) at its
    present size plus `headroom_mb`; the soft limit only, restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    match = re.search(r"VmData:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert match is not None
    resource.setrlimit(resource.RLIMIT_DATA, (int(match.group(1)) * 1024 + headroom_mb * 2**20, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def trace(task: Any, job_id: str, *args: Any) -> Any:
    """Run a job as a pool child does (Celery's tracer: hooks, body, failure handling); return what the child
    hands to the worker's main process: the exception, or None."""
    tracer = build_tracer(task.name, task, app=task.app, hostname="test")
    _, info, _, _ = tracer(job_id, list(args), {}, {"id": job_id, "delivery_info": {}})
    return None if info is None else info.retval


def test_an_upload_past_the_memory_cap_fails_the_job_at_its_start(store: PrivateRedis, task: Any) -> None:
    """Reading the upload with the start (`before_start`) needs 64 MB; the child may take 16 MB more."""
    job_id = str(uuid.uuid4())
    records.create(get_redis(), job_id, "audio_length", blob=b"\0" * (64 * 2**20))
    with data_cap(headroom_mb=16):
        raised = trace(task, job_id, {})
    assert type(raised).__name__ == "OutOfMemory", raised  # not a MemoryError: the worker goes on
    record = records.load(get_redis(), job_id)
    assert record is not None and record["status"] == JobStatus.FAILURE.value, record
    assert record["error"]["code"] == "out_of_memory", record["error"]
    assert "MB its worker process may use (AUDIO_LENGTH_MAX_MEMORY_MB) to start" in record["error"]["message"]

