"""The workers' Celery app: `celery -A workers.celery_app worker -Q <type>`.

It imports every job type's task module (each is light: heavy libraries load inside the worker
child, once), and the completion webhooks' (`workers.webhook_delivery`, the `webhooks` queue). A worker
consumes only the queues named with `-Q`, and preloads only their models.
"""

from __future__ import annotations

from typing import Any

from celery import signals

from common import logs
from common.broker import make_celery
from common.catalog import BY_NAME, CATALOG
from common.settings import get_settings
from workers import memory, models
from workers.base import JobTask
from workers.request import DeclareDeadLetterQueues

app = make_celery(include=(*(t.task_module for t in CATALOG), "workers.webhook_delivery"))
app.steps["consumer"].add(DeclareDeadLetterQueues)
_consumed: set[str] = set()


def job_task(name: str, base: type[JobTask] = JobTask) -> Any:
    """The decorator of a job type's task: name and time limits come from the catalog (its queue from
    `task_routes`, as Celery wants it) (a time limit
    from `<TYPE>_TIME_LIMIT_S` when set).
    A type with a model passes `base`, a `JobTask` subclass whose `load_model` loads it."""
    job_type = BY_NAME[name]
    return app.task(
        base=base,
        bind=True,
        name=job_type.task_name,
        soft_time_limit=job_type.soft_time_limit_s(get_settings()),
        time_limit=job_type.hard_time_limit_s(get_settings()),
        job_type=name,
    )


@signals.setup_logging.connect
def _setup_logging(loglevel: Any = None, **_: Any) -> None:
    """The platform's log format (text, or JSON with `LOG_FORMAT=json`), with the job id on task lines."""
    logs.configure(get_settings(), "worker", loglevel)


@signals.celeryd_init.connect
def _log_early(instance: Any, **_: Any) -> None:
    """Before Celery's own start-up warnings; with JSON logs, Celery's start banner is left out."""
    logs.configure(get_settings(), "worker")
    if get_settings().log_format == "json":
        instance.quiet = True


@signals.celeryd_init.connect
def _bound_child_memory(conf: Any, options: dict[str, Any], **_: Any) -> None:
    """Each pool replaces a child after a job once its peak RSS passed 3/4 of `<TYPE>_MAX_MEMORY_MB`
    (`--max-memory-per-child` on the command line still wins); the cap itself holds during each job
    (`_cap_child_memory`)."""
    cap = memory.cap_mb(get_settings(), options.get("queues") or ())
    if cap:
        conf.worker_max_memory_per_child = memory.replace_after_kib(cap)


@signals.celeryd_init.connect
def _prefetch(conf: Any, options: dict[str, Any], **_: Any) -> None:
    """`<TYPE>_PREFETCH` of the consumed types (the smallest, when one worker consumes several);
    `--prefetch-multiplier` on the command line still wins."""
    types = get_settings().types
    prefetch = [types[queue].prefetch for queue in options.get("queues") or () if queue in types]
    if prefetch:
        conf.worker_prefetch_multiplier = min(prefetch)


@signals.celeryd_after_setup.connect
def _remember_queues(sender: Any, instance: Any, **_: Any) -> None:
    _consumed.update(instance.app.amqp.queues.consume_from or {})
    JobTask.processes = int(instance.concurrency or 1)  # children inherit it: torch threads per child


@signals.worker_process_init.connect
def _cap_child_memory(**_: Any) -> None:
    """In each child, before its model loads (a model too large for the cap says so in `/ready`)."""
    memory.limit_this_process(memory.cap_mb(get_settings(), _consumed))


@signals.worker_process_init.connect
def _preload_models(**_: Any) -> None:
    """Load each consumed type's model once per child process, never in the parent before fork."""
    for task in app.tasks.values():
        if isinstance(task, JobTask) and task.job_type in _consumed:
            task.preload()
    models.keep_reporting()


@signals.worker_process_shutdown.connect
def _withdraw_model_statuses(**_: Any) -> None:
    """A child that stops (the worker's shutdown, or its replacement) takes back what it reported."""
    models.withdraw_all()
