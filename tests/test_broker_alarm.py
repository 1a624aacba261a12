"""A blocked broker answers within seconds: a private RabbitMQ node under a disk alarm, the API under gunicorn
(the default BROKER_CONFIRM_TIMEOUT_S, 5 s) and a real worker. Submits answer 503; cancels answer 200 for a job
that never started and 503 for one that runs (its stop cannot be sent). Figures are printed (`pytest -s`)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import redis
import requests

from support import services
from support.media import tone
from support.platforms import final, job, job_keys, platform_env, stored_record, worker_pool
from support.private import private_rabbitmq
from support.processes import start_api
from support.wait import until
from support.web import Site

CONFIRM_TIMEOUT_S = 5  # the default
MARGIN_S = 1.5  # the API's own work and a busy machine
CANCEL_MARGIN_S = 2.0


def timed_submit(api: str) -> tuple[float, requests.Response]:
    started = time.monotonic()
    response = requests.post(f"{api}/v1/jobs/audio_length", files={"audio": ("a.wav", tone(0.2))}, timeout=60)
    return time.monotonic() - started, response


def assert_broker_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "broker_unavailable", response.text
    assert int(response.headers["Retry-After"]) > 0


def test_submits_under_a_disk_alarm_answer_503_in_time_leave_nothing_and_the_api_recovers() -> None:
    with private_rabbitmq() as broker:
        env = platform_env(broker.url, services.REDIS_URL, broker.management_url)
        prefix = env["KEY_PREFIX"]
        proc, api = start_api(env)
        try:
            with worker_pool(env, api):
                assert final(api, timed_submit(api)[1].json()["job_id"])["status"] == "SUCCESS"
                before = job_keys(services.REDIS_URL, prefix)
                broker.node.ctl("set_disk_free_limit", "100000GB")
                try:
                    first, second, health_s = under_alarm(api)
                    assert job_keys(services.REDIS_URL, prefix) == before, "a refused job left its record"
                    with redis.Redis.from_url(services.REDIS_URL) as r:
                        assert not list(r.scan_iter(match=f"{prefix}blob:*")), "a refused job left its upload"
                finally:
                    broker.node.ctl("set_disk_free_limit", "50MB")
                accepted = until(lambda: (a := timed_submit(api)[1]).status_code == 202 and (a,), 30,
                                 "the same API accepting again")[0]
                assert final(api, accepted.json()["job_id"])["status"] == "SUCCESS"
                # the refused jobs' messages, routed once the alarm cleared, found no record: no job came back
                assert len(job_keys(services.REDIS_URL, prefix)) == len(before) + 1
        finally:
            proc.stop()
    print(f"\nbroker alarm → 503: first submits {min(first):.2f}–{max(first):.2f} s; later ones "
          f"{sorted(second)[len(second) // 2] * 1000:.0f} ms median, {max(second):.2f} s max; /health ≤ "
          f"{max(health_s) * 1000:.0f} ms meanwhile")


def under_alarm(api: str) -> tuple[list[float], list[float], list[float]]:
    """Submits while the broker is blocked: the first ones wait for the confirm timeout, those after them
    answer at once (one per API process may try again); `/health` answers meanwhile. Their seconds."""
    with ThreadPoolExecutor(24) as pool:
        first = list(pool.map(lambda _: timed_submit(api), range(4)))
        later = [pool.submit(timed_submit, api) for _ in range(20)]
        health_s = []
        while not all(f.done() for f in later):
            started = time.monotonic()
            assert requests.get(f"{api}/health", timeout=30).status_code == 200
            health_s.append(time.monotonic() - started)
        second = [f.result() for f in later]
    for _, response in first + second:
        assert_broker_unavailable(response)
    assert max(s for s, _ in first) < CONFIRM_TIMEOUT_S + MARGIN_S, [s for s, _ in first]
    assert max(s for s, _ in second) < CONFIRM_TIMEOUT_S + MARGIN_S
    assert sum(1 for s, _ in second if s < 1) >= len(second) - 2, "the gate let every submit wait"
    assert max(health_s) < 1, f"/health took {max(health_s):.2f} s"
    return [s for s, _ in first], [s for s, _ in second], health_s


def timed_cancel(api: str, job_id: str) -> tuple[float, requests.Response]:
    started = time.monotonic()
    response = requests.delete(f"{api}/v1/jobs/{job_id}", timeout=30)  # Celery's own revoke never answered
    return time.monotonic() - started, response


def running_pid(prefix: str, job_id: str) -> int:
    """The worker child running the job, as its record names it once it started (`worker`: host:pid)."""
    def started() -> str | None:
        record = stored_record(services.REDIS_URL, prefix, job_id) or {}
        return record.get("worker") if record.get("status") == "STARTED" else None

    return int(until(started, 60, f"job {job_id} to start").rsplit(":", 1)[1])


def stopped(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_cancels_under_a_disk_alarm_answer_in_time(site: Site) -> None:
    """A PENDING job's cancel needs no message (its record says REVOKED): 200 at once. A running job's stop
    cannot be sent: 503 `broker_unavailable` once the confirm timeout passed, and so again. Once the
    alarm clears, a DELETE again stops it, and the cancelled pending job is dropped when delivered."""
    url = site.add("/slow/alarm-cancel.wav", tone(0.5), "audio/wav") + "?delay=40"
    with private_rabbitmq() as broker:
        env = platform_env(broker.url, services.REDIS_URL, broker.management_url)
        proc, api = start_api(env)
        try:
            with worker_pool(env, api):  # one process: the second job waits behind the first
                submit = lambda body: requests.post(f"{api}/v1/jobs/audio_length", json=body, timeout=30)  # noqa: E731
                running = submit({"url": url}).json()["job_id"]
                pid = running_pid(env["KEY_PREFIX"], running)
                pending = submit({"url": url}).json()["job_id"]
                assert job(api, pending)["status"] == "PENDING"
                broker.node.ctl("set_disk_free_limit", "100000GB")
                try:
                    pending_s, answer = timed_cancel(api, pending)
                    assert answer.status_code == 200 and answer.json()["status"] == "REVOKED", answer.text
                    running_s, answer = timed_cancel(api, running)
                    assert_broker_unavailable(answer)
                    assert job(api, running)["status"] == "REVOKED" and not stopped(pid)
                    again_s, answer = timed_cancel(api, running)  # a DELETE again tries again, as long
                    assert_broker_unavailable(answer)
                finally:
                    broker.node.ctl("set_disk_free_limit", "50MB")
                assert max(pending_s, running_s, again_s) < CONFIRM_TIMEOUT_S + CANCEL_MARGIN_S, \
                    (pending_s, running_s, again_s)
                until(lambda: timed_cancel(api, running)[1].status_code == 200, 30, "the stop sent after the alarm")
                until(lambda: stopped(pid), 15, "the child running the job to be stopped")
                behind = submit({"url": site.url + "/slow/alarm-cancel.wav"}).json()["job_id"]
                assert final(api, behind)["status"] == "SUCCESS"  # delivered after the cancelled pending job
                record = job(api, pending)
                assert record["status"] == "REVOKED" and record["attempts"] == 0 and record["started_at"] is None
        finally:
            proc.stop()
    print(f"\nbroker alarm → cancel: pending job 200 in {pending_s * 1000:.0f} ms; running job 503 in "
          f"{running_s:.2f} s, again in {again_s:.2f} s")
