"""No job is lost: routing to its own queue, a killed worker child, a broker that is down, cancels."""

from __future__ import annotations

import io
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import psutil
import pytest
import redis
import requests

from common import records
from common.settings import get_settings
from support import services
from support.jobs import submit, wait_final
from support.media import tone
from support.processes import env_for, start_worker
from support.vhosts import declared, idle_vhost, queue_depths
from support.wait import until


@pytest.fixture(autouse=True)
def _workers(workers: object) -> None:
    pass


def job_record(job_id: str) -> dict:
    with redis.Redis.from_url(get_settings().redis_url) as r:
        return records.load(r, job_id) or {}


def test_a_job_waits_in_its_own_types_queue() -> None:
    with idle_vhost() as (vhost, client):
        response = client.post("/v1/jobs/scrape", json={"url": "http://127.0.0.1:9/", "selectors": {"t": "title"}})
        assert response.status_code == 202
        until(lambda: queue_depths(vhost).get("scrape") == 1, 20, "the job in the scrape queue")
        assert {name: n for name, n in queue_depths(vhost).items() if n} == {"scrape": 1}


def test_a_pending_job_cancelled_never_runs(platform_env) -> None:
    """A worker that starts after the cancel never heard the revoke: only the record (`records._START`) keeps
    the job from running. Queue figures come from a passive declare: exact, where the management API's lag
    and once showed an empty queue before the worker had taken anything."""
    with idle_vhost() as (vhost, client):
        job_id = client.post("/v1/jobs/audio_length", json={"url": "http://127.0.0.1:9/a.wav"}).get_json()["job_id"]
        cancelled = client.delete(f"/v1/jobs/{job_id}")
        assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "REVOKED"
        upload = {"audio": (io.BytesIO(tone(0.1)), "a.wav")}
        behind = client.post("/v1/jobs/audio_length", data=upload).get_json()["job_id"]
        assert declared(vhost, "audio_length") == (2, 0)
        worker = start_worker(env_for(vhost, platform_env["KEY_PREFIX"]), "audio_length", "late-audio", 1)
        try:
            until(lambda: declared(vhost, "audio_length")[1] == 1, 60, "the worker consuming")
            # One process, prefetch 1: the job queued behind is delivered once the cancelled one is acked.
            assert until(lambda: final(behind), 60, "the job queued behind it to end")["status"] == "SUCCESS"
            assert declared(vhost, "audio_length") == (0, 1)
            record = job_record(job_id)
            assert record["status"] == "REVOKED" and record["attempts"] == 0 and record["started_at"] is None
        finally:
            worker.stop()


def running_pid(app, job_id: str) -> int:
    """The worker child running the job, as its record names it (`worker`: host:pid, set when it starts)."""
    worker = job_record(job_id).get("worker") or ":0"
    return int(worker.rsplit(":", 1)[1])


def test_worker_child_killed_mid_job_runs_it_again(http, site, app) -> None:
    url = site.add("/slow/kill.wav", tone(0.5), "audio/wav") + "?delay=3"
    job_id = submit(http, "audio_length", json={"url": url})
    pid = until(lambda: job_record(job_id).get("status") == "STARTED" and running_pid(app, job_id), 30, "STARTED")
    os.kill(pid, signal.SIGKILL)
    record = wait_final(http, job_id)
    assert record["status"] == "SUCCESS", record
    assert record["attempts"] == 2
    assert record["result"]["duration_seconds"] == pytest.approx(0.5)


def test_a_started_job_cancelled_stops_and_ends_revoked(http, site, app) -> None:
    url = site.add("/slow/cancel.wav", tone(0.5), "audio/wav") + "?delay=20"
    job_id = submit(http, "audio_length", json={"url": url})
    pid = until(lambda: job_record(job_id).get("status") == "STARTED" and running_pid(app, job_id), 30, "STARTED")
    response = http.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 200 and response.json()["status"] == "REVOKED"
    until(lambda: stopped(pid), 15, "the child running the job to be stopped")
    record = wait_final(http, job_id, 1)
    assert record["status"] == "REVOKED" and record["error"]["code"] == "revoked"


def stopped(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_job_that_starts_while_it_is_cancelled_is_stopped(http, site, app) -> None:
    """The cancel read the job PENDING and it started before the revoke went out (here: the record is set
    back to what that read saw while the job runs): the revoke still terminates it."""
    url = site.add("/slow/cancel-race.wav", tone(0.5), "audio/wav") + "?delay=20"
    job_id = submit(http, "audio_length", json={"url": url})
    pid = until(lambda: job_record(job_id).get("status") == "STARTED" and running_pid(app, job_id), 30, "STARTED")
    with redis.Redis.from_url(get_settings().redis_url) as r:
        r.hset(records.job_key(job_id), "status", "PENDING")
    response = http.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 200 and response.json()["status"] == "REVOKED"
    until(lambda: stopped(pid), 15, "the child running the job to be stopped")


@contextmanager
def broker_refusing_api() -> Iterator[Any]:
    """A test client of an API whose broker connections are refused (nothing listens on its port), on the
    run's Redis and key prefix: its revokes fail as when RabbitMQ is down."""
    from api import create_app

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = get_settings().model_copy(update=dict(broker_url=f"amqp://guest:guest@127.0.0.1:{port}//"))
    yield create_app(settings).test_client()


def test_a_pending_job_cancelled_while_the_broker_is_down_is_cancelled(platform_env) -> None:
    """The revoke cannot be sent, but the job never started: the record alone keeps it from running
    (test_a_pending_job_cancelled_never_runs), so the cancel holds and answers 200."""
    with idle_vhost() as (vhost, client), broker_refusing_api() as cut_off:
        job_id = client.post("/v1/jobs/audio_length", json={"url": "http://127.0.0.1:9/a.wav"}).get_json()["job_id"]
        response = cut_off.delete(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["status"] == "REVOKED" and job_record(job_id)["status"] == "REVOKED"
        assert declared(vhost, "audio_length") == (1, 0)  # still queued: dropped when delivered


def test_a_running_job_cancelled_while_the_broker_is_down_says_so_and_a_retry_stops_it(http, site, app) -> None:
    """The record says REVOKED (its result will not be stored) but the stop could not be sent: 503
    `broker_unavailable`, never a silent 200 for a job still running. A DELETE again sends the stop: 200."""
    url = site.add("/slow/cancel-cut-off.wav", tone(0.5), "audio/wav") + "?delay=20"
    job_id = submit(http, "audio_length", json={"url": url})
    pid = until(lambda: job_record(job_id).get("status") == "STARTED" and running_pid(app, job_id), 30, "STARTED")
    with broker_refusing_api() as cut_off:
        response = cut_off.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"]["code"] == "broker_unavailable" and int(response.headers["Retry-After"]) > 0
    assert job_record(job_id)["status"] == "REVOKED" and psutil.pid_exists(pid) and not stopped(pid)

    again = http.delete(f"/v1/jobs/{job_id}")
    assert again.status_code == 200 and again.json()["status"] == "REVOKED", again.text
    until(lambda: stopped(pid), 15, "the child running the job to be stopped")


def test_broker_down_is_503_and_leaves_no_job_behind(http) -> None:
    with redis.Redis.from_url(get_settings().redis_url) as r:
        def job_keys() -> set[bytes]:
            return set(r.scan_iter(match=f"{get_settings().key_prefix}job:*", count=1000))

        before = job_keys()
        services.rabbitmqctl("stop_app")
        try:
            response = http.post("/v1/jobs/audio_length", files={"audio": ("a.wav", tone(0.1))})
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "broker_unavailable"
            assert int(response.headers["Retry-After"]) > 0
            assert http.get("/ready").status_code == 503
            assert job_keys() == before
        finally:
            services.rabbitmqctl("start_app")
    until(lambda: http.get("/ready").json()["checks"]["broker"] == "ok", 60, "the API to see the broker again")
    until(lambda: http.get("/ready").json()["status"] == "ready", 120, "every worker to reconnect")
    job_id = submit(http, "audio_length", files={"audio": ("a.wav", tone(0.2))})
    assert wait_final(http, job_id)["status"] == "SUCCESS"


def test_a_whole_worker_killed_mid_job_hands_it_to_another(platform_env, site, app) -> None:
    """SIGKILL of a worker's main process and pool: RabbitMQ gives the unacked job to the other worker."""
    url = site.add("/slow/handover.wav", tone(0.4), "audio/wav") + "?delay=4"
    with idle_vhost() as (vhost, client):
        env = env_for(vhost, platform_env["KEY_PREFIX"], FETCH_ALLOWLIST="127.0.0.1")
        workers = [start_worker(env, "audio_length", f"audio-{n}", 1) for n in (1, 2)]
        try:
            until(lambda: consumers(vhost, "audio_length") == 2, 90, "two workers on the queue")
            job_id = client.post("/v1/jobs/audio_length", json={"url": url}).get_json()["job_id"]
            child = until(lambda: job_record(job_id).get("status") == "STARTED" and running_pid(app, job_id), 30,
                          "the job to start")
            running = next(w for w in workers if child in {c.pid for c in psutil.Process(w.pid).children()})
            kill_whole_worker(running.pid)
            record = until(lambda: final(job_id), 60, "the job to finish on the other worker")
            assert record["status"] == "SUCCESS" and record["attempts"] == 2
        finally:
            for worker in workers:
                worker.stop()


def test_sigterm_lets_the_running_job_finish_first(platform_env, site) -> None:
    """Warm shutdown: the job running when SIGTERM arrives ends SUCCESS, once, and the worker exits."""
    url = site.add("/slow/warm.wav", tone(0.4), "audio/wav") + "?delay=3"
    with idle_vhost() as (vhost, client):
        worker = start_worker(env_for(vhost, platform_env["KEY_PREFIX"], FETCH_ALLOWLIST="127.0.0.1"),
                              "audio_length", "warm-audio", 1)
        try:
            until(lambda: consumers(vhost, "audio_length") == 1, 60, "the worker")
            job_id = client.post("/v1/jobs/audio_length", json={"url": url}).get_json()["job_id"]
            until(lambda: job_record(job_id).get("status") == "STARTED", 30, "the job to start")
            assert worker.stop(signal.SIGTERM, timeout_s=60) == 0
            record = job_record(job_id)
            assert record["status"] == "SUCCESS" and record["attempts"] == 1
            # nothing requeued (the management API's figures lag up to 5 s)
            until(lambda: queue_depths(vhost).get("audio_length") == 0, 20, "an empty queue")
        finally:
            worker.stop()


def kill_whole_worker(pid: int) -> None:
    """SIGKILL a worker's main process and its pool children at once, as when its machine dies."""
    main = psutil.Process(pid)
    for process in [main, *main.children(recursive=True)]:
        process.kill()


def consumers(vhost: str, queue: str) -> int:
    url = f"{services.MANAGEMENT}queues/{quote(vhost, safe='')}/{queue}"
    response = requests.get(url, auth=services.AUTH, timeout=10)
    return int(response.json().get("consumers", 0)) if response.ok else 0


def final(job_id: str) -> dict | None:
    record = job_record(job_id)
    return record if record.get("status") in ("SUCCESS", "FAILURE", "REVOKED") else None
