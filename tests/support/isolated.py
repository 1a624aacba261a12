"""A second, small platform for a worker configured unlike the session's (another model, missing weights).

It has its own vhost and key prefix (`launcher.platform.isolated`), so no session worker takes its jobs
and its model status never mixes with the session's: an API under gunicorn and one worker pool, both
with `env` on top.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from launcher.platform import isolated
from support.processes import ROOT, Proc


@contextmanager
def isolated_platform(queue: str, concurrency: int = 1, app: str = "workers.celery_app",
                      **env: str) -> Iterator[tuple[str, Proc]]:
    """Yield (API base URL, worker) once the worker consumes `queue`; everything is removed afterwards.
    The worker runs Celery app `app`; its `extra` holds the platform's `vhost`, `key_prefix` and the API's
    `api_pid` (gunicorn's master). `env` overrides the platform's settings (e.g. API_WORKERS, default 1)."""
    if app.startswith("support."):  # a test-only app (e.g. `support.fragile_worker`) lives under tests/
        env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]), **env}
    with isolated({queue: concurrency}, apps={queue: app}, **{"API_WORKERS": "1", **env}) as platform:
        worker = platform.procs[queue]
        worker.extra.update(vhost=platform.vhost, key_prefix=platform.prefix, api_pid=str(platform.procs["api"].pid))
        assert platform.url is not None
        yield platform.url, worker
