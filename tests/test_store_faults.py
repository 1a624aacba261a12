"""The store says no: Redis full (`maxmemory` under `noeviction`) or made a read-only replica by a failover,
mid-run. Submits answer 503 `store_unavailable` and reads go on; the workers hold the jobs they run and
the ones they take meanwhile (retrying each start and end they cannot write, acknowledging none), and
every job ends SUCCESS, each run once, after the store takes writes again. And how `store.is_outage`
sorts the error replies of a real Redis.

Each test runs against private Redis servers (tests/support/private.py). Figures are printed (`pytest -s`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import redis
import requests

from common import records, store
from support.faults import (
    RUN,
    SHARED_MANAGEMENT,
    all_final,
    assert_503,
    finish_times,
    finished,
    job,
    longest_store_retry_s,
    platform,
    platform_env,
    shared_vhost,
    submit,
)
from support.fragile_worker import STUBBORN
from support.media import tone
from support.private import PrivateRedis, failed_over, full, private_redis
from support.processes import Proc, start_worker
from support.wait import until
from support.web import Site

# How each refusal shows in redis-py, the context manager that makes the private Redis refuse, and the
# record writes the workers must hold meanwhile. A full Redis still takes the end of a running job
# (`records._FINISH` may use memory past `maxmemory`), never a new job or a start.
REFUSALS: dict[str, tuple[str, Callable[[PrivateRedis], AbstractContextManager[Any]], tuple[str, ...]]] = {
    "full": ("OutOfMemoryError", full, ("mark it started",)),
    "read-only replica": ("ReadOnlyError", failed_over, ("mark it started", "store its SUCCESS")),
}
JOBS = 8


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_jobs_outlast_a_store_that_refuses_writes(site: Site, refusal: str) -> None:
    """Jobs queued and running when Redis starts refusing writes, and a worker that joins meanwhile: each
    worker holds the record writes refused (starts; the ends too on a replica), retrying them for 10 s
    and more, acknowledging nothing; a full Redis stores the ends of the jobs that were running. Then
    Redis takes writes again: every job ends SUCCESS with `attempts == 1`, and the finished-job
    statistics count each once."""
    error, refuse, held = REFUSALS[refusal]
    name = refusal.replace(" ", "-")
    url = site.add(f"/store/{name}.wav", tone(0.5), "audio/wav") + "?delay=3"
    with private_redis() as server, shared_vhost() as broker_url:
        env = platform_env(f"test-store-{RUN}-{name}:", broker_url, SHARED_MANAGEMENT, server.url)
        with platform(env, f"store-{name}") as (api, worker):
            ids = [submit(api, json={"url": url}) for _ in range(JOBS)]
            until(lambda: statuses(api, ids) >= {"STARTED", "PENDING"}, 60, "jobs running and jobs queued")
            late: Proc | None = None
            try:
                with refuse(server):
                    refused_at, refused_from = time.monotonic(), time.time()
                    answers = refused_answers(api, ids[-1])
                    late = start_worker(env, "audio_length", f"store-late-{RUN}", 1)
                    until(lambda: all(max(longest_store_retry_s(w, what, error) for w in (worker, late)) >= 10
                                      for what in held) and longest_store_retry_s(late, "mark it started") >= 10,
                          120, f"the workers retrying {held} for 10 s", interval_s=0.5)
                    held_s, refused_until = time.monotonic() - refused_at, time.time()
                lifted = time.monotonic()
                jobs = until(lambda: all_final(api, ids), 120, "every job to end")
                done_s = time.monotonic() - lifted
                counted = finished(api)
            finally:
                if late is not None:
                    late.stop()
    assert answers == {"submit": 503, "upload": 503, "read": 200, "wait": 200}, answers
    stored_while_refused = [f for f in finish_times(jobs) if refused_from < f < refused_until]
    assert (len(stored_while_refused) > 0) is ("store its SUCCESS" not in held), stored_while_refused
    assert {i: r["status"] for i, r in jobs.items() if r["status"] != "SUCCESS"} == {}
    assert {i: r["attempts"] for i, r in jobs.items() if r["attempts"] != 1} == {}, "a job ran twice"
    assert counted == JOBS, f"{counted} finishes counted for {JOBS} jobs"
    print(f"\nRedis {refusal}: writes refused for {held_s:.1f} s ({error}); after they were allowed again, all "
          f"{JOBS} jobs SUCCESS in {done_s:.1f} s, each run once")


def statuses(api: str, ids: list[str]) -> set[str]:
    return {job(api, i)["status"] for i in ids}


def refused_answers(api: str, job_id: str) -> dict[str, int]:
    """While Redis refuses writes: a submit (JSON or upload) answers 503 `store_unavailable` (never 500), a
    read and a long-poll still answer from the store."""
    answers = {"submit": requests.post(f"{api}/v1/jobs/audio_length", json={"url": "http://127.0.0.1:9/a.wav"},
                                       timeout=30),
               "upload": requests.post(f"{api}/v1/jobs/audio_length", files={"audio": ("a.wav", tone(0.1))},
                                       timeout=30),
               "read": requests.get(f"{api}/v1/jobs/{job_id}", timeout=30),
               "wait": requests.get(f"{api}/v1/jobs/{job_id}", params={"wait": 0.5}, timeout=30)}
    for name in ("submit", "upload"):
        # (admission control may say `store_full` first, before the store itself refuses)
        assert_503(answers[name], answers[name].json()["error"]["code"])
        assert answers[name].json()["error"]["code"] in ("store_unavailable", "store_full"), answers[name].text
    return {name: response.status_code for name, response in answers.items()}


def test_a_hard_time_limit_that_cannot_be_stored_is_requeued_not_acknowledged(site: Site) -> None:
    """A job stopped by its hard time limit while Redis is a read-only replica: the worker's main process
    cannot write its FAILURE, so it requeues the message (acknowledged, the job would stay STARTED with no
    run to come). The next delivery waits for Redis, runs, and ends FAILURE `time_limit_exceeded`."""
    env_name = f"test-store-{RUN}-hard-limit:"
    with private_redis() as server, shared_vhost() as broker_url:
        env = platform_env(env_name, broker_url, SHARED_MANAGEMENT, server.url, AUDIO_LENGTH_TIME_LIMIT_S="2")
        with platform(env, "store-hard-limit", concurrency=1, app="support.fragile_worker") as (api, worker):
            job_id = submit(api, json={"url": f"{site.url}{STUBBORN}/forever.wav"})
            until(lambda: job(api, job_id)["status"] == "STARTED", 60, "the job to start")
            with failed_over(server):
                until(lambda: "hard time limit, record not written" in worker.log.read_text(errors="replace"), 60,
                      "the hard time limit, not stored")
                until(lambda: longest_store_retry_s(worker, "mark it started", "ReadOnlyError") >= 1, 60,
                      "the job delivered again, its start held")
            record = until(lambda: all_final(api, [job_id]), 90, "the job to end")[job_id]
    assert record["status"] == "FAILURE" and record["error"]["code"] == "time_limit_exceeded", record
    assert record["attempts"] == 2, record


def test_redis_refusals_are_outages_and_bugs_are_not() -> None:
    """Each refusal as a real Redis 7 sends it, to a plain command, a command of a pipeline or a transaction,
    and a write inside one of the records' scripts. (LOADING is redis-py's BusyLoadingError, a
    ConnectionError: no reply to provoke.)"""
    with private_redis() as server, server.client() as r:
        outages = {**refused_writes(r, "OOM", full(server)), **refused_writes(r, "READONLY", replica_of_nobody(r)),
                   **refused_writes(r, "MISCONF", unable_to_persist(server, r)), **busy_replies(r)}
        r.set("a string", "x")
        r.set(records.job_key("a string"), "x")
        bugs = {"WRONGTYPE": error_of(lambda: r.hget("a string", "field")),
                "script error": error_of(lambda: r.eval("return redis.call('NOSUCHCOMMAND')", 0)),
                "wrong arguments": error_of(lambda: r.execute_command("EXPIRE", "a string", "soon")),
                "records on a wrong type": error_of(lambda: records.mark_started(r, "a string"))}
    assert {name: exc for name, exc in outages.items() if not store.is_outage(exc)} == {}
    assert {name: exc for name, exc in bugs.items() if store.is_outage(exc)} == {}
    assert store.is_outage(redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"))


def refused_writes(r: redis.Redis, code: str, refusing: AbstractContextManager[Any]) -> dict[str, Exception]:
    r.hset(records.job_key("refused"), mapping={"status": "PENDING", "attempts": 0})
    with refusing:
        found = {f"{code} command": error_of(lambda: r.set("k", "v")),
                 f"{code} in a pipeline": error_of(lambda: r.pipeline(False).get("k").set("k", "v").execute()),
                 f"{code} in a transaction": error_of(lambda: r.pipeline().set("k", "v").expire("k", 10).execute()),
                 f"{code} in a script": error_of(lambda: records.mark_started(r, "refused"))}
    assert {name: store.reply_code(exc) for name, exc in found.items() if store.reply_code(exc) != code} == {}
    return found


@contextmanager
def replica_of_nobody(r: redis.Redis) -> Iterator[None]:
    """A replica of a master that never answers: read-only, its data untouched (it never syncs)."""
    r.replicaof("127.0.0.1", "1")
    try:
        yield
    finally:
        r.replicaof("NO", "ONE")


@contextmanager
def unable_to_persist(server: PrivateRedis, r: redis.Redis) -> Iterator[None]:
    """A snapshot that fails (its folder is gone) with a save point configured: Redis refuses writes (MISCONF)
    until no save point is left."""
    import shutil

    from support.private import BASE

    shutil.rmtree(BASE / f"redis-{server.port}")
    r.config_set("save", "3600 1")
    try:
        r.bgsave()
        until(lambda: r.info("persistence")["rdb_last_bgsave_status"] == "err", 30, "the snapshot to fail")
        yield
    finally:
        r.config_set("save", "")


def busy_replies(r: redis.Redis) -> dict[str, Exception]:
    """Commands sent while a script runs past `busy-reply-threshold` (100 ms here) are answered BUSY."""
    r.config_set("busy-reply-threshold", 100)
    spin = "local t = redis.call('TIME')[1] repeat until redis.call('TIME')[1] - t >= 2 return 1"
    with redis.Redis(connection_pool=r.connection_pool) as other:
        runner = threading.Thread(target=lambda: other.eval(spin, 0))
        runner.start()
        try:
            found = {"BUSY command": until(lambda: error_of(lambda: r.set("k", "v")), 5, "a BUSY reply"),
                     "BUSY script": error_of(lambda: records.mark_started(r, "refused"))}
        finally:
            runner.join()
    return found


def error_of(call: Callable[[], object]) -> Exception:
    try:
        call()
    except redis.RedisError as exc:
        return exc
    raise AssertionError("Redis took it")
