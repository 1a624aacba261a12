"""Job records: the one home of a job's state in Redis.

A record is a hash at `job:{id}` (plus the configured key prefix). It is written when the API
accepts a job, updated by the worker's base task, and expires `result_ttl_s` (48 h) after its last
write. Every other key the platform writes (uploads, idempotency keys) also carries a TTL.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from enum import StrEnum
from typing import Any

import redis
from redis.client import PubSub

from common import jobstats
from common.settings import get_settings


class JobStatus(StrEnum):
    PENDING = "PENDING"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"

    @property
    def is_final(self) -> bool:
        return self in FINAL


FINAL = frozenset({JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED})


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _p() -> str:
    return get_settings().key_prefix


def job_key(job_id: str) -> str:
    return f"{_p()}job:{job_id}"


def blob_key(job_id: str) -> str:
    return f"{_p()}blob:{job_id}"


def done_channel(job_id: str) -> str:
    return f"{_p()}done:{job_id}"


def idempotency_key(job_type: str, owner: str, key: str) -> str:
    return f"{_p()}idem:{job_type}:{owner}:{key}"


def source_key(job_id: str) -> str:
    return f"{_p()}source:{job_id}"


def model_key(job_type: str) -> str:
    return f"{_p()}model:{job_type}"


def preview_key(job_id: str) -> str:
    """A detection job's preview image (`workers.detection.drawing.preview`), kept as long as its record."""
    return f"{_p()}preview:{job_id}"


def annotated_key(job_id: str) -> str:
    """A detection job's `annotated.png` once drawn, cached for the rest of its record's life."""
    return f"{_p()}annotated:{job_id}"


def new_record(job_type: str, owner: str = "") -> dict[str, Any]:
    """The fields of a job's record when it is accepted (the API's intake writes them with its own)."""
    return {"type": job_type, "status": JobStatus.PENDING.value, "progress": 0, "attempts": 0,
            "created_at": now(), "owner": owner}


def create(r: redis.Redis, job_id: str, job_type: str, owner: str = "", blob: bytes | None = None) -> dict[str, Any]:
    """Write a PENDING record, and the job's upload if it has one, in one round trip."""
    record = new_record(job_type, owner)
    with r.pipeline() as pipe:
        pipe.hset(job_key(job_id), mapping=record)
        pipe.expire(job_key(job_id), get_settings().result_ttl_s)
        if blob is not None:
            pipe.set(blob_key(job_id), blob, ex=get_settings().blob_ttl_s)
        pipe.execute()
    return record


def load(r: redis.Redis, job_id: str) -> dict[str, Any] | None:
    raw: dict[bytes, bytes] = r.hgetall(job_key(job_id))  # type: ignore[assignment]
    if not raw:
        return None
    rec: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    rec["job_id"] = job_id
    rec["progress"] = int(rec.get("progress", 0))
    rec["attempts"] = int(rec.get("attempts", 0))
    for name in ("result", "error"):
        rec[name] = json.loads(rec[name]) if name in rec else None
    rec.setdefault("started_at", None)
    rec.setdefault("finished_at", None)
    return rec


def delete(r: redis.Redis, job_id: str) -> None:
    r.delete(job_key(job_id), blob_key(job_id), source_key(job_id), preview_key(job_id), annotated_key(job_id))


def load_kept_upload(r: redis.Redis, job_id: str) -> bytes | None:
    """The upload of a job whose type keeps it past a successful end (`finish(keep_upload=True)`)."""
    data: bytes | None = r.get(source_key(job_id))  # type: ignore[assignment]
    return data


def save_model_status(r: redis.Redis, job_type: str, status: dict[str, Any]) -> None:
    """What the last worker child of a type that loaded a model found (`/ready` shows it per queue)."""
    r.set(model_key(job_type), json.dumps(status), ex=get_settings().result_ttl_s)


def load_model_status(r: redis.Redis, job_type: str) -> dict[str, Any] | None:
    raw: bytes | None = r.get(model_key(job_type))  # type: ignore[assignment]
    return json.loads(raw) if raw is not None else None


# The scripts leave a missing record missing and a final record untouched, so a late or repeated delivery
# can neither resurrect an expired job nor overwrite how it ended. Each write refreshes the record's TTL
# (`_START` too: a job that waited long in its queue keeps its full `result_ttl_s` from its start). Redis
# refuses a script (READONLY, MISCONF; OOM for all but `_FINISH`: `store.is_outage`) at its first write, so
# a refused script has written nothing.
_START = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'SUCCESS' or status == 'FAILURE' or status == 'REVOKED' then return -2 end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'STARTED', 'started_at', ARGV[1], 'progress', 0, 'worker', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return attempts
"""
# Progress only for a running job (never a missing, pending or final record), and only from its latest
# attempt when given one (ARGV[2]).
_PROGRESS = """
if redis.call('HGET', KEYS[1], 'status') ~= 'STARTED' then return 0 end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1])
return 1
"""
# `_FINISH` also drops the upload (or, given ARGV[8] = '1', keeps it under KEYS[4] as long as the record)
# and tells waiting long-polls, so a job ends in one round trip. Given an attempt number (ARGV[4]), it writes
# only if no later attempt has started: a worker cut off mid-job, whose job was meanwhile delivered to
# another, must not decide how the job ends (nor drop the upload it reads).
# `allow-oom` (Redis 7): a Redis full under `noeviction` still takes the end of a job that runs (a few
# hundred bytes, and it frees the upload) and a cancel, while it refuses new jobs and starts: the work done
# is kept instead of being held, then run again.
_FINISH = """#!lua flags=allow-oom
local status = redis.call('HGET', KEYS[1], 'status')
if status and ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[4] then return 0 end
if not status or status == 'SUCCESS' or status == 'FAILURE' or status == 'REVOKED' then
  redis.call('DEL', KEYS[2])
  return 0
end
local uploads = redis.call('HGET', KEYS[1], 'upload_counter')  -- the owner's uploads in flight (api.intake)
if uploads and redis.call('EXISTS', uploads) == 1 then
  redis.call('DECRBY', uploads, redis.call('HGET', KEYS[1], 'upload_bytes'))
end
if ARGV[8] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[4])
  redis.call('EXPIRE', KEYS[4], ARGV[1])
else
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 9))
redis.call('EXPIRE', KEYS[1], ARGV[1])
if ARGV[5] ~= '' then
  redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[6], ARGV[7])
  redis.call('EXPIRE', KEYS[3], STATS_TTL)
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
""".replace("STATS_TTL", str(jobstats.STATS_TTL_S))
NOT_FOUND, ALREADY_FINAL = -1, -2


def mark_started(r: redis.Redis, job_id: str, worker: str = "") -> int:
    """Count one more attempt, note the worker (`host:pid`) running it, refresh the record's TTL and return
    the count, or NOT_FOUND / ALREADY_FINAL (nothing written)."""
    return int(r.eval(_START, 1, job_key(job_id), now(), worker, get_settings().result_ttl_s))  # type: ignore[arg-type]


def start_with_upload(r: redis.Redis, job_id: str, worker: str = "") -> tuple[int, bytes | None]:
    """`mark_started` and the job's upload in one round trip."""
    with r.pipeline(transaction=False) as pipe:
        pipe.eval(_START, 1, job_key(job_id), now(), worker, get_settings().result_ttl_s)  # type: ignore[arg-type]
        pipe.get(blob_key(job_id))
        attempts, upload = pipe.execute()
    return int(attempts), upload


def set_progress(r: redis.Redis, job_id: str, percent: int, attempt: int | None = None) -> bool:
    """Note a running job's progress; return False, writing nothing, if the job is not running (gone, still
    pending, or already ended) or, given `attempt`, if a later attempt has started."""
    percent = max(0, min(100, int(percent)))
    return bool(r.eval(_PROGRESS, 1, job_key(job_id), percent, "" if attempt is None else attempt))


def finish(r: redis.Redis, job_id: str, status: JobStatus, *, result: Any = None,
           error: dict[str, str] | None = None, attempt: int | None = None,
           stats_of: tuple[str, float] | None = None, keep_upload: bool = False) -> bool:
    """Move a job to a final state once; return False if it was already final or is gone, or, given the
    `attempt` (what `mark_started` returned) of the run that ends, if a later attempt has started.
    Given `stats_of` (the job's type and run seconds), the same script counts it in the finished-job
    statistics (`jobstats`), so a job is counted once, when its end is stored. The job's upload is
    dropped, or with `keep_upload` kept as long as the record (`load_kept_upload`: a detection's image,
    from which `annotated.png` is drawn on request) by a rename, not a copy."""
    fields: dict[str, Any] = {"status": status.value, "finished_at": now()}
    if status is JobStatus.SUCCESS:
        fields.update(progress=100, result=json.dumps(result))
    if error is not None:
        fields["error"] = json.dumps(error)
    flat = [item for pair in fields.items() for item in pair]
    stats: tuple[str, str, float | str] = ("", "", "")
    if stats_of is not None:
        stats = jobstats.fields(stats_of[0], status.value, stats_of[1])
    return bool(r.eval(_FINISH, 4, job_key(job_id), blob_key(job_id), jobstats.stats_key(),  # type: ignore[arg-type]
                       source_key(job_id), get_settings().result_ttl_s, done_channel(job_id), status.value,
                       "" if attempt is None else str(attempt), *stats, "1" if keep_upload else "0", *flat))


def wait_final(r: redis.Redis, job_id: str, timeout_s: float) -> dict[str, Any] | None:
    """Return the record as soon as it is final, or as it stands after `timeout_s`.

    Subscribes before reading, so a job finishing in between is never missed. Any message only makes
    it read the record again, so one left over from an earlier wait on the same connection is harmless.
    """
    pubsub, channel = _pubsub(r), done_channel(job_id)
    try:
        pubsub.subscribe(channel)
        deadline = time.monotonic() + timeout_s
        _await_subscription(pubsub, channel, deadline)
        record = load(r, job_id)
        while record is not None and not JobStatus(record["status"]).is_final:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if pubsub.get_message(timeout=remaining) is not None:
                record = load(r, job_id)
        pubsub.unsubscribe(channel)
        return record
    except BaseException:
        _waiting.pubsub = None
        pubsub.close()
        raise


def _await_subscription(pubsub: PubSub, channel: str, deadline: float) -> None:
    """Wait for Redis to confirm the subscription: reading the record before that could miss a job
    finishing in between (its publish would reach no one). Leftovers of earlier waits are skipped."""
    while time.monotonic() < deadline:
        response = pubsub.parse_response(block=False, timeout=min(1.0, max(deadline - time.monotonic(), 0.01)))
        if response is None:
            continue
        pubsub.handle_message(response)  # redis-py's own bookkeeping of the subscription
        if response[0] in (b"subscribe", "subscribe") and response[1] in (channel, channel.encode()):
            return


_waiting = threading.local()


def _pubsub(r: redis.Redis) -> PubSub:
    """This thread's pub/sub connection, kept from one wait to the next: a new one per wait would cost a
    TCP connect and redis-py's handshake on every long-poll (`close()` disconnects)."""
    pubsub: PubSub | None = getattr(_waiting, "pubsub", None)
    if pubsub is None or pubsub.connection_pool is not r.connection_pool:
        pubsub = _waiting.pubsub = r.pubsub(ignore_subscribe_messages=True)
    return pubsub
