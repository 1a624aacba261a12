"""The store's side of accepting a job: its record, upload and idempotency key appear at once, or not at all.

- `create` writes the PENDING record, takes the Idempotency-Key, keeps the staged upload for its full TTL and
  counts it in the owner's uploads in flight, in one script: a Redis that refuses a write (out of memory,
  read-only, no permission) refuses the first one, and a process that dies leaves all of it or none.
- A record stays `published: 0` until the broker confirmed its message (`mark_published`). Until then one
  submit holds it (`publisher`, until `publish_by`, a Redis clock time): the one that created it, or a retry
  with the same key that found it unpublished after that (`claim`): that retry publishes it again, so a job
  whose API process died before the publish still runs. The holder of a record whose publish failed
  deletes it (`withdraw`): no record is left behind for a job the broker never took.
- Uploads in flight are counted per owner (API key, or client address) in hourly counters that live as long
  as an upload may (`BLOB_TTL_S`): the job's end subtracts its upload (`records.finish`), and a count left by a
  job that never ended expires with its counter.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from common import records
from common.errors import RateLimited, Unavailable
from common.settings import Settings

STAGED_UPLOAD_TTL_S = 120  # an upload written before its record: gone soon if its process dies in between
_INTAKE = """
if ARGV[2] == '1' then
  local earlier = redis.call('GET', KEYS[3])
  if earlier then return {'earlier', earlier} end
end
local bytes = tonumber(ARGV[5])
if bytes > 0 then
  if redis.call('EXISTS', KEYS[2]) == 0 then return {'lost'} end
  local cap, held = tonumber(ARGV[6]), 0
  for i = 4, #KEYS do held = held + tonumber(redis.call('GET', KEYS[i]) or '0') end
  if cap > 0 and held + bytes > cap then return {'over', tostring(held)} end
end
local claim_until = tonumber(redis.call('TIME')[1]) + tonumber(ARGV[7])
redis.call('HSET', KEYS[1], 'published', '0', 'publisher', ARGV[8], 'publish_by', claim_until, unpack(ARGV, 9))
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[2] == '1' then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3]) end
if bytes > 0 then
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  redis.call('HSET', KEYS[1], 'upload_counter', KEYS[4], 'upload_bytes', bytes)
  redis.call('INCRBY', KEYS[4], bytes)
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
return {'new'}
"""
_CLAIM = """
local state = redis.call('HMGET', KEYS[1], 'status', 'published', 'publish_by')
if not state[1] then return 'gone' end
if state[1] ~= 'PENDING' or state[2] ~= '0' then return 'settled' end
local now = tonumber(redis.call('TIME')[1])
if now < tonumber(state[3] or '0') then return 'busy' end
redis.call('HSET', KEYS[1], 'publisher', ARGV[1], 'publish_by', now + tonumber(ARGV[2]))
return 'claimed'
"""
_MARK_PUBLISHED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'published', '1')
redis.call('HDEL', KEYS[1], 'publisher', 'publish_by')
return 1
"""
_WITHDRAW = """
local state = redis.call('HMGET', KEYS[1], 'publisher', 'status', 'upload_counter', 'upload_bytes')
if state[1] ~= ARGV[1] then return 0 end
if state[2] ~= 'PENDING' then
  redis.call('HSET', KEYS[1], 'published', '1')
  redis.call('HDEL', KEYS[1], 'publisher', 'publish_by')
  return 2
end
if state[3] and redis.call('EXISTS', state[3]) == 1 then redis.call('DECRBY', state[3], state[4]) end
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[3] == '1' and redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('DEL', KEYS[3]) end
return 1
"""
_RELEASE_KEY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
WITHDRAWN, KEPT, STARTED_MEANWHILE = 1, 0, 2


def claim_window_s(settings: Settings) -> int:
    """How long a submit holds an unpublished record: longer than its publish may take."""
    return int(settings.broker_confirm_timeout_s) + 2


def upload_counters(uploader: str, settings: Settings, at: float | None = None) -> list[str]:
    """The owner's hourly counters that may still count a stored upload, the current one first."""
    width = max(60, settings.blob_ttl_s // 48)
    current = int((time.time() if at is None else at) // width)
    oldest = current - settings.blob_ttl_s // width - 1
    return [f"{settings.key_prefix}uploads:{uploader}:{bucket}" for bucket in range(current, oldest - 1, -1)]


def uploads_in_flight(r: redis.Redis, uploader: str, settings: Settings) -> int:
    counts: list[bytes | None] = r.mget(upload_counters(uploader, settings))  # type: ignore[assignment]
    return sum(int(n) for n in counts if n)


def stage_upload(r: redis.Redis, job_id: str, blob: bytes) -> None:
    r.set(records.blob_key(job_id), blob, ex=STAGED_UPLOAD_TTL_S)


def create(r: redis.Redis, job_id: str, record: dict[str, Any], *, token: str, idem: str | None,
           uploader: str, upload_bytes: int, settings: Settings) -> str | None:
    """Write the job's record (see the module's doc); return None, or the id of the earlier job that holds the
    Idempotency-Key `idem` (nothing is written then)."""
    keys = [records.job_key(job_id), records.blob_key(job_id), idem or records.job_key(job_id),
            *upload_counters(uploader, settings)]
    fields = [item for pair in record.items() for item in pair]
    args = [job_id, "1" if idem else "0", settings.result_ttl_s, settings.blob_ttl_s, upload_bytes,
            settings.upload_bytes_in_flight, claim_window_s(settings), token, *fields]
    answer = r.eval(_INTAKE, len(keys), *keys, *args)  # type: ignore[arg-type]
    outcome = [part.decode() if isinstance(part, bytes) else part for part in answer]  # type: ignore[union-attr]
    if outcome[0] == "earlier":
        return str(outcome[1])
    if outcome[0] == "over":
        raise uploads_over_cap(int(outcome[1]), upload_bytes, settings)
    if outcome[0] == "lost":
        raise Unavailable("The upload expired before its job was recorded (the store is very slow); retry.",
                          code="store_unavailable")
    return None


def uploads_over_cap(held: int, upload_bytes: int, settings: Settings) -> RateLimited:
    mb = 1024 * 1024
    return RateLimited(f"Your uploads waiting for their jobs to end hold {held / mb:.1f} MB; this one "
                       f"({upload_bytes / mb:.1f} MB) would pass the {settings.upload_bytes_in_flight / mb:.0f} MB "
                       "allowed in flight. Retry once some of your jobs have ended.", code="uploads_in_flight",
                       retry_after_s=10)


def claim(r: redis.Redis, job_id: str, token: str, settings: Settings) -> str:
    """'claimed' (publish it now), 'busy' (another submit is publishing it), 'settled' (published, running or
    done: nothing to do) or 'gone'."""
    answer = r.eval(_CLAIM, 1, records.job_key(job_id), token, claim_window_s(settings))  # type: ignore[arg-type]
    return answer.decode() if isinstance(answer, bytes) else str(answer)


def mark_published(r: redis.Redis, job_id: str) -> None:
    r.eval(_MARK_PUBLISHED, 1, records.job_key(job_id))  # type: ignore[arg-type]


def withdraw(r: redis.Redis, job_id: str, token: str, idem: str | None) -> int:
    """WITHDRAWN (record, upload and key deleted), KEPT (another submit holds it, or it was published) or
    STARTED_MEANWHILE (a worker has it: the broker did take its message)."""
    keys = [records.job_key(job_id), records.blob_key(job_id), idem or records.job_key(job_id)]
    return int(r.eval(_WITHDRAW, len(keys), *keys, token, job_id, "1" if idem else "0"))  # type: ignore[arg-type]


def release_key(r: redis.Redis, idem: str, job_id: str) -> None:
    """Free an Idempotency-Key that still names a job whose record is gone."""
    r.eval(_RELEASE_KEY, 1, idem, job_id)  # type: ignore[arg-type]


__all__ = ["claim", "create", "mark_published", "release_key", "stage_upload", "upload_counters",
           "uploads_in_flight", "withdraw"]
