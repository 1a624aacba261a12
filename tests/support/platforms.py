"""Small platforms of their own for the tests that disturb a service: a vhost on the shared RabbitMQ (or a
private node), a private Redis or the shared one under a key prefix, the API under gunicorn, worker pools."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
import requests

from launcher.platform import start_api, wait_consuming
from support import services
from support.processes import Proc, env_for, start_worker
from support.wait import until

SHARED_MANAGEMENT = services.MANAGEMENT.replace("http://", "http://guest:guest@")
FINAL = ("SUCCESS", "FAILURE", "REVOKED")


@contextmanager
def shared_vhost() -> Iterator[str]:
    """A vhost of its own on the shared RabbitMQ; its AMQP URL."""
    services.require_services()
    vhost = services.create_vhost()
    try:
        yield f"{services.AMQP_ROOT}/{vhost}"
    finally:
        services.delete_vhost(vhost)


def platform_env(broker_url: str, redis_url: str, management_url: str = SHARED_MANAGEMENT,
                 **extra: str) -> dict[str, str]:
    """The settings of a platform on these services, with a key prefix of its own and local fetches allowed."""
    env = env_for("", f"test-{uuid.uuid4().hex[:8]}:", FETCH_ALLOWLIST="127.0.0.1", **extra)
    env.update(BROKER_URL=broker_url, RABBITMQ_MANAGEMENT_URL=management_url, REDIS_URL=redis_url)
    return env


@contextmanager
def queued_api(prefix: str, **extra: str) -> Iterator[tuple[dict[str, str], str, Proc]]:
    """An API (one gunicorn worker) on a vhost of its own that no worker consumes yet, so its jobs wait in their
    queue until the test starts a pool there (`worker_pool`); its environment, URL and process."""
    vhost = services.create_vhost()
    try:
        env = env_for(vhost, prefix, API_WORKERS="1", **extra)
        proc, url = start_api(env)
        try:
            yield env, url, proc
        finally:
            proc.stop()
    finally:
        services.delete_vhost(vhost)


@contextmanager
def worker_pool(env: dict[str, str], api: str, queue: str = "audio_length", concurrency: int = 1) -> Iterator[Proc]:
    """A worker pool consuming `queue`, once the API's `/ready` counts it."""
    worker = start_worker(env, queue, f"{queue}-{uuid.uuid4().hex[:6]}", concurrency)
    try:
        wait_consuming(env, [queue], [worker], api)
        yield worker
    finally:
        worker.stop()


def job(api: str, job_id: str, **headers: str) -> dict[str, Any]:
    response = requests.get(f"{api}/v1/jobs/{job_id}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def final(api: str, job_id: str, timeout_s: float = 90, **headers: str) -> dict[str, Any]:
    return until(lambda: (r := job(api, job_id, **headers))["status"] in FINAL and r, timeout_s, f"job {job_id} to end")


def stored_record(redis_url: str, prefix: str, job_id: str) -> dict[str, Any] | None:
    """The job's record as the store holds it, fields the API does not show included."""
    with redis.Redis.from_url(redis_url) as r:
        raw: dict[bytes, bytes] = r.hgetall(f"{prefix}job:{job_id}")  # type: ignore[assignment]
    return {k.decode(): v.decode() for k, v in raw.items()} or None


def job_keys(redis_url: str, prefix: str) -> set[bytes]:
    with redis.Redis.from_url(redis_url) as r:
        return set(r.scan_iter(match=f"{prefix}job:*", count=1000))


__all__ = ["FINAL", "final", "job", "job_keys", "platform_env", "queued_api", "shared_vhost", "stored_record",
           "worker_pool"]
