"""The base of every job task: Celery's hooks handed to the job's lifecycle (`workers.lifecycle`) and its
model (`workers.models`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import Reject

from common.errors import InputError
from common.settings import get_settings
from workers import lifecycle, memory, models
from workers.lifecycle import JobRun


class JobTask(Task):
    """Base of every job task. Subclasses (made by `job_task`) set `job_type`; a model-based type
    overrides `load_model`, and its body reads `self.model`. Per-job state lives on the job's request
    (`current`), never on this object, which every job of its process shares."""

    job_type = ""
    throws = (InputError,)
    ignore_result = True  # the job record holds state and result; Celery's result backend is not written
    resultrepr_maxsize = 200  # Celery's "succeeded" log line: the result is in the record (1024 cost ~5 % here)
    Request = "workers.request:JobRequest"  # bounded deliveries and hard time limits, in the main process
    processes = 1  # the pool's concurrency, set by `celery_app` in the parent before it forks

    def load_model(self) -> Any:
        return None

    def preload(self) -> None:
        models.load(self.job_type, self.load_model)

    @property
    def model(self) -> Any:
        return models.get(self.job_type, self.load_model)

    def torch_threads(self) -> int:
        return models.torch_threads(self.processes)

    # --- batching (`workers.batching`), for a type whose spec says `batches=True` ---
    def batch_weight(self, payload: dict[str, Any]) -> int:
        """How much of a batch's budget one job takes: one, unless the type counts its inputs."""
        return 1

    def batch_budget(self) -> int:
        """The most weight a batch holds, its leader's included; by default only `<TYPE>_BATCH_MAX` bounds it."""
        return get_settings().types[self.job_type].batch_max

    @property
    def current(self) -> JobRun:
        """This job's run, kept on its request (made here when the body runs without `before_start`)."""
        run: JobRun | None = getattr(self.request, "job_run", None)
        if run is None or run.job_id != self.request.id:
            run = self.request.job_run = JobRun(self.request.id, self.job_type, bool(self.request.called_directly))
        return run

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The job's body. Past its process's memory cap (`workers.memory`) it fails `out_of_memory`: a bare
        `MemoryError` reaching Celery's main process would stop the whole worker, siblings' jobs included."""
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            if memory.is_out_of_memory(exc):
                raise memory.OutOfMemory(self.job_type) from None  # drops the frames holding what was allocated
            raise

    # --- for task bodies ---
    def upload(self) -> bytes:
        return lifecycle.read_upload(self.current)

    def progress(self, percent: int) -> None:
        lifecycle.progress(self.current, percent)

    # --- Celery's hooks ---
    # Each hook runs in the pool child, outside `__call__`. Celery lets a `MemoryError` out of `on_success` (and,
    # raised while `on_failure` runs, out of the whole trace) to its main process, which then stops the worker;
    # a torch "can't allocate memory" there is logged and dropped, leaving the job STARTED. So past the memory
    # cap each hook ends the job FAILURE `out_of_memory` itself (its child is replaced after it, as for the body).
    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        run = JobRun(task_id, self.job_type, bool(self.request.called_directly))
        failure = self._out_of_memory(lambda: lifecycle.start(run), "to start")
        if failure is not None:
            raise failure  # the body is not run; Celery hands the failure to `on_failure`
        self.request.job_run = run

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        failure: Exception | None
        try:
            failure = self._out_of_memory(lambda: lifecycle.succeed(self.current, retval), "to store its result")
        except Reject:
            raise  # the store is out: the message is requeued
        except Exception as exc:  # e.g. a result JSON cannot encode: Celery would only log it, the job left STARTED
            failure = exc
        if failure is not None:
            lifecycle.fail(self.current, failure)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        failure = self._out_of_memory(lambda: lifecycle.fail(self.current, exc), "to store its failure")
        if failure is not None:
            lifecycle.fail(self.current, failure)

    def _out_of_memory(self, step: Callable[[], None], doing: str) -> memory.OutOfMemory | None:
        """Run `step`; past the memory cap return the job's `OutOfMemory` (the frames holding what was allocated
        are dropped with the exception), else None. Any other exception is raised."""
        try:
            step()
        except Exception as exc:
            if not memory.is_out_of_memory(exc):
                raise
            return memory.OutOfMemory(self.job_type, doing)
        return None
