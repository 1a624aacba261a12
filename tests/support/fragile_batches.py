"""A worker app for batching fault tests: the platform's own workers, whose sentiment engine kills its worker
child (SIGKILL, as a segfault or the OOM killer would) on a text holding `/poison`, on every delivery. Any
other text runs as usual. Test-only: the product catalog knows nothing of it. Start it with
`isolated_platform("sentiment", app="support.fragile_batches", ...)`.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from celery import signals

import workers.sentiment.task  # noqa: F401  (registers the task this app wraps)
from workers.celery_app import app

POISON = "/poison"


@signals.worker_init.connect
def _wrap(**_: Any) -> None:
    """In the worker only (importing this module elsewhere changes nothing), before its pool starts."""
    task_class = type(app.tasks["sentiment.run"])
    run_batch = task_class.run_batch

    def crashing(self: Any, payloads: list[dict[str, Any]], runs: list[Any]) -> Any:
        if any(POISON in str(payload) for payload in payloads):
            os.kill(os.getpid(), signal.SIGKILL)
        return run_batch(self, payloads, runs)

    task_class.run_batch = crashing


__all__ = ["POISON", "app"]
