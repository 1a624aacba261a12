"""Faults survived, nothing lost: Redis stopped and started, RabbitMQ stopped and started under load.

Each test runs a platform of its own against a private server (tests/support/private.py), so stopping
it never disturbs the shared services other tests run against. Figures are printed (`pytest -s`).
"""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests

from launcher.platform import start_flower
from support import services
from support.faults import (
    RUN,
    SHARED_MANAGEMENT,
    alive,
    all_final,
    assert_503,
    finish_times,
    finished,
    gave_up,
    job,
    longest_store_retry_s,
    platform,
    platform_env,
    shared_vhost,
    submit,
)
from support.media import tone
from support.private import private_rabbitmq, private_redis
from support.processes import Proc, free_port, start_api, start_worker
from support.wait import until
from support.web import Site


def test_redis_outage_answers_503_and_every_job_ends_success(site: Site) -> None:
    """Redis stopped for over a minute while jobs run: the API answers 503 `store_unavailable` (never 500)
    to submits and reads; the workers keep retrying their record writes (a job that finished while Redis
    was down retried its SUCCESS for 60 s and more) instead of dropping them; once Redis is back, every job
    accepted before and after ends SUCCESS with its right result, each run once."""
    url = site.add("/faults/half-second.wav", tone(0.5), "audio/wav") + "?delay=1"
    with private_redis() as store, shared_vhost() as broker_url:
        env = platform_env(f"test-faults-{RUN}:", broker_url, SHARED_MANAGEMENT, store.url)
        with platform(env, "faults-store") as (api, worker):
            before = [submit(api, json={"url": url}) for _ in range(20)]
            until(lambda: {job(api, i)["status"] for i in before} >= {"STARTED", "SUCCESS"}, 60,
                  "some jobs done and some running")
            store.stop()
            try:
                answers = store_outage(api, before[-1], worker)
            finally:
                store.start()
            restarted, back = time.monotonic(), time.time()
            until(lambda: requests.get(f"{api}/v1/jobs/{before[0]}", timeout=30).status_code == 200, 60,
                  "the API reading the store again")
            api_back_s = time.monotonic() - restarted
            after = [submit(api, json={"url": url}) for _ in range(5)]
            records = until(lambda: all_final(api, before + after), 180, "every job to end")
            all_done_s = time.monotonic() - restarted
    assert set(answers) == {503}, answers
    assert {i: r["status"] for i, r in records.items() if r["status"] != "SUCCESS"} == {}
    assert [r["result"]["duration_seconds"] for r in records.values()] == [pytest.approx(0.5)] * len(records)
    assert {i: r["attempts"] for i, r in records.items() if r["attempts"] != 1} == {}, "a job ran twice"
    first_write_s = min(f for f in finish_times(records) if f > back) - back
    print(f"\nRedis outage: {len(answers)} API answers while down, all 503; after Redis was back: API reading again "
          f"in {api_back_s:.2f} s, first held write stored in {first_write_s:.2f} s, all {len(records)} jobs final "
          f"in {all_done_s:.1f} s")


def store_outage(api: str, job_id: str, worker: Proc) -> list[int]:
    """While Redis is down: submits and reads answer 503. Waits until a worker has retried a job's
    SUCCESS for 60 s (the job finished after Redis stopped); returns the status of every API answer."""
    answers: list[int] = []

    def check_api() -> None:
        for response in (requests.post(f"{api}/v1/jobs/audio_length", json={"url": "http://127.0.0.1:9/a.wav"},
                                       timeout=30),
                         requests.post(f"{api}/v1/jobs/audio_length", files={"audio": ("a.wav", tone(0.1))},
                                       timeout=30),
                         requests.get(f"{api}/v1/jobs/{job_id}", timeout=30),
                         requests.get(f"{api}/v1/jobs/{job_id}", params={"wait": 1}, timeout=30)):
            answers.append(response.status_code)
            assert_503(response, "store_unavailable")

    check_api()
    assert requests.get(f"{api}/ready", timeout=30).status_code == 503

    def retried_a_minute() -> bool:
        check_api()
        return longest_store_retry_s(worker, "store its SUCCESS") >= 60

    until(retried_a_minute, 150, "a worker retrying a finished job's SUCCESS for 60 s", interval_s=2)
    return answers


def test_a_final_write_past_its_retry_budget_requeues_the_job(site: Site) -> None:
    """With `STORE_RETRY_S=2`, a job that finishes while Redis is down gives up storing its SUCCESS after 2 s:
    its message is requeued, not acked. The worker takes it again at once and retries starting it; once Redis
    is back, that delivery runs it and the job ends SUCCESS on its second attempt."""
    url = site.add("/faults/budget.wav", tone(0.3), "audio/wav") + "?delay=2"
    with private_redis() as store, shared_vhost() as broker_url:
        env = platform_env(f"test-faults-b-{RUN}:", broker_url,
                           SHARED_MANAGEMENT, store.url, STORE_RETRY_S="2")
        with platform(env, "faults-budget", concurrency=1) as (api, worker):
            job_id = submit(api, json={"url": url})
            until(lambda: job(api, job_id)["status"] == "STARTED", 30, "the job to start")
            store.stop()
            try:
                until(lambda: gave_up(worker, job_id, "store its SUCCESS"), 60, "the worker to give up storing SUCCESS")
                until(lambda: gave_up(worker, job_id, "mark it started"), 60, "the requeued job delivered again")
            finally:
                store.start()
            record = until(lambda: all_final(api, [job_id]), 60, "the job to end")[job_id]
    assert record["status"] == "SUCCESS" and record["result"]["duration_seconds"] == pytest.approx(0.3)
    assert record["attempts"] == 2, record


def test_a_worker_started_while_redis_is_down_comes_up_and_runs_jobs_once_it_is_back() -> None:
    """Nothing in a worker's start needs Redis (Celery's result backend connects lazily and is never written,
    the model status write is best effort): it consumes its queue while Redis is down, and runs jobs after."""
    with private_redis() as store, shared_vhost() as broker_url:
        env = platform_env(f"test-faults-s-{RUN}:", broker_url,
                           SHARED_MANAGEMENT, store.url)
        api_proc, api = start_api(env)
        store.stop()
        worker = start_worker(env, "audio_length", f"faults-nostore-{RUN}", 1)
        try:
            until(lambda: alive(worker) and consumers(broker_url, "audio_length") >= 1, 120,
                  f"the worker consuming while Redis is down\n{worker.tail()}")
            until(lambda: alive(worker) and "model status not stored" in worker.tail(200), 120,
                  f"the pool child past its start (model loaded, its status not stored)\n{worker.tail()}")
            store.start()
            job_id = submit(api, files={"audio": ("a.wav", tone(0.2), "audio/wav")})
            record = until(lambda: all_final(api, [job_id]), 60, "the job to end")[job_id]
        finally:
            worker.stop()
            api_proc.stop()
    assert record["status"] == "SUCCESS" and record["attempts"] == 1, record


def consumers(broker_url: str, queue: str) -> int:
    vhost = broker_url.rsplit("/", 1)[1]
    response = requests.get(f"{services.MANAGEMENT}queues/{vhost}/{queue}", auth=services.AUTH, timeout=10)
    return int(response.json().get("consumers", 0)) if response.ok else 0


JOBS = 1000


def test_broker_restart_under_load_loses_no_job(site: Site) -> None:
    """1,000 jobs accepted, then RabbitMQ's app stopped and started while a worker runs them.

    At-least-once: a job running when the connection drops cannot be acked; the worker cancels it, and
    RabbitMQ delivers it again after the restart, so it may start twice (its record's `attempts` is 2).
    A job whose SUCCESS was stored but whose ack was lost is delivered again too, and `before_start`
    drops it (the record is final). `records._FINISH` never rewrites a final record, so each job's result
    is stored exactly once: no job is lost, none is SUCCESS twice."""
    prefix = f"test-faults-r-{RUN}:"
    password = secrets.token_hex(8)
    # A tiny WAV by URL, served 0.1 s late: four worker processes take about 25 s for the 1,000 jobs, long
    # enough to stop the broker in the middle (uploads of it run at ~300 jobs/s, done before stop_app is).
    url = site.add("/faults/tiny.wav", tone(0.05), "audio/wav") + "?delay=0.1"
    with private_rabbitmq() as broker:
        env = platform_env(prefix, broker.url, broker.management_url, services.REDIS_URL,
                           FLOWER_USER="faults", FLOWER_PASSWORD=password, FLOWER_PORT=str(free_port()))
        flower = start_flower(env, f"flower-faults-{RUN}")
        api_proc, api = start_api(env)
        worker: Proc | None = None
        try:
            ids = submit_many(api, url, JOBS)
            worker = start_worker(env, "audio_length", f"faults-broker-{RUN}", 4)
            figures = restart_under_load(broker, api, prefix, ids, worker)
            flower_sees_worker(f"http://127.0.0.1:{env['FLOWER_PORT']}", ("faults", password), worker, JOBS, flower)
        finally:
            for proc in (worker, api_proc, flower):
                if proc is not None:
                    proc.stop()
            services.delete_keys(prefix)
    print(f"\nBroker restart: {figures}")


def submit_many(api: str, url: str, n: int) -> list[str]:
    local = threading.local()

    def one(_: int) -> str:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return submit(api, local.session, json={"url": url})

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def restart_under_load(broker: Any, api: str, prefix: str, ids: list[str], worker: Proc) -> dict[str, Any]:
    """stop_app once the worker has finished 50 jobs; while the broker is down a submit is 503 with
    Retry-After and reads still answer; start_app; wait until every job is SUCCESS, with no restart."""
    with redis.Redis.from_url(services.REDIS_URL) as r:
        until(lambda: alive(worker) and finished(api) >= 50, 120, f"the worker's first 50 jobs\n{worker.tail()}")
        stopping = time.monotonic()
        broker.stop_app()
        stop_app_s = time.monotonic() - stopping
        try:
            done_when_down = finished(api)
            assert_503(requests.post(f"{api}/v1/jobs/audio_length", files={"audio": ("a.wav", tone(0.05))},
                                     timeout=60), "broker_unavailable")
            assert requests.get(f"{api}/v1/jobs/{ids[-1]}", timeout=30).status_code == 200  # Redis still answers
        finally:
            broker.start_app()
        down_s, back = time.monotonic() - stopping, time.time()
        late = until(lambda: accepted(api), 60, "the API to accept a job again by itself")
        records = until(lambda: all_success(r, prefix, [*ids, late]), 240, "every job to end SUCCESS")
    assert done_when_down < JOBS, "every job was done before the broker stopped: nothing was tested"
    alive(worker)
    twice = sorted(i for i, rec in records.items() if int(rec["attempts"]) > 1)
    completions = finished(api)  # jobstats: one count per SUCCESS a worker reported, stored or not
    assert completions >= len(records)
    return {"jobs": len(records), "done_when_stopped": done_when_down, "stop_app_s": round(stop_app_s, 1),
            "stop_app_to_start_app_accepting_s": round(down_s, 1),
            "first_finish_after_start_app_s": round(min(f for f in finish_times(records) if f > back) - back, 2),
            "lost": 0, "started_twice": len(twice), "ran_to_success_twice": completions - len(records)}


def accepted(api: str) -> str | None:
    response = requests.post(f"{api}/v1/jobs/audio_length", files={"audio": ("a.wav", tone(0.05))}, timeout=60)
    assert response.status_code in (202, 503), response.text
    return str(response.json()["job_id"]) if response.status_code == 202 else None


def all_success(r: redis.Redis, prefix: str, ids: list[str]) -> dict[str, dict[str, str]] | None:
    with r.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(f"{prefix}job:{job_id}", "status", "attempts", "finished_at")
        rows = pipe.execute()
    records = {i: {"status": (s or b"").decode(), "attempts": (a or b"0").decode(), "finished_at": (f or b"").decode()}
               for i, (s, a, f) in zip(ids, rows, strict=True)}
    failed = {i: rec for i, rec in records.items() if rec["status"] not in ("SUCCESS", "PENDING", "STARTED")}
    assert not failed, f"jobs lost or failed: {list(failed.items())[:5]}"
    return records if all(rec["status"] == "SUCCESS" for rec in records.values()) else None


def flower_sees_worker(url: str, auth: tuple[str, str], worker: Proc, jobs: int, flower: Proc) -> None:
    """Flower, started before the restart, answers again and lists the worker with the jobs it ran since."""
    def sees() -> bool:
        alive(flower)
        response = requests.get(f"{url}/api/workers", params={"refresh": 1}, auth=auth, timeout=30)
        totals = [w.get("stats", {}).get("total", {}).get("audio_length.run", 0)
                  for name, w in response.json().items() if name.startswith(worker.name)]
        return response.ok and bool(totals) and totals[0] >= jobs

    until(lambda: requests.get(f"{url}/healthcheck", timeout=5).ok, 60, f"Flower at {url}\n{flower.tail()}")
    until(sees, 120, f"Flower to list the worker with its {jobs} jobs\n{flower.tail()}", interval_s=1)
