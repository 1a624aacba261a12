"""Job records: the one home of a job's state in Redis.

A record is a hash at `job:{id}` (plus the configured key prefix). It is written when the API
accepts a job, updated by the worker's base task, and expires `result_ttl_s` (48 h) after its last
write. Every other key the platform writes (uploads, idempotency keys) also carries a TTL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis
from redis.client import Pipeline

from common import jobstats, kept, lua
from common.lua import Script, lua_set
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


def prefix() -> str:
    """The configured key prefix every key of the platform starts with."""
    return get_settings().key_prefix


def job_key(job_id: str) -> str:
    return f"{prefix()}job:{job_id}"


def blob_key(job_id: str) -> str:
    return f"{prefix()}blob:{job_id}"


def job_channel(job_id: str) -> str:
    """Where each change of the job's record is published (`CHANGE_LUA`): long-polls and event streams listen."""
    return f"{prefix()}changes:{job_id}"


def idempotency_key(job_type: str, owner: str, key: str) -> str:
    return f"{prefix()}idem:{job_type}:{owner}:{key}"


def webhook_schedule_key() -> str:
    """The sorted set of jobs whose webhook is due, scored by when (ms; `common.webhooks`)."""
    return f"{prefix()}webhooks"


def webhook_wake_channel() -> str:
    """Published when a webhook falls due at once (a job's end, a redelivery): the webhooks pool claims it then."""
    return f"{prefix()}webhooks:due"


def source_key(job_id: str) -> str:
    return f"{prefix()}source:{job_id}"


def preview_key(job_id: str) -> str:
    """A detection job's preview image (`workers.detection.drawing.preview`), kept as long as its record."""
    return f"{prefix()}preview:{job_id}"


def annotated_key(job_id: str) -> str:
    """A detection job's `annotated.png` once drawn, cached for the rest of its record's life."""
    return f"{prefix()}annotated:{job_id}"


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
    rec["version"] = int(rec.get("version", 0))
    if "batch_size" in rec:
        rec["batch_size"] = int(rec["batch_size"])
    for name in ("result", "error"):
        rec[name] = json.loads(rec[name]) if name in rec else None
    rec.setdefault("started_at", None)
    rec.setdefault("finished_at", None)
    rec["webhook"] = webhook_view(rec)
    return rec


PUBLIC_FIELDS = ("job_id", "type", "status", "progress", "attempts", "created_at", "started_at", "finished_at",
                 "result", "error", "batch_size", "webhook")


def public(record: dict[str, Any]) -> dict[str, Any]:
    """The record as `GET /v1/jobs/<id>` shows it (and a webhook sends it); `batch_size` only for a job that ran
    with batching on, `webhook` only for a job that asked for one."""
    view = {name: record.get(name) for name in PUBLIC_FIELDS}
    for optional in ("batch_size", "webhook"):
        if view[optional] is None:
            del view[optional]
    return view


def webhook_view(fields: dict[str, Any]) -> dict[str, Any] | None:
    """The record's `webhook` as the API shows it, taken out of its flat `webhook_*` fields (popped)."""
    url = fields.pop("webhook_url", None)
    state = fields.pop("webhook_state", "pending")
    attempts = int(fields.pop("webhook_attempts", 0))
    status, error = fields.pop("webhook_last_status", ""), fields.pop("webhook_last_error", "")
    due_ms = fields.pop("webhook_due_ms", None)
    if url is None:
        return None
    due = None
    if state == "pending" and due_ms is not None:
        due = dt.datetime.fromtimestamp(int(float(due_ms)) / 1000, dt.UTC).isoformat(timespec="milliseconds")
        due = due.replace("+00:00", "Z")
    return {"url": url, "state": state, "attempts": attempts, "last_status": int(status) if status else None,
            "last_error": error or None, "next_attempt_at": due}


def delete(r: redis.Redis, job_id: str) -> None:
    r.delete(job_key(job_id), blob_key(job_id), source_key(job_id), preview_key(job_id), annotated_key(job_id))


def load_kept_upload(r: redis.Redis, job_id: str) -> bytes | None:
    """The upload of a job whose type keeps it past a successful end (`finish(keep_upload=True)`)."""
    data: bytes | None = r.get(source_key(job_id))  # type: ignore[assignment]
    return data


# The scripts leave a missing record missing and a final record untouched, so a late or repeated delivery
# can neither resurrect an expired job nor overwrite how it ended. Each write refreshes the record's TTL
# (`_START` too: a job that waited long in its queue keeps its full `result_ttl_s` from its start). Redis
# refuses a script (READONLY, MISCONF; OOM for all but `_FINISH`: `store.is_outage`) at its first write, so
# a refused script has written nothing.
_FINAL_LUA = lua_set("FINAL", FINAL)
# Every change a client can follow (a start, progress, an end) counts one more `version` of the record and is
# published on the job's channel as "<version> <change> <status> <progress> <attempts>", the change being
# `status`, `attempts` (a start of a job already STARTED: delivered again), `progress` or `end`
# (`api.events` streams them; a long-poll only reads the record again).
CHANGE_LUA = """
local function changed(job, channel, change)
  local version = redis.call('HINCRBY', job, 'version', 1)
  local now = redis.call('HMGET', job, 'status', 'progress', 'attempts')
  redis.call('PUBLISH', channel, table.concat({version, change, now[1], now[2] or '0', now[3] or '0'}, ' '))
end"""
CHANGES = ("status", "attempts", "progress", "end")
# `batch_size` (not empty: the job starts in a batch, `workers.batching`) is noted with the start.
_START = Script(keys=("job",), args=("now", "worker", "ttl", "batch_size", "channel"),
                preamble=(_FINAL_LUA, CHANGE_LUA), body="""
local status = redis.call('HGET', job, 'status')
if not status then return -1 end
if FINAL[status] then return -2 end
local attempts = redis.call('HINCRBY', job, 'attempts', 1)
redis.call('HSET', job, 'status', 'STARTED', 'started_at', now, 'progress', 0, 'worker', worker)
if batch_size ~= '' then redis.call('HSET', job, 'batch_size', batch_size) end
redis.call('EXPIRE', job, ttl)
changed(job, channel, status == 'STARTED' and 'attempts' or 'status')
return attempts
""")
# Progress only for a running job (never a missing, pending or final record), and only from its latest
# attempt when given one (`attempt` not empty).
_PROGRESS = Script(keys=("job",), args=("percent", "attempt", "channel"), preamble=(CHANGE_LUA,), body="""
if redis.call('HGET', job, 'status') ~= 'STARTED' then return 0 end
if attempt ~= '' and redis.call('HGET', job, 'attempts') ~= attempt then return 0 end
redis.call('HSET', job, 'progress', percent)
changed(job, channel, 'progress')
return 1
""")
# `_FINISH` also drops the upload (or, given `keep` = '1', keeps it under `source` as long as the record)
# and publishes the end (`CHANGE_LUA`), so a job ends in one round trip. A record that names a `kept_counter` (its
# upload was reserved there, `common.kept`) gets the reservation back, and what stays (the upload kept, plus
# `kept_extra` bytes the worker stored beside it: a preview) is counted in its owner's counter of bucket
# `kept_bucket`, which the record names from then on. Given an `attempt` number, it writes
# only if no later attempt has started: a worker cut off mid-job, whose job was meanwhile delivered to
# another, must not decide how the job ends (nor drop the upload it reads). The record's fields follow the
# named arguments (`unpack(ARGV, EXTRA)`).
# A record with a `webhook_url` gets its webhook `pending` and due now in the schedule `webhooks` (`common.webhooks`)
# in the same script, so no end is stored without its delivery.
# `allow-oom` (Redis 7): a Redis full under `noeviction` still takes the end of a job that runs (a few
# hundred bytes, and it frees the upload) and a cancel, while it refuses new jobs and starts: the work done
# is kept instead of being held, then run again.
_FINISH = Script(
    keys=("job", "blob", "stats", "source", "webhooks"),
    args=("job_id", "wake", "ttl", "channel", "attempt", "count_field", "seconds_field", "seconds", "keep",
          "kept_extra", "kept_bucket", "kept_ttl"),
    extra=True, preamble=(_FINAL_LUA, CHANGE_LUA), body="""#!lua flags=allow-oom
local status = redis.call('HGET', job, 'status')
if status and attempt ~= '' and redis.call('HGET', job, 'attempts') ~= attempt then return 0 end
if not status or FINAL[status] then
  redis.call('DEL', blob)
  return 0
end
local uploads = redis.call('HGET', job, 'upload_counter')  -- the owner's uploads in flight (api.intake)
if uploads and redis.call('EXISTS', uploads) == 1 then
  redis.call('DECRBY', uploads, redis.call('HGET', job, 'upload_bytes'))
end
local renamed = keep == '1' and redis.call('EXISTS', blob) == 1
if renamed then
  redis.call('RENAME', blob, source)
  redis.call('EXPIRE', source, ttl)
else
  redis.call('DEL', blob)
end
local kept_at = redis.call('HGET', job, 'kept_counter')  -- the owner's kept bytes (common.kept)
if kept_at then
  local reserved = tonumber(redis.call('HGET', job, 'upload_bytes') or '0')
  if redis.call('EXISTS', kept_at) == 1 then redis.call('DECRBY', kept_at, reserved) end
  local stays = tonumber(kept_extra) + (renamed and reserved or 0)
  if stays > 0 then
    local counter = string.match(kept_at, '^(.*:)[^:]*$') .. kept_bucket
    redis.call('INCRBY', counter, stays)
    redis.call('EXPIRE', counter, kept_ttl)
    redis.call('HSET', job, 'kept_counter', counter, 'kept_bytes', stays)
  else
    redis.call('HDEL', job, 'kept_counter')
  end
end
redis.call('HSET', job, unpack(ARGV, EXTRA))
redis.call('EXPIRE', job, ttl)
if redis.call('HEXISTS', job, 'webhook_url') == 1 then
  local clock = redis.call('TIME')
  local due = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  redis.call('HSET', job, 'webhook_state', 'pending', 'webhook_due_ms', due)
  redis.call('ZADD', webhooks, due, job_id)
  redis.call('PUBLISH', wake, job_id)
end
if count_field ~= '' then
  redis.call('HINCRBY', stats, count_field, 1)
  redis.call('HINCRBYFLOAT', stats, seconds_field, seconds)
  redis.call('EXPIRE', stats, STATS_TTL)
end
changed(job, channel, 'end')
return 1
""".replace("STATS_TTL", str(jobstats.STATS_TTL_S)))
NOT_FOUND, ALREADY_FINAL = -1, -2
# `batch_size` of a running attempt (the leader of a batch, `workers.batching`): only while that attempt runs.
_BATCH_SIZE = Script(keys=("job",), args=("size", "attempt"), body="""
if redis.call('HGET', job, 'status') ~= 'STARTED' then return 0 end
if redis.call('HGET', job, 'attempts') ~= attempt then return 0 end
redis.call('HSET', job, 'batch_size', size)
return 1
""")


def mark_started(r: redis.Redis, job_id: str, worker: str = "") -> int:
    """Count one more attempt, note the worker (`host:pid`) running it, refresh the record's TTL and return
    the count, or NOT_FOUND / ALREADY_FINAL (nothing written)."""
    return int(_START(r, job=job_key(job_id), now=now(), worker=worker, ttl=get_settings().result_ttl_s,
                      batch_size="", channel=job_channel(job_id)))


def start_with_upload(r: redis.Redis, job_id: str, worker: str = "") -> tuple[int, bytes | None]:
    """`mark_started` and the job's upload in one round trip."""
    return start_many(r, [job_id], worker, uploads=True)[0]


def start_many(r: redis.Redis, job_ids: Sequence[str], worker: str, *, uploads: bool, batch_size: int = 0,
               leader: tuple[str, int] | None = None) -> list[tuple[int, bytes | None]]:
    """`mark_started` of each job (with its upload, given `uploads`) in one round trip. Given a `batch_size`,
    each started job notes it, and so does the `leader` (job id, attempt) already running with them, if it
    still runs that attempt."""
    ttl, stamp, size = get_settings().result_ttl_s, now(), str(batch_size) if batch_size else ""

    def fill(pipe: Pipeline) -> None:
        for job_id in job_ids:
            _START(pipe, job=job_key(job_id), now=stamp, worker=worker, ttl=ttl, batch_size=size,
                   channel=job_channel(job_id))
            if uploads:
                pipe.get(blob_key(job_id))
        if leader is not None and batch_size:
            _BATCH_SIZE(pipe, job=job_key(leader[0]), size=batch_size, attempt=leader[1])

    replies = iter(lua.pipeline(r, (_START, _BATCH_SIZE), fill))
    return [(int(next(replies)), next(replies) if uploads else None) for _ in job_ids]


def set_progress(r: redis.Redis, job_id: str, percent: int, attempt: int | None = None) -> bool:
    """Note a running job's progress; return False, writing nothing, if the job is not running (gone, still
    pending, or already ended) or, given `attempt`, if a later attempt has started."""
    percent = max(0, min(100, int(percent)))
    return bool(_PROGRESS(r, job=job_key(job_id), percent=percent, attempt="" if attempt is None else attempt,
                          channel=job_channel(job_id)))


def finish(r: redis.Redis, job_id: str, status: JobStatus, **end: Any) -> bool:
    """Move a job to a final state once; return False if it was already final or is gone, or, given the
    `attempt` (what `mark_started` returned) of the run that ends, if a later attempt has started.
    The keyword arguments are `Ending`'s: given `stats_of` (the job's type and run seconds), the same script
    counts it in the finished-job statistics (`jobstats`), so a job is counted once, when its end is stored.
    The job's upload is dropped, or with `keep_upload` kept as long as the record (`load_kept_upload`: a
    detection's image, from which `annotated.png` is drawn on request) by a rename, not a copy. What stays
    (the upload kept, and `kept_bytes` the job stored beside its record, e.g. a preview) counts against its
    owner (`common.kept`)."""
    return bool(Ending(job_id, status, **end).queue(r))


def finish_many(r: redis.Redis, ends: Sequence[Ending]) -> list[bool]:
    """`finish` of several jobs in one round trip: for each, whether its end was stored."""
    def fill(pipe: Pipeline) -> None:
        for end in ends:
            end.queue(pipe)

    return [bool(stored) for stored in lua.pipeline(r, (_FINISH,), fill)]


@dataclass
class Ending:
    """One job's end, as `finish` stores it."""
    job_id: str
    status: JobStatus
    result: Any = None
    error: dict[str, str] | None = None
    attempt: int | None = None
    stats_of: tuple[str, float] | None = None
    keep_upload: bool = False
    kept_bytes: int = 0
    batch_size: int = 0  # how many jobs ran together (`workers.batching`), noted when above 0

    def queue(self, client: redis.Redis | Pipeline) -> Any:
        """Run `_FINISH` on `client` (or queue it, on a pipeline)."""
        fields: dict[str, Any] = {"status": self.status.value, "finished_at": now()}
        if self.status is JobStatus.SUCCESS:
            fields.update(progress=100, result=json.dumps(self.result))
        if self.error is not None:
            fields["error"] = json.dumps(self.error)
        if self.batch_size:
            fields["batch_size"] = self.batch_size
        flat = [item for pair in fields.items() for item in pair]
        stats: tuple[str, str, float | str] = ("", "", "")
        if self.stats_of is not None:
            stats = jobstats.fields(self.stats_of[0], self.status.value, self.stats_of[1])
        count_field, seconds_field, seconds = stats
        settings, job_id = get_settings(), self.job_id
        return _FINISH(client, *flat, job=job_key(job_id), blob=blob_key(job_id), stats=jobstats.stats_key(),
                       source=source_key(job_id), webhooks=webhook_schedule_key(), job_id=job_id,
                       wake=webhook_wake_channel(), ttl=settings.result_ttl_s, channel=job_channel(job_id),
                       attempt="" if self.attempt is None else str(self.attempt),
                       count_field=count_field, seconds_field=seconds_field, seconds=seconds,
                       keep="1" if self.keep_upload else "0", kept_extra=self.kept_bytes,
                       kept_bucket=kept.bucket(settings), kept_ttl=kept.ttl_s(settings))
