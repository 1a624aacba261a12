"""A second, small platform for a worker configured unlike the session's (another model, missing weights).

It has its own vhost and key prefix, so no session worker takes its jobs and its model status never
mixes with the session's: an API under gunicorn and one worker pool, both with `env` on top.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from support import services
from support.processes import Proc, env_for, free_port, spawn, start_worker
from support.wait import until


@contextmanager
def isolated_platform(queue: str, concurrency: int = 1, app: str = "workers.celery_app",
                      **env: str) -> Iterator[tuple[str, Proc]]:
    """Yield (API base URL, worker) once the worker consumes `queue`; everything is removed afterwards.
    The worker runs Celery app `app`; its `extra` holds the platform's `vhost`, `key_prefix` and the API's
    `api_pid` (gunicorn's master). `env` overrides the platform's settings (e.g. API_WORKERS, default 1)."""
    run = uuid.uuid4().hex[:8]
    vhost, prefix, port = services.create_vhost(), f"test-{run}:", free_port()
    penv = env_for(vhost, prefix, **{"API_PORT": str(port), "API_WORKERS": "1", **env})
    url = f"http://127.0.0.1:{port}"
    api = spawn(f"api-{queue}-{run}", [sys.executable, "-m", "gunicorn", "-c", "src/api/gunicorn_conf.py",
                                       "api.wsgi:app"], penv)
    worker = start_worker(penv, queue, f"{queue}-{run}", concurrency, app=app)
    worker.extra.update(vhost=vhost, key_prefix=prefix, api_pid=str(api.pid))
    try:
        def consuming() -> bool:
            for proc in (api, worker):
                if proc.popen.poll() is not None:
                    raise AssertionError(f"{proc.name} exited:\n{proc.tail()}")
            return requests.get(f"{url}/ready", timeout=5).json()["queues"][queue]["consumers"] >= 1

        until(consuming, 120, f"an isolated {queue} worker consuming at {url}")
        yield url, worker
    finally:
        worker.stop()
        api.stop()
        services.delete_vhost(vhost)
        services.delete_keys(prefix)
