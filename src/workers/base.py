"""What every job task shares: record transitions, attempts, timing and error classification."""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
from typing import Any

import redis
from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded

from common import jobstats, records
from common.errors import InputError, PlatformError
from common.records import JobStatus
from common.settings import get_settings
from common.store import get_redis

log = logging.getLogger(__name__)


class JobTask(Task):
    """Base of every job task. Subclasses (made by `job_task`) set `job_type`; a model-based type
    overrides `load_model`, and its body reads `self.model`."""

    job_type = ""
    throws = (InputError,)
    ignore_result = True  # the job record holds state and result; Celery's result backend is not written
    processes = 1  # the pool's concurrency, set by `celery_app` in the parent before it forks
    _model: Any = None
    _model_error: str | None = None
    _started: float = 0.0

    # --- the model, loaded once per process ---
    def load_model(self) -> Any:
        return None

    def preload(self) -> None:
        started = time.monotonic()
        try:
            self._model = self.load_model()
        except InputError as exc:
            self._model_error = exc.message
            log.error("%s model not loaded: %s", self.job_type, exc.message)
        except Exception as exc:  # a corrupt file or a library error: the worker stays up and says why
            log.exception("%s model not loaded", self.job_type)
            self._model_error = f"The {self.job_type} model could not be loaded: {type(exc).__name__}: {exc}"
        if self._model is not None or self._model_error is not None:
            self._report_model(time.monotonic() - started)

    def _report_model(self, load_s: float) -> None:
        """Tell `/ready` whether this type's model loaded, and how long it took (a key with a TTL)."""
        status: dict[str, Any] = {"status": "unavailable", "message": self._model_error}
        if self._model_error is None:
            status = {"status": "loaded", "model": getattr(self._model, "name", str(self._model))}
            log.info("%s model %s loaded in %.2f s", self.job_type, status["model"], load_s)
        status.update(load_s=round(load_s, 3), rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                      worker=f"{socket.gethostname()}:{os.getpid()}", at=records.now())
        try:
            records.save_model_status(get_redis(), self.job_type, status)
        except redis.RedisError as exc:
            log.warning("%s model status not stored: %s", self.job_type, exc)

    def torch_threads(self) -> int:
        """`TORCH_THREADS`, or this machine's cores shared among the pool's processes."""
        configured = get_settings().torch_threads
        return configured if configured > 0 else max(1, len(os.sched_getaffinity(0)) // max(1, self.processes))

    @property
    def model(self) -> Any:
        if self._model is None and self._model_error is None:
            self.preload()
        if self._model_error is not None:
            raise InputError(self._model_error, code="model_unavailable")
        return self._model

    # --- helpers for task bodies ---
    def upload(self) -> bytes:
        data = get_redis().get(records.blob_key(self.request.id))
        if data is None:
            raise InputError("The uploaded file is no longer stored (it expired or the job was cancelled).")
        return data

    def progress(self, percent: int) -> None:
        records.set_progress(get_redis(), self.request.id, percent)

    # --- record transitions ---
    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        attempts = records.mark_started(get_redis(), task_id, f"{socket.gethostname()}:{os.getpid()}")
        if attempts == records.NOT_FOUND:
            log.warning("job %s has no record (expired or never accepted); dropped", task_id)
            raise Ignore()
        if attempts == records.ALREADY_FINAL:
            log.info("job %s already ended (cancelled or done); not run again", task_id)
            raise Ignore()
        self._started = time.monotonic()

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        records.finish(get_redis(), task_id, JobStatus.SUCCESS, result=retval)
        self._count(JobStatus.SUCCESS)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        records.finish(get_redis(), task_id, JobStatus.FAILURE, error=classify(exc))
        self._count(JobStatus.FAILURE)

    def _count(self, status: JobStatus) -> None:
        """The run time and final state, for `/metrics` (one pipelined Redis round trip)."""
        seconds = time.monotonic() - self._started if self._started else 0.0
        jobstats.record(get_redis(), self.job_type, status.value, seconds)


def classify(exc: BaseException) -> dict[str, str]:
    """One readable reason per failure: the user's input, a time limit, or our own fault."""
    if isinstance(exc, PlatformError):
        return exc.to_dict()
    if isinstance(exc, SoftTimeLimitExceeded):
        return {"code": "time_limit_exceeded", "message": "The job ran past its time limit and was stopped."}
    return {"code": "internal_error", "message": f"The worker failed: {type(exc).__name__}: {exc}"}
