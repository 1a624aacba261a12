"""Dynamic batching (`workers.batching`) against the real broker and models: jobs gathered into one engine
call, each with its own record, end and acknowledgement."""

from __future__ import annotations

import datetime as dt
import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psutil
import pytest
import requests

from launcher import sandbox
from support.isolated import isolated_platform
from support.jobs import ApiSession, follow, submit
from support.processes import Proc, settings_of
from support.wait import until

TEXTS = ["What a wonderful day!", "This is awful and I hate it.", "The box is on the table.", "Great!",
         "I am not happy about this.", "Superb work, thank you."]


@pytest.fixture(scope="module")
def sentiment_batches(platform_env: dict[str, str]) -> Iterator[tuple[ApiSession, Proc]]:
    """A sentiment pool of 2 processes gathering up to 16 jobs, waiting up to 300 ms for them."""
    with (isolated_platform("sentiment", 2, SENTIMENT_BATCH_MAX="16", SENTIMENT_BATCH_WAIT_MS="300") as (url, worker),
          ApiSession(url) as http):
        yield http, worker


@pytest.fixture(scope="module")
def embedding_batches(platform_env: dict[str, str]) -> Iterator[tuple[ApiSession, Proc]]:
    """An embedding pool of 1 process gathering up to 4 jobs, waiting up to 1 s for them; a time limit long enough
    that the pace (`batching.budget`) of a loaded machine still lets 4 slow jobs run together."""
    with (isolated_platform("embedding", 1, EMBEDDING_BATCH_MAX="4", EMBEDDING_BATCH_WAIT_MS="1000",
                            EMBEDDING_TIME_LIMIT_S="1200") as (url, worker),
          ApiSession(url) as http):
        yield http, worker


@contextmanager
def publisher_of(worker: Proc) -> Iterator[Any]:
    """A Celery app and store settings of the isolated platform `worker` belongs to, to send a message the API
    would refuse (as a client of an older version could have queued)."""
    env = {"BROKER_URL": f"{sandbox.AMQP_ROOT}/{worker.extra['vhost']}", "REDIS_URL": os.environ["REDIS_URL"],
           "KEY_PREFIX": worker.extra["key_prefix"]}
    with settings_of(env):
        from common.broker import make_celery

        app = make_celery()
        try:
            yield app
        finally:
            app.close()


def submit_all(http: ApiSession, job_type: str, bodies: list[dict[str, Any]]) -> list[str]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda body: submit(http, job_type, json=body), bodies))


def test_64_single_text_jobs_run_in_batches_with_unbatched_labels(sentiment_batches) -> None:
    from workers.sentiment import core

    http, _ = sentiment_batches
    texts = [TEXTS[i % len(TEXTS)] + f" #{i}" for i in range(64)]
    ids = submit_all(http, "sentiment", [{"text": text} for text in texts])
    records = [follow(http, job_id) for job_id in ids]
    assert all(r["status"] == "SUCCESS" and r["attempts"] == 1 for r in records), records
    unbatched = core.analyze(texts, core.load_model("vader"))
    assert [{k: r["result"][k] for k in ("label", "score")} for r in records] == unbatched
    in_batches = [r for r in records if r["batch_size"] > 1]
    assert len(in_batches) > 32, [r["batch_size"] for r in records]
    assert max(r["batch_size"] for r in records) <= 16


def test_a_failing_member_fails_alone(sentiment_batches) -> None:
    from common import records

    http, worker = sentiment_batches
    ids = [str(uuid.uuid4()) for _ in range(8)]
    bad = ids[3]
    with publisher_of(worker) as app:
        from common.store import get_redis

        for job_id in ids:
            records.create(get_redis(), job_id, "sentiment")
        for job_id in ids:  # VADER raises TypeError on a number: the batch call fails, then each runs alone
            payload = {"text": 12345} if job_id == bad else {"text": "I love it."}
            app.send_task("sentiment.run", args=[payload], queue="sentiment", task_id=job_id)
    ended = {job_id: follow(http, job_id) for job_id in ids}
    assert ended[bad]["status"] == "FAILURE" and ended[bad]["error"]["code"] == "internal_error", ended[bad]
    assert "TypeError" in ended[bad]["error"]["message"]
    siblings = [r for job_id, r in ended.items() if job_id != bad]
    assert all(r["status"] == "SUCCESS" and r["result"]["label"] == "POSITIVE" for r in siblings), siblings
    assert ended[bad]["batch_size"] > 1, ended[bad]  # it ran in a batch with siblings


def test_a_member_past_max_deliveries_is_parked_alone(sentiment_batches) -> None:
    """A gathered job whose record already counts MAX_DELIVERIES attempts (its worker died each time) ends
    `poison_job` and its message goes to the dead-letter queue; the batch runs without it."""
    from kombu import Connection

    from common import records
    from common.broker import dead_letter_queue_name
    from common.settings import get_settings

    http, worker = sentiment_batches
    ids = [str(uuid.uuid4()) for _ in range(6)]
    spent = ids[2]
    with publisher_of(worker) as app:
        from common.store import get_redis

        for job_id in ids:
            records.create(get_redis(), job_id, "sentiment")
        get_redis().hset(records.job_key(spent), "attempts", get_settings().max_deliveries)
        for job_id in ids:
            app.send_task("sentiment.run", args=[{"text": "What a great day."}], queue="sentiment", task_id=job_id)
        ended = {job_id: follow(http, job_id) for job_id in ids}
        with Connection(get_settings().broker_url) as conn:
            _, parked, _ = conn.default_channel.queue_declare(dead_letter_queue_name("sentiment"), passive=True)
    assert ended[spent]["status"] == "FAILURE" and ended[spent]["error"]["code"] == "poison_job", ended[spent]
    assert parked == 1
    siblings = [r for job_id, r in ended.items() if job_id != spent]
    assert all(r["status"] == "SUCCESS" and r["attempts"] == 1 for r in siblings), siblings
    assert max(r["batch_size"] for r in siblings) > 1


def pool_child(worker: Proc) -> psutil.Process:
    children = psutil.Process(worker.pid).children()
    assert len(children) == 1, children
    return children[0]


def test_a_child_killed_mid_batch_runs_every_member_again(embedding_batches) -> None:
    http, worker = embedding_batches
    long_text = "The quick brown fox jumps over the lazy dog near the river bank. " * 20
    ids = submit_all(http, "embedding", [{"texts": [f"{i} {long_text}"] * 48} for i in range(4)])

    def all_in_one_batch() -> bool:  # started, counted, and in the engine call together
        seen = [http.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
        return all(r["status"] == "STARTED" and r["batch_size"] == 4 for r in seen)

    until(all_in_one_batch, 60, "the 4 jobs to run in one batch", interval_s=0.02)
    child = pool_child(worker)
    os.kill(child.pid, signal.SIGKILL)
    ended = [follow(http, job_id, 180) for job_id in ids]
    assert [(r["status"], r["attempts"]) for r in ended] == [("SUCCESS", 2)] * 4, ended
    assert all(len(r["result"]["vectors"]) == 48 for r in ended)


def test_cancel_of_one_pending_member(embedding_batches) -> None:
    http, _ = embedding_batches
    long_text = "A slow batch keeps the only process busy while the next jobs wait in the queue. " * 20
    busy = submit_all(http, "embedding", [{"texts": [f"{i} {long_text}"] * 48} for i in range(4)])
    until(lambda: http.get(f"/v1/jobs/{busy[0]}").json()["status"] == "STARTED", 60, "the busy batch to start",
          interval_s=0.02)
    waiting = submit_all(http, "embedding", [{"text": f"sentence {i}"} for i in range(4)])
    cancelled = http.delete(f"/v1/jobs/{waiting[1]}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "REVOKED", cancelled.text
    assert cancelled.json()["started_at"] is None  # cancelled while PENDING
    ended = {job_id: follow(http, job_id, 180) for job_id in busy + waiting}
    assert ended[waiting[1]]["status"] == "REVOKED" and ended[waiting[1]]["started_at"] is None
    others = [r for job_id, r in ended.items() if job_id != waiting[1]]
    assert all(r["status"] == "SUCCESS" for r in others), others
    assert max(ended[job_id]["batch_size"] for job_id in waiting if job_id != waiting[1]) > 1


def test_cancel_of_one_started_member_that_is_not_the_leader(embedding_batches) -> None:
    """Celery's main process knows only the leader's id: a revoke cannot reach a gathered member, so the
    member runs on, its end is refused by its REVOKED record, its message is acked (not run again), and the
    batch's other jobs end SUCCESS on their first attempt (no process was stopped)."""
    http, _ = embedding_batches
    long_text = "Each of the four jobs is slow enough to cancel one while the batch runs. " * 20
    ids = submit_all(http, "embedding", [{"texts": [f"{i} {long_text}"] * 48} for i in range(4)])

    def batch_running() -> list[dict[str, Any]] | None:
        seen = [http.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
        return seen if all(r["status"] == "STARTED" and r["batch_size"] == 4 for r in seen) else None

    seen = until(batch_running, 60, "the 4 jobs to run in one batch", interval_s=0.02)
    # the members' starts are stored together (one stamp); the leader's came first, on its own
    stamps = [r["started_at"] for r in seen]
    member = next(r["job_id"] for r in seen if stamps.count(r["started_at"]) > 1)
    cancelled = http.delete(f"/v1/jobs/{member}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "REVOKED", cancelled.text

    ended = {job_id: follow(http, job_id, 180) for job_id in ids}
    assert ended[member]["status"] == "REVOKED" and ended[member]["result"] is None, ended[member]
    assert ended[member]["attempts"] == 1 and ended[member]["started_at"] == cancelled.json()["started_at"]
    others = [r for job_id, r in ended.items() if job_id != member]
    assert [(r["status"], r["attempts"]) for r in others] == [("SUCCESS", 1)] * 3, others
    after = submit(http, "embedding", json={"text": "the pool is free again"})
    assert follow(http, after, 60)["status"] == "SUCCESS"
    assert http.get(f"/v1/jobs/{member}").json() == ended[member]  # its message did not run again


@pytest.fixture
def one_process_batches(platform_env: dict[str, str]) -> Iterator[tuple[ApiSession, Proc]]:
    """A sentiment pool of 1 process gathering up to 4 jobs, waiting up to 1 s for them: the first job queued
    is the leader, the next ones its members."""
    with (isolated_platform("sentiment", 1, SENTIMENT_BATCH_MAX="4", SENTIMENT_BATCH_WAIT_MS="1000") as (url, worker),
          ApiSession(url) as http):
        yield http, worker


def test_a_task_message_without_its_payload_does_not_fail_the_leader(one_process_batches) -> None:
    """A `sentiment.run` message with no argument (`[[], {}, {}]`: an older client, a hand-made message) among
    the gathered ones: `readable_member` reads `kwargs["payload"]`, a KeyError out of `join` fails the batch's
    leader (`internal_error`) although its own job was fine. Every batch that gathers it fails another."""
    from common import records

    http, worker = one_process_batches
    good = [str(uuid.uuid4()) for _ in range(4)]
    with publisher_of(worker) as app:
        from common.store import get_redis

        for job_id in good:
            records.create(get_redis(), job_id, "sentiment")
        app.send_task("sentiment.run", args=[{"text": "I love it."}], queue="sentiment", task_id=good[0])
        app.send_task("sentiment.run", args=[], kwargs={}, queue="sentiment", task_id=str(uuid.uuid4()))
        for job_id in good[1:]:
            app.send_task("sentiment.run", args=[{"text": "I love it."}], queue="sentiment", task_id=job_id)
    ended = {job_id: follow(http, job_id) for job_id in good}
    assert [(r["status"], r.get("error")) for r in ended.values()] == [("SUCCESS", None)] * 4, ended


LONG_TEXT = ("This is a great and wonderful day but the food was awful. " * 175)[:10_000]  # max_chars


def test_jobs_that_each_fit_their_time_limit_do_not_fail_it_together(platform_env: dict[str, str]) -> None:
    """The leader's `<TYPE>_TIME_LIMIT_S` covers the whole batch, unscaled: a batch is bounded in jobs, not in
    work, so valid jobs (VADER takes about 0.3 s a 10,000-character text here), each well inside the limit on its
    own, all end `time_limit_exceeded` once they are gathered together."""
    from support.jobs import submit

    with (isolated_platform("sentiment", 1, SENTIMENT_BATCH_MAX="8", SENTIMENT_BATCH_WAIT_MS="1000",
                            SENTIMENT_TIME_LIMIT_S="5") as (url, _), ApiSession(url) as http):
        body = {"texts": [f"{i} {LONG_TEXT}"[:10_000] for i in range(6)]}
        assert follow(http, submit(http, "sentiment", json={"text": "warm up"}))["status"] == "SUCCESS"
        alone = follow(http, submit(http, "sentiment", json=body))
        assert (alone["status"], alone["batch_size"]) == ("SUCCESS", 1), alone  # it fits the limit on its own
        ids = [submit(http, "sentiment", json=body) for _ in range(8)]
        ended = [follow(http, job_id) for job_id in ids]
    assert [(r["status"], r.get("error")) for r in ended] == [("SUCCESS", None)] * 8, \
        [(r["status"], r["batch_size"], (r.get("error") or {}).get("code")) for r in ended]


def test_a_batch_run_one_by_one_stops_at_its_time_limit(platform_env: dict[str, str]) -> None:
    """docs/batching.md: "When the soft limit hits during the batch call, every member ends FAILURE
    `time_limit_exceeded` (none runs again in a batch whose time is up)". When the batch call raised (a member
    VADER cannot read) and the members run one by one (`batching.call`), the soft limit stops only the member it
    hits: the next ones (gathered in the order they were queued) run on past the limit and end SUCCESS."""
    from common import records

    limit_s = 5
    with (isolated_platform("sentiment", 1, SENTIMENT_BATCH_MAX="12", SENTIMENT_BATCH_WAIT_MS="1000",
                            SENTIMENT_TIME_LIMIT_S=str(limit_s)) as (url, worker), ApiSession(url) as http):
        ids = [str(uuid.uuid4()) for _ in range(12)]
        with publisher_of(worker) as app:
            from common.store import get_redis

            for job_id in ids:
                records.create(get_redis(), job_id, "sentiment")
            app.send_task("sentiment.run", args=[{"text": 12345}], queue="sentiment", task_id=ids[0])  # the leader
            for job_id in ids[1:]:
                body = {"texts": [f"{i} {LONG_TEXT}"[:10_000] for i in range(6)]}  # about 2 s each, alone
                app.send_task("sentiment.run", args=[body], queue="sentiment", task_id=job_id)
        ended = {job_id: follow(http, job_id) for job_id in ids}
    def at(stamp: str) -> dt.datetime:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    began = at(ended[ids[0]]["started_at"])
    assert ended[ids[1]]["batch_size"] == 12, ended[ids[1]]
    codes = [(r.get("error") or {}).get("code") for r in (ended[job_id] for job_id in ids[1:])]
    hit = codes.index("time_limit_exceeded")  # the member running when the soft limit hit
    after = {job_id[:8]: (r["status"], round((at(r["finished_at"]) - began).total_seconds(), 1))
             for job_id, r in ((job_id, ended[job_id]) for job_id in ids[2 + hit:])}
    assert all(status == "FAILURE" for status, _ in after.values()), (limit_s, after)


def test_a_member_that_kills_its_worker_is_parked_alone(platform_env: dict[str, str]) -> None:
    """A job whose engine call kills the worker child (a segfault, the OOM killer) takes its batch down on every
    delivery: each sibling's attempt is counted with it, the same jobs are gathered together again, and after
    MAX_DELIVERIES they are all parked `poison_job`. Only the crashing job should be: its siblings did nothing
    wrong (the issue: poison handling keeps working, a failing job fails alone)."""
    from common import records
    from support.fragile_batches import POISON

    with (isolated_platform("sentiment", 1, app="support.fragile_batches", SENTIMENT_BATCH_MAX="4",
                            SENTIMENT_BATCH_WAIT_MS="1000") as (url, worker), ApiSession(url) as http):
        ids = [str(uuid.uuid4()) for _ in range(4)]
        poison = ids[1]
        with publisher_of(worker) as app:
            from common.store import get_redis

            for job_id in ids:
                records.create(get_redis(), job_id, "sentiment")
            for job_id in ids:
                text = f"It crashes {POISON}" if job_id == poison else "What a wonderful day."
                app.send_task("sentiment.run", args=[{"text": text}], queue="sentiment", task_id=job_id)
        ended = {job_id: follow(http, job_id, 180) for job_id in ids}
    assert ended[poison]["status"] == "FAILURE" and ended[poison]["error"]["code"] == "poison_job", ended[poison]
    siblings = [(r["status"], r["attempts"], (r.get("error") or {}).get("code")) for job_id, r in ended.items()
                if job_id != poison]
    assert all(status == "SUCCESS" for status, _, _ in siblings), siblings


MANAGEMENT = "http://127.0.0.1:15672/api"


def management(path: str) -> Any:
    response = requests.get(f"{MANAGEMENT}/{path}", auth=("guest", "guest"), timeout=10)
    response.raise_for_status()
    return response.json()


def test_batch_max_1_keeps_prefetch_1_per_process(platform_env, workers, http) -> None:
    """The session's sentiment pool (2 processes, the default `SENTIMENT_BATCH_MAX=1`): one consumer on one
    channel, whose prefetch is 2 (Celery sets it on the channel), and no batch in the records."""
    ids = submit_all(http, "sentiment", [{"text": f"{TEXTS[i % 6]} {i}"} for i in range(12)])
    ended = [follow(http, job_id) for job_id in ids]
    assert all(r["status"] == "SUCCESS" and "batch_size" not in r for r in ended), ended
    vhost = requests.utils.quote(platform_env["BROKER_URL"].rsplit("/", 1)[1], safe="")

    def consumers() -> list[dict[str, Any]] | None:  # with their channels (the management stats lag seconds)
        found = management(f"queues/{vhost}/sentiment").get("consumer_details") or []
        return found if found and all(isinstance(c["channel_details"], dict) for c in found) else None

    found = until(consumers, 30, "the management API to list the sentiment consumers")
    assert len(found) == 1, found
    name = requests.utils.quote(found[0]["channel_details"]["name"], safe="")

    def figures() -> dict[str, Any] | None:  # the channel's figures come with the management stats (every 5 s)
        channel: dict[str, Any] = management(f"channels/{name}")
        return channel if "global_prefetch_count" in channel else None

    channel = until(figures, 30, "the management API's figures of the sentiment consumer's channel")
    limits = [found[0]["prefetch_count"], channel["prefetch_count"], channel["global_prefetch_count"]]
    assert sorted(limits) == [0, 0, 2], (limits, channel)
