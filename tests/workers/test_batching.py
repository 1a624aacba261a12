"""Dynamic batching (`workers.batching`) against the real broker and models: jobs gathered into one engine
call, each with its own record, end and acknowledgement."""

from __future__ import annotations

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
    """An embedding pool of 1 process gathering up to 4 jobs, waiting up to 1 s for them."""
    with (isolated_platform("embedding", 1, EMBEDDING_BATCH_MAX="4", EMBEDDING_BATCH_WAIT_MS="1000") as (url, worker),
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
