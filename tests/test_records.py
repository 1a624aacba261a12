"""How a job's record moves, against the real Redis: each attempt counted, its end written once, and only by
the latest attempt (a worker cut off mid-job, whose job went to another worker, must not decide its end)."""

from __future__ import annotations

import uuid

import pytest
import redis

from common import records
from common.records import JobStatus
from common.settings import get_settings
from common.store import get_redis
from support.private import failed_over, private_redis


def new_job(platform_env: dict[str, str]) -> str:
    job_id = str(uuid.uuid4())
    records.create(get_redis(), job_id, "audio_length", blob=b"the upload")
    return job_id


def test_an_earlier_attempt_cannot_end_a_job_a_later_attempt_is_running(platform_env: dict[str, str]) -> None:
    r, job_id = get_redis(), new_job(platform_env)
    first = records.mark_started(r, job_id, "host-a:1")
    second = records.mark_started(r, job_id, "host-b:2")  # redelivered after host-a was cut off
    assert (first, second) == (1, 2)

    assert not records.finish(r, job_id, JobStatus.FAILURE, error={"code": "fetch_timeout", "message": "cut"},
                              attempt=first)
    record = records.load(r, job_id)
    assert record is not None and record["status"] == "STARTED" and record["error"] is None
    assert r.get(records.blob_key(job_id)) == b"the upload"  # the running attempt still reads it

    assert records.finish(r, job_id, JobStatus.SUCCESS, result={"seconds": 1.0}, attempt=second)
    record = records.load(r, job_id)
    assert record is not None and record["status"] == "SUCCESS" and record["result"] == {"seconds": 1.0}
    assert r.get(records.blob_key(job_id)) is None


def test_a_final_record_is_never_rewritten(platform_env: dict[str, str]) -> None:
    r, job_id = get_redis(), new_job(platform_env)
    attempt = records.mark_started(r, job_id, "host-a:1")
    assert records.finish(r, job_id, JobStatus.SUCCESS, result={"seconds": 1.0}, attempt=attempt)
    assert not records.finish(r, job_id, JobStatus.FAILURE, error={"code": "x", "message": "late"}, attempt=attempt)
    assert not records.finish(r, job_id, JobStatus.REVOKED)  # nor by a cancel
    assert records.mark_started(r, job_id, "host-b:2") == records.ALREADY_FINAL
    record = records.load(r, job_id)
    assert record is not None and record["status"] == "SUCCESS" and record["attempts"] == 1


def test_a_cancel_ends_a_running_job_whatever_its_attempt(platform_env: dict[str, str]) -> None:
    r, job_id = get_redis(), new_job(platform_env)
    records.mark_started(r, job_id, "host-a:1")
    assert records.finish(r, job_id, JobStatus.REVOKED, error={"code": "cancelled", "message": "by its owner"})
    record = records.load(r, job_id)
    assert record is not None and record["status"] == "REVOKED"


def test_an_upload_kept_past_success_lives_as_long_as_its_record(platform_env: dict[str, str]) -> None:
    r = get_redis()
    kept, failed = new_job(platform_env), new_job(platform_env)
    for job_id in (kept, failed):
        records.mark_started(r, job_id, "host-a:1")
    assert records.finish(r, kept, JobStatus.SUCCESS, result={}, attempt=1, keep_upload=True)
    assert records.finish(r, failed, JobStatus.FAILURE, error={"code": "x", "message": "y"}, attempt=1)

    assert records.load_kept_upload(r, kept) == b"the upload"
    assert r.get(records.blob_key(kept)) is None  # moved, not copied
    assert abs(r.ttl(records.source_key(kept)) - r.ttl(records.job_key(kept))) <= 1
    assert records.load_kept_upload(r, failed) is None and r.get(records.blob_key(failed)) is None


def test_progress_is_written_only_for_the_running_attempt_and_never_recreates_a_record(
        platform_env: dict[str, str]) -> None:
    r, job_id = get_redis(), new_job(platform_env)
    assert not records.set_progress(r, job_id, 10)  # still PENDING
    first = records.mark_started(r, job_id, "host-a:1")
    second = records.mark_started(r, job_id, "host-b:2")
    assert records.set_progress(r, job_id, 40, attempt=second)
    assert not records.set_progress(r, job_id, 90, attempt=first)  # a worker cut off mid-job
    assert records.load(r, job_id)["progress"] == 40  # type: ignore[index]

    r.delete(records.job_key(job_id))  # expired while it ran
    assert not records.set_progress(r, job_id, 50, attempt=second)
    assert not r.exists(records.job_key(job_id))


def test_progress_leaves_an_ended_job_as_it_ended(platform_env: dict[str, str]) -> None:
    r, job_id = get_redis(), new_job(platform_env)
    attempt = records.mark_started(r, job_id, "host-a:1")
    assert records.finish(r, job_id, JobStatus.REVOKED, error={"code": "revoked", "message": "cancelled"})
    assert not records.set_progress(r, job_id, 70, attempt=attempt)
    record = records.load(r, job_id)
    assert record is not None and record["status"] == "REVOKED" and record["progress"] == 0


def test_a_start_gives_the_record_its_full_ttl_again(platform_env: dict[str, str]) -> None:
    """A job that waited long in its queue keeps its record for `RESULT_TTL_S` from its start."""
    r, job_id = get_redis(), new_job(platform_env)
    r.expire(records.job_key(job_id), 60)
    records.start_with_upload(r, job_id, "host-a:1")
    assert r.ttl(records.job_key(job_id)) > get_settings().result_ttl_s - 60

    other = new_job(platform_env)
    r.expire(records.job_key(other), 60)
    records.mark_started(r, other, "host-a:1")
    assert r.ttl(records.job_key(other)) > get_settings().result_ttl_s - 60


@pytest.mark.parametrize("status", list(JobStatus))
def test_the_scripts_final_states_are_records_final(platform_env: dict[str, str], status: JobStatus) -> None:
    """The Lua scripts' "already ended" is `records.FINAL` (`common.lua`), not a list of their own."""
    r, job_id = get_redis(), new_job(platform_env)
    r.hset(records.job_key(job_id), "status", status.value)
    ended = status in records.FINAL
    assert (records.mark_started(r, job_id, "host-a:1") == records.ALREADY_FINAL) == ended
    assert records.finish(r, job_id, JobStatus.FAILURE, error={"code": "x", "message": "y"}) == (not ended)


def test_jobs_start_and_end_after_redis_lost_its_scripts(platform_env: dict[str, str]) -> None:
    """Scripts run by their SHA1 (EVALSHA). A Redis that lost them (SCRIPT FLUSH here; a restart or a failover
    alike) runs them all the same: a lone call falls back to sending the script, a batch's pipeline loads them
    at its head."""
    with private_redis() as server:
        r = server.client()
        alone, *batch = new_jobs(r, 4, blob=b"the upload")
        r.script_flush()
        assert records.mark_started(r, alone, "host-a:1") == 1
        r.script_flush()
        started = records.start_many(r, batch, "host-a:1", uploads=True, batch_size=4, leader=(alone, 1))
        assert started == [(1, b"the upload")] * 3
        r.script_flush()
        ends = [records.Ending(job_id, JobStatus.SUCCESS, result={"n": i}, attempt=1, batch_size=4)
                for i, job_id in enumerate(batch)]
        assert records.finish_many(r, ends) == [True] * 3
        r.script_flush()
        assert records.finish(r, alone, JobStatus.SUCCESS, result={"n": -1}, attempt=1, batch_size=4)

        loaded = [records.load(r, job_id) for job_id in [alone, *batch]]
    assert [(rec["status"], rec["attempts"], rec["batch_size"]) for rec in loaded if rec] == [("SUCCESS", 1, 4)] * 4
    assert [rec["result"]["n"] for rec in loaded if rec] == [-1, 0, 1, 2]


def start_batch_after_the_leader(r: redis.Redis, leader: str, members: list[str]) -> list[int]:
    """What a worker does with a batch: the leader's own start (a lone EVALSHA; on NOSCRIPT, EVAL, which caches
    `_START` alone), then the members' starts with the leader's `batch_size` (`_START` known, `_BATCH_SIZE`
    not): the attempts each member's record counts."""
    assert records.mark_started(r, leader, "host-a:1") == 1
    started = records.start_many(r, members, "host-a:1", uploads=False, batch_size=len(members) + 1,
                                 leader=(leader, 1))
    assert [upload for _, upload in started] == [None] * len(members)
    return [int((records.load(r, job_id) or {})["attempts"]) for job_id in members]


def new_jobs(r: redis.Redis, n: int, blob: bytes | None = None) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    for job_id in ids:
        records.create(r, job_id, "sentiment", blob=blob)
    return ids


def test_a_batch_start_after_a_redis_restart_counts_each_attempt_once(platform_env: dict[str, str]) -> None:
    with private_redis() as server:
        leader, *members = new_jobs(server.client(), 4)
        server.stop()
        server.start()  # the data is back (append-only file), the script cache is not
        assert start_batch_after_the_leader(server.client(), leader, members) == [1, 1, 1]


def test_a_batch_start_after_a_failover_counts_each_attempt_once(platform_env: dict[str, str]) -> None:
    with private_redis() as server:
        r = server.client()
        leader, *members = new_jobs(r, 4)
        assert records.mark_started(r, new_jobs(r, 1)[0]) == 1  # the primary knows the scripts
        with failed_over(server) as primary:
            assert start_batch_after_the_leader(primary.client(), leader, members) == [1, 1, 1]
