"""A worker app for fault tests: the platform's own workers, whose audio_length task misbehaves on a
marker in the job's URL. Test-only: the product catalog knows nothing of it.

- `/poison` in the URL: the worker child running the job kills itself (SIGKILL), on every delivery.
- `/stubborn` in the URL: the job swallows its soft time limit and runs on, so only the hard limit
  (15 s later) stops it.
- `/no-memory` in the URL: the job runs, then its child runs out of memory in Celery's own handling of it,
  where no hook of the job's can catch it: a `MemoryError` leaves the child (its result is not stored).

Any other job runs as usual. Start it with `start_worker(..., app="support.fragile_worker")`.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from celery import signals
from celery.exceptions import SoftTimeLimitExceeded

import workers.audio_length.task  # noqa: F401  (registers the task this app wraps)
from workers.celery_app import app

POISON = "/poison"
STUBBORN = "/stubborn"
NO_MEMORY = "/no-memory"


@signals.worker_init.connect
def _wrap(**_: Any) -> None:
    """In the worker only (importing this module elsewhere changes nothing), before its pool starts."""
    task_class = type(app.tasks["audio_length.run"])
    measure = task_class.run

    def misbehaving(self: Any, payload: dict[str, Any]) -> Any:
        url = str(payload.get("url", ""))
        if POISON in url:
            os.kill(os.getpid(), signal.SIGKILL)
        if STUBBORN in url:
            _ignore_soft_limit()
        return measure(self, payload)

    task_class.run = misbehaving
    store_result = task_class.on_success

    def out_of_memory_after(self: Any, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        if args and NO_MEMORY in str(args[0].get("url", "")):
            raise MemoryError  # Celery lets it out of `on_success`, as out of its own code around the hooks
        store_result(self, retval, task_id, args, kwargs)

    task_class.on_success = out_of_memory_after


def _ignore_soft_limit() -> None:
    never = threading.Event()
    while True:
        try:
            never.wait()
        except SoftTimeLimitExceeded:
            continue  # what a badly behaved job does


__all__ = ["NO_MEMORY", "POISON", "STUBBORN", "app"]
