"""The webhook schedule (`common.webhooks`) against the real Redis: the decision to deliver is stored with the
job's end, and claims of due entries are exclusive within a lease and come back after it."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from common import records, webhooks
from common.records import JobStatus
from common.store import get_redis
from support.wait import until


def job_with_webhook(url: str | None = "https://example.com/hook") -> str:
    r, job_id = get_redis(), str(uuid.uuid4())
    records.create(r, job_id, "sentiment")
    if url is not None:
        r.hset(records.job_key(job_id), mapping={"webhook_url": url, "webhook_state": "pending"})
    return job_id


def test_a_jobs_end_schedules_its_webhook_in_the_same_step(platform_env: dict[str, str]) -> None:
    r, schedule = get_redis(), records.webhook_schedule_key()
    hooked, plain = job_with_webhook(), job_with_webhook(None)
    before_ms = time.time() * 1000
    assert records.finish_many(r, [records.Ending(hooked, JobStatus.SUCCESS, result={"label": "POSITIVE"}),
                                   records.Ending(plain, JobStatus.SUCCESS, result={})]) == [True, True]
    due = r.zscore(schedule, hooked)
    assert due is not None and before_ms - 1000 < due < time.time() * 1000 + 1000
    assert r.zscore(schedule, plain) is None
    record = records.load(r, hooked)
    assert record is not None and record["webhook"]["state"] == "pending" and record["webhook"]["next_attempt_at"]
    assert records.public(record)["webhook"]["url"] == "https://example.com/hook"
    assert "webhook" not in records.public(records.load(r, plain) or {})
    r.zrem(schedule, hooked)
    assert not records.finish(r, hooked, JobStatus.REVOKED)  # already final: no second schedule entry
    assert r.zscore(schedule, hooked) is None


def test_claims_are_exclusive_within_a_lease_and_due_again_after_it(platform_env: dict[str, str]) -> None:
    r, schedule = get_redis(), records.webhook_schedule_key()
    r.delete(schedule)
    ids = [str(uuid.uuid4()) for _ in range(60)]
    r.zadd(schedule, dict.fromkeys(ids, time.time() * 1000 - 1))
    with ThreadPoolExecutor(4) as pool:  # four dispatchers claiming at once
        claims = list(pool.map(lambda _: webhooks.claim_due(get_redis(), lease_s=2, limit=20), range(6)))
    claimed = [job_id for claim in claims for job_id in claim]
    assert sorted(claimed) == sorted(ids)  # each entry once, none twice
    assert webhooks.claim_due(r, lease_s=2) == []
    back: list[str] = []  # a claimer that died before sending leaves nothing behind
    until(lambda: back.extend(webhooks.claim_due(r, lease_s=60, limit=100)) or len(back) >= len(ids), 10,
          "the leases to end")
    assert sorted(back) == sorted(ids)
    r.delete(schedule)
