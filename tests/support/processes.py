"""The platform builder (`launcher.platform`) as the tests use it: their defaults, and their own Celery apps."""

from __future__ import annotations

import os
from collections.abc import Mapping

from launcher import platform
from launcher.platform import Proc, free_port, settings_of, spawn
from launcher.sandbox import AMQP_ROOT

ROOT = platform.PROJECT_ROOT
LOGS = platform.LOGS


def start_api(env: Mapping[str, str]) -> tuple[Proc, str]:
    """The API with 2 gunicorn workers (the tests that count them rely on it)."""
    return platform.start_api({**env, "API_WORKERS": "2"})


def start_worker(env: Mapping[str, str], queue: str, name: str, concurrency: int = 1, *flags: str,
                 app: str = "workers.celery_app") -> Proc:
    """A worker pool; a test-only Celery app (e.g. `support.fragile_worker`) is found under tests/."""
    if app.startswith("support."):
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT / "tests")]))}
    return platform.start_worker(env, queue, name, concurrency, *flags, app=app)


def env_for(vhost: str, prefix: str, **overrides: str) -> dict[str, str]:
    """A platform's environment on the shared RabbitMQ's `vhost` and the shared Redis under `prefix`."""
    return platform.platform_env(f"{AMQP_ROOT}/{vhost}", prefix, **overrides)


__all__ = ["LOGS", "ROOT", "Proc", "env_for", "free_port", "settings_of", "spawn", "start_api", "start_worker"]
