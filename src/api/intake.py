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
from common.lua import Script
from common.settings import Settings

STAGED_UPLOAD_TTL_S = 120  # an upload written before its record: gone soon if its process dies in between
# `_INTAKE` writes a new job's record, unless the Idempotency-Key already names a job; for an upload it checks
# that the staged upload is still there and counts it against the uploader's hourly counters (`more_keys`,
# the current one first) within `cap`.
_INTAKE = Script(
    keys=("job", "blob", "idem"),
    args=("job_id", "has_idem", "record_ttl", "upload_ttl", "bytes", "cap", "claim_s", "publisher"),
    extra=True, extra_keys=True, body="""
if has_idem == '1' then
  local earlier = redis.call('GET', idem)
  if earlier then return {'earlier', earlier} end
end
local size = tonumber(bytes)
if size > 0 then
  if redis.call('EXISTS', blob) == 0 then return {'lost'} end
  local limit, held = tonumber(cap), 0
  for i = EXTRA_KEYS, #KEYS do held = held + tonumber(redis.call('GET', KEYS[i]) or '0') end
  if limit > 0 and held + size > limit then return {'over', tostring(held)} end
end
local claim_until = tonumber(redis.call('TIME')[1]) + tonumber(claim_s)
redis.call('HSET', job, 'published', '0', 'publisher', publisher, 'publish_by', claim_until, unpack(ARGV, EXTRA))
redis.call('EXPIRE', job, record_ttl)
if has_idem == '1' then redis.call('SET', idem, job_id, 'EX', record_ttl) end
if size > 0 then
  local counter = KEYS[EXTRA_KEYS]
  redis.call('EXPIRE', blob, upload_ttl)
  redis.call('HSET', job, 'upload_counter', counter, 'upload_bytes', size)
  redis.call('INCRBY', counter, size)
  redis.call('EXPIRE', counter, upload_ttl)
end
return {'new'}
""")
_CLAIM = Script(keys=("job",), args=("publisher", "claim_s"), body="""
local state = redis.call('HMGET', job, 'status', 'published', 'publish_by')
if not state[1] then return 'gone' end
if state[1] ~= 'PENDING' or state[2] ~= '0' then return 'settled' end
local now = tonumber(redis.call('TIME')[1])
if now < tonumber(state[3] or '0') then return 'busy' end
redis.call('HSET', job, 'publisher', publisher, 'publish_by', now + tonumber(claim_s))
return 'claimed'
""")
_MARK_PUBLISHED = Script(keys=("job",), args=(), body="""
if redis.call('EXISTS', job) == 0 then return 0 end
redis.call('HSET', job, 'published', '1')
redis.call('HDEL', job, 'publisher', 'publish_by')
return 1
""")
_WITHDRAW = Script(keys=("job", "blob", "idem"), args=("publisher", "job_id", "has_idem"), body="""
local state = redis.call('HMGET', job, 'publisher', 'status', 'upload_counter', 'upload_bytes')
if state[1] ~= publisher then return 0 end
if state[2] ~= 'PENDING' then
  redis.call('HSET', job, 'published', '1')
  redis.call('HDEL', job, 'publisher', 'publish_by')
  return 2
end
if state[3] and redis.call('EXISTS', state[3]) == 1 then redis.call('DECRBY', state[3], state[4]) end
redis.call('DEL', job, blob)
if has_idem == '1' and redis.call('GET', idem) == job_id then redis.call('DEL', idem) end
return 1
""")
_RELEASE_KEY = Script(keys=("idem",), args=("job_id",), body="""
if redis.call('GET', idem) == job_id then return redis.call('DEL', idem) end
return 0
""")
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
    fields = [item for pair in record.items() for item in pair]
    answer = _INTAKE(r, *fields, more_keys=upload_counters(uploader, settings), job=records.job_key(job_id),
                     blob=records.blob_key(job_id), idem=idem or records.job_key(job_id), job_id=job_id,
                     has_idem="1" if idem else "0", record_ttl=settings.result_ttl_s, upload_ttl=settings.blob_ttl_s,
                     bytes=upload_bytes, cap=settings.upload_bytes_in_flight, claim_s=claim_window_s(settings),
                     publisher=token)
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
    answer = _CLAIM(r, job=records.job_key(job_id), publisher=token, claim_s=claim_window_s(settings))
    return answer.decode() if isinstance(answer, bytes) else str(answer)


def mark_published(r: redis.Redis, job_id: str) -> None:
    _MARK_PUBLISHED(r, job=records.job_key(job_id))


def withdraw(r: redis.Redis, job_id: str, token: str, idem: str | None) -> int:
    """WITHDRAWN (record, upload and key deleted), KEPT (another submit holds it, or it was published) or
    STARTED_MEANWHILE (a worker has it: the broker did take its message)."""
    return int(_WITHDRAW(r, job=records.job_key(job_id), blob=records.blob_key(job_id),
                         idem=idem or records.job_key(job_id), publisher=token, job_id=job_id,
                         has_idem="1" if idem else "0"))


def release_key(r: redis.Redis, idem: str, job_id: str) -> None:
    """Free an Idempotency-Key that still names a job whose record is gone."""
    _RELEASE_KEY(r, idem=idem, job_id=job_id)


__all__ = ["claim", "create", "mark_published", "release_key", "stage_upload", "upload_counters",
           "uploads_in_flight", "withdraw"]
