"""The base of every job task: Celery's hooks handed to the job's lifecycle (`workers.lifecycle`) and its
model (`workers.models`)."""

from __future__ import annotations

from typing import Any

from celery import Task

from common.errors import InputError
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
    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        run = JobRun(task_id, self.job_type, bool(self.request.called_directly))
        lifecycle.start(run)
        self.request.job_run = run

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        lifecycle.succeed(self.current, retval)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        lifecycle.fail(self.current, exc)
