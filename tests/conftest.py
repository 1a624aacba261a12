"""Fixtures: the real services (own vhost and key prefix per run), the API under gunicorn, and one
real Celery worker pool per catalog entry, started as processes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from launcher.platform import wait_consuming
from support import models, services
from support.jobs import ApiSession
from support.processes import Proc, env_for, settings_of, start_api, start_worker
from support.web import Site

RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def vhost() -> Iterator[str]:
    services.require_services()
    name = services.create_vhost()
    yield name
    services.delete_vhost(name)


@pytest.fixture(scope="session")
def platform_env(vhost: str, site: Site) -> Iterator[dict[str, str]]:
    """Environment of every platform process in this run; the test process itself uses it too.
    EuroMillions pages come from the local site; detection runs on weights the tests make (offline)."""
    prefix = f"test-{RUN}:"
    env = env_for(vhost, prefix, EUROMILLIONS_BASE_URL=f"{site.url}/results/", SENTIMENT_MODEL="vader",
                  DETECTION_MODEL=str(models.detection_weights()), ALLOW_DOWNLOADS="0", FETCH_ALLOWLIST="127.0.0.1")
    with settings_of(env):
        yield env
    services.delete_keys(prefix)


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    web = Site()
    yield web
    web.close()


@pytest.fixture(scope="session")
def api_url(platform_env: dict[str, str]) -> Iterator[str]:
    proc, url = start_api(platform_env)
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def workers(platform_env: dict[str, str], api_url: str) -> Iterator[dict[str, Proc]]:
    """One worker pool per catalog entry, each consuming its own queue; ready when every queue has a consumer."""
    from common.catalog import CATALOG

    procs = {t.name: start_worker(platform_env, t.queue, f"{t.name}-{RUN}", 2 if t.name != "detection" else 1)
             for t in CATALOG}
    try:
        wait_consuming(platform_env, [t.queue for t in CATALOG], list(procs.values()), api_url)
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.fixture
def start_extra_worker(platform_env: dict[str, str]) -> Iterator[Callable[..., Proc]]:
    """Factory for extra workers (kill and fault tests); each is stopped at the end of the test."""
    started: list[Proc] = []

    def start(queue: str, concurrency: int = 1, *extra: str) -> Proc:
        proc = start_worker(platform_env, queue, f"{queue}-extra{len(started)}-{RUN}", concurrency, *extra)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def http(api_url: str) -> Iterator[Any]:
    """A requests session whose paths are relative to the API."""

    with ApiSession(api_url) as session:
        yield session


@pytest.fixture(scope="session")
def app(platform_env: dict[str, str]) -> Any:
    from api import create_app

    return create_app()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()
