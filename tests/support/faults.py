"""Helpers of the fault tests: a platform of its own (the API and one audio_length pool) against a private
server or a vhost of the shared broker, its jobs followed through HTTP, and the workers' store-retry log lines."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from launcher.platform import wait_consuming
from support import services
from support.processes import Proc, env_for, start_api, start_worker

RUN = uuid.uuid4().hex[:8]
FINAL = ("SUCCESS", "FAILURE", "REVOKED")
SHARED_MANAGEMENT = services.MANAGEMENT.replace("http://", "http://guest:guest@")


def platform_env(prefix: str, broker_url: str, management_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = env_for("", prefix, FETCH_ALLOWLIST="127.0.0.1", **extra)
    env.update(BROKER_URL=broker_url, RABBITMQ_MANAGEMENT_URL=management_url, REDIS_URL=redis_url)
    return env


@contextmanager
def platform(env: dict[str, str], name: str, concurrency: int = 2,
             app: str = "workers.celery_app") -> Iterator[tuple[str, Proc]]:
    """The API under gunicorn and one audio_length pool (of Celery app `app`); yields (API URL, worker) once
    the pool consumes."""
    api, url = start_api(env)
    worker = start_worker(env, "audio_length", f"{name}-{RUN}", concurrency, app=app)
    try:
        wait_consuming(env, ["audio_length"], [api, worker], url)
        yield url, worker
    finally:
        worker.stop()
        api.stop()


def alive(proc: Proc) -> bool:
    return proc.alive()


@contextmanager
def shared_vhost() -> Iterator[str]:
    services.require_services()
    vhost = services.create_vhost()
    try:
        yield f"{services.AMQP_ROOT}/{vhost}"
    finally:
        services.delete_vhost(vhost)


def submit(api: str, session: requests.Session | None = None, **kwargs: Any) -> str:
    response = (session or requests).post(f"{api}/v1/jobs/audio_length", timeout=60, **kwargs)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def job(api: str, job_id: str) -> dict[str, Any]:
    response = requests.get(f"{api}/v1/jobs/{job_id}", timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_503(response: requests.Response, code: str) -> None:
    assert response.status_code == 503, f"{response.status_code}: {response.text}"
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"], response.text
    assert int(response.headers["Retry-After"]) > 0


def longest_store_retry_s(worker: Proc, what: str, error: str = "") -> int:
    """The longest a record write (`what`) has been retried so far (refused with `error`, a redis-py exception
    class name, when given), from the worker's retry log lines."""
    pattern = rf"{re.escape(what)}: Redis unavailable \({re.escape(error)}.*\((\d+) s so far\)"
    return max((int(s) for s in re.findall(pattern, worker.log.read_text(errors="replace"))), default=-1)


def all_final(api: str, ids: list[str]) -> dict[str, dict[str, Any]] | None:
    records = {i: job(api, i) for i in ids}
    return records if all(r["status"] in FINAL for r in records.values()) else None


def gave_up(worker: Proc, job_id: str, what: str) -> bool:
    """The worker's log says it gave up on `what` for this job (its log lines carry the job id)."""
    return any(job_id in line and f"{what}: Redis still unavailable" in line
               for line in worker.log.read_text(errors="replace").splitlines())


def finished(api: str) -> int:
    """SUCCESS finishes reported by the workers, from the API's /metrics (`jobs_finished_total`)."""
    text = requests.get(f"{api}/metrics", timeout=30).text
    wanted = {"type": "audio_length", "state": "SUCCESS"}
    return sum(int(sample.value) for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "jobs_finished_total" and sample.labels == wanted)


def finish_times(records: dict[str, dict[str, Any]]) -> list[float]:
    return [dt.datetime.fromisoformat(rec["finished_at"].replace("Z", "+00:00")).timestamp()
            for rec in records.values()]
