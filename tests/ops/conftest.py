"""A platform of its own for the operations tests: its own vhost and key prefix, the API under gunicorn
with JSON logs, a worker pool on every queue but one (`HELD`, where jobs wait), and Flower started as
Compose starts it (`python -m launcher flower`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
import requests

from launcher.platform import start_api, start_flower
from ops.stack import HELD, Flower, OpsPlatform
from support import services
from support.processes import env_for, free_port, start_worker
from support.wait import until


@pytest.fixture(scope="session")
def ops() -> Iterator[OpsPlatform]:
    from common.catalog import CATALOG

    services.require_services()
    vhost = services.create_vhost()
    run = uuid.uuid4().hex[:8]
    prefix = f"test-ops-{run}:"
    env = env_for(vhost, prefix, LOG_FORMAT="json", API_WORKERS="2",
                  RABBITMQ_MANAGEMENT_URL=services.MANAGEMENT.replace("http://", "http://guest:guest@"))
    api_proc, api = start_api(env, f"ops-api-{run}")
    workers = {t.name: start_worker(env, t.queue, f"ops-{t.name}-{run}", 1) for t in CATALOG if t.name != HELD}

    def consuming() -> bool:
        for proc in workers.values():
            proc.alive()
        queues = {q["name"]: q for q in requests.get(f"{api}/v1/queues", timeout=5).json()["queues"]}
        return all((queues[name]["consumers"] or 0) >= 1 for name in workers)

    try:
        until(consuming, 120, "a consumer on every queue but the held one in /v1/queues")
        yield OpsPlatform(env, api, api_proc, workers, prefix)
    finally:
        for proc in [*workers.values(), api_proc]:
            proc.stop()
        services.delete_vhost(vhost)
        services.delete_keys(prefix)


@pytest.fixture(scope="session")
def flower(ops: OpsPlatform) -> Iterator[Flower]:
    """Flower with no password set: it must print the one it generated."""
    port = free_port()
    env = {**ops.env, "FLOWER_PORT": str(port), "FLOWER_USER": "ops"}
    env.pop("FLOWER_PASSWORD", None)
    proc = start_flower(env, f"flower-{port}")
    url = f"http://127.0.0.1:{port}"
    try:
        match = until(lambda: re.search(r"Flower password for this run: (\S+)", proc.tail(200)), 30,
                      f"Flower's generated password in its output\n{proc.tail()}")
        until(lambda: requests.get(f"{url}/healthcheck", timeout=2).ok, 60, f"Flower at {url}\n{proc.tail()}")
        yield Flower(url, "ops", match.group(1), proc)
    finally:
        proc.stop()
