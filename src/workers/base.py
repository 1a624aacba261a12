"""What every job task shares: record transitions, attempts, timing and error classification."""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from celery import Task
from celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded, TimeLimitExceeded

from common import catalog, records, store
from common.errors import InputError, PlatformError
from common.records import JobStatus
from common.settings import get_settings
from common.store import get_redis
from workers import memory
from workers.request import poison_error

log = logging.getLogger(__name__)
T = TypeVar("T")


class JobTask(Task):
    """Base of every job task. Subclasses (made by `job_task`) set `job_type`; a model-based type
    overrides `load_model`, and its body reads `self.model`."""

    job_type = ""
    keeps_upload = False  # kept past a successful end, as long as the record (`records.finish`)
    throws = (InputError,)
    ignore_result = True  # the job record holds state and result; Celery's result backend is not written
    resultrepr_maxsize = 200  # Celery's "succeeded" log line: the result is in the record (1024 cost ~5 % here)
    Request = "workers.request:JobRequest"  # bounded deliveries and hard time limits, in the main process
    processes = 1  # the pool's concurrency, set by `celery_app` in the parent before it forks
    _model: Any = None
    _model_error: str | None = None
    _started: float = 0.0
    _attempt: int | None = None  # this process's current attempt at its job (`records.mark_started`)
    _upload: bytes | None = None  # the current job's upload, read with its start

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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The job's body. Past its process's memory cap (`workers.memory`) it fails `out_of_memory`: a bare
        `MemoryError` reaching Celery's main process would stop the whole worker, siblings' jobs included."""
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            if memory.is_out_of_memory(exc):
                raise memory.OutOfMemory(self.job_type) from None  # drops the frames holding what was allocated
            raise

    # --- helpers for task bodies ---
    def upload(self) -> bytes:
        data, self._upload = self._upload, None  # read with the start of the job (`before_start`)
        if data is None:
            data = self._store("read the upload", lambda: get_redis().get(records.blob_key(self.request.id)))  # type: ignore[assignment]
        if data is None:
            raise InputError("The uploaded file is no longer stored (it expired or the job was cancelled).")
        return data

    def progress(self, percent: int) -> None:
        """Best effort: during a Redis outage (unreachable, full, read-only: `store.is_outage`) the job goes on
        without it (its final write, retried, sets progress 100), rather than waiting on a figure nobody can
        read meanwhile."""
        try:
            records.set_progress(get_redis(), self.request.id, percent, self._attempt)
        except redis.RedisError as exc:
            if not store.is_outage(exc):
                raise
            log.warning("job %s: progress %d%% not stored: %s: %s", self.request.id, percent, type(exc).__name__, exc)

    # --- record transitions ---
    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        # The task object outlives its job: until this job's start is stored, nothing of the previous
        # job's (its attempt number fences `_finish`) may stand for this one's.
        self._started, self._attempt, self._upload = 0.0, None, None
        worker = f"{socket.gethostname()}:{os.getpid()}"
        job_type = catalog.BY_NAME.get(self.job_type)
        if job_type is not None and job_type.upload is not None:
            attempts, self._upload = self._store(
                "mark it started", lambda: records.start_with_upload(get_redis(), task_id, worker))
        else:
            attempts = self._store("mark it started", lambda: records.mark_started(get_redis(), task_id, worker))
        if attempts == records.NOT_FOUND:
            log.warning("job %s has no record (expired or never accepted); dropped", task_id)
            raise Ignore()
        if attempts == records.ALREADY_FINAL:
            log.info("job %s already ended (cancelled or done); not run again", task_id)
            raise Ignore()
        self._started, self._attempt = time.monotonic(), attempts
        if attempts > get_settings().max_deliveries:
            self._park(task_id, attempts)

    def _park(self, task_id: str, attempts: int) -> None:
        """A delivery past `MAX_DELIVERIES`: the whole worker died each time, so no main process could
        decide (`workers.request`). Fail the job and dead-letter its message without running it."""
        error = poison_error(self.job_type, attempts)
        self._finish(task_id, JobStatus.FAILURE, error=error)
        log.error("job %s: %s", task_id, error["message"])
        raise Reject(error["message"], requeue=False)

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        too_large = oversized_result(retval, get_settings().result_max_bytes)
        if too_large is not None:
            log.error("job %s: %s", task_id, too_large["message"])
            self._finish(task_id, JobStatus.FAILURE, error=too_large)
            return
        self._finish(task_id, JobStatus.SUCCESS, result=retval)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if isinstance(exc, TimeLimitExceeded):
            # The hard limit, called in the worker's main process after `JobRequest.on_failure` has stored
            # it for the attempt its child ran (or requeued the message): this task object knows no attempt.
            return
        if store.is_outage(exc) and not self.request.called_directly:
            # The store failed, not the job (an upload read past its retries): run it again later.
            raise Reject(f"Redis unavailable ({type(exc).__name__}: {exc}); the message is requeued, not acked",
                         requeue=True) from None
        # Past the soft time limit the hard one kills the child 15 s later: retry for less than that.
        budget_s = 10.0 if isinstance(exc, SoftTimeLimitExceeded) else None
        self._finish(task_id, JobStatus.FAILURE, budget_s, error=classify(exc))

    def _finish(self, task_id: str, status: JobStatus, budget_s: float | None = None, **outcome: Any) -> None:
        """Store this attempt's end (unless the job already ended or a later attempt started) and count it."""
        attempt, run_s = self._attempt, time.monotonic() - self._started if self._started else 0.0

        def write() -> bool:
            return records.finish(get_redis(), task_id, status, attempt=attempt, stats_of=(self.job_type, run_s),
                                  keep_upload=self.keeps_upload and status is JobStatus.SUCCESS, **outcome)

        if not self._store(f"store its {status.value}", write, budget_s):
            log.info("job %s: attempt %s ended %s, not stored: the job had already ended or a later attempt "
                     "started", task_id, attempt, status.value)

    def _store(self, what: str, write: Callable[[], T], budget_s: float | None = None) -> T:
        """A record write that outlasts a Redis outage (unreachable, full, read-only...: `store.is_outage`).
        In the pool child it is retried (`store.retrying`) until `STORE_RETRY_S` or the job's soft time
        limit runs out; then `Reject(requeue=True)` makes the worker requeue the message instead of acking
        it (Celery lets `Reject` out of `before_start`, `on_success` and `on_failure`, and acks only after
        they return), so the job runs again later. Any other Redis error is a bug: raised as it is.
        Called directly (no worker) one try."""
        if self.request.called_directly:
            return write()
        try:
            return store.retrying(write, what, budget_s)
        except (redis.RedisError, SoftTimeLimitExceeded) as exc:
            if isinstance(exc, redis.RedisError) and not store.is_outage(exc):
                raise
            reason = f"could not {what} ({type(exc).__name__}: {exc}); the message is requeued, not acked"
            log.warning("%s", reason)
            raise Reject(reason, requeue=True) from None  # the reason says it all; Celery logs no chain


def oversized_result(result: Any, limit: int) -> dict[str, str] | None:
    """The error of a result whose JSON is larger than `limit` bytes (`RESULT_MAX_BYTES`), else None."""
    size = len(json.dumps(result).encode())
    if size <= limit:
        return None
    return {"code": "result_too_large",
            "message": f"The job's result is {size} bytes of JSON, larger than the {limit} bytes a result may "
                       f"take (RESULT_MAX_BYTES); it was not stored."}


def classify(exc: BaseException) -> dict[str, str]:
    """One readable reason per failure: the user's input, a time limit, or our own fault."""
    if isinstance(exc, PlatformError):
        return exc.to_dict()
    if isinstance(exc, SoftTimeLimitExceeded):
        return {"code": "time_limit_exceeded", "message": "The job ran past its time limit and was stopped."}
    return {"code": "internal_error", "message": f"The worker failed: {type(exc).__name__}: {exc}"}
