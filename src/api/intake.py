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
- The upload of a type that keeps it past the job's end (`keeps_upload`) is also reserved in the owner's kept
  bytes (`common.kept`), within `UPLOAD_BYTES_KEPT`, by the same script.
- A refused upload (over either cap) is deleted at once.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from common import kept, records
from common.errors import Oversized, PlatformError, RateLimited, Unavailable
from common.lua import Script
from common.settings import Settings

STAGED_UPLOAD_TTL_S = 120  # an upload written before its record: gone soon if its process dies in between
# `_INTAKE` writes a new job's record, unless the Idempotency-Key already names a job; for an upload it checks
# that the staged upload is still there and counts it against the uploader's hourly counters in flight (the
# first `flight_keys` of `more_keys`, the current one first) within `cap`, and, given `keeps` = '1', against
# the uploader's kept bytes (the rest of `more_keys`, `common.kept`) within `kept_cap`.
_INTAKE = Script(
    keys=("job", "blob", "idem"),
    args=("job_id", "has_idem", "record_ttl", "upload_ttl", "bytes", "cap", "claim_s", "publisher", "flight_keys",
          "keeps", "kept_cap", "kept_ttl"),
    extra=True, extra_keys=True, preamble=(kept.ROOM_LUA,), body="""
if has_idem == '1' then
  local earlier = redis.call('GET', idem)
  if earlier then return {'earlier', earlier} end
end
local size, last_flight = tonumber(bytes), EXTRA_KEYS + tonumber(flight_keys) - 1
if size > 0 then
  if redis.call('EXISTS', blob) == 0 then return {'lost'} end
  local limit, held = tonumber(cap), 0
  for i = EXTRA_KEYS, last_flight do held = held + tonumber(redis.call('GET', KEYS[i]) or '0') end
  if limit > 0 and held + size > limit then
    redis.call('DEL', blob)
    return {'over', tostring(held)}
  end
  if keeps == '1' then
    local kept, wait = kept_room(last_flight + 1, #KEYS, size, tonumber(kept_cap))
    if wait >= 0 then
      redis.call('DEL', blob)
      return {'kept_over', tostring(kept), tostring(wait)}
    end
  end
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
  if keeps == '1' then
    local kept_counter = KEYS[last_flight + 1]
    redis.call('HSET', job, 'kept_counter', kept_counter)
    redis.call('INCRBY', kept_counter, size)
    redis.call('EXPIRE', kept_counter, kept_ttl)
  end
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
local state = redis.call('HMGET', job, 'publisher', 'status', 'upload_counter', 'upload_bytes', 'kept_counter')
if state[1] ~= publisher then return 0 end
if state[2] ~= 'PENDING' then
  redis.call('HSET', job, 'published', '1')
  redis.call('HDEL', job, 'publisher', 'publish_by')
  return 2
end
if state[3] and redis.call('EXISTS', state[3]) == 1 then redis.call('DECRBY', state[3], state[4]) end
if state[5] and redis.call('EXISTS', state[5]) == 1 then redis.call('DECRBY', state[5], state[4]) end
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
           uploader: str, upload_bytes: int, settings: Settings, keeps: bool = False) -> str | None:
    """Write the job's record (see the module's doc); return None, or the id of the earlier job that holds the
    Idempotency-Key `idem` (nothing is written then). `keeps`: the job's type keeps its upload past its end."""
    fields = [item for pair in record.items() for item in pair]
    in_flight = upload_counters(uploader, settings)
    answer = _INTAKE(r, *fields, more_keys=[*in_flight, *(kept.counters(uploader, settings) if keeps else [])],
                     job=records.job_key(job_id), blob=records.blob_key(job_id), idem=idem or records.job_key(job_id),
                     job_id=job_id, has_idem="1" if idem else "0", record_ttl=settings.result_ttl_s,
                     upload_ttl=settings.blob_ttl_s, bytes=upload_bytes, cap=settings.upload_bytes_in_flight,
                     claim_s=claim_window_s(settings), publisher=token, flight_keys=len(in_flight),
                     keeps="1" if keeps else "0", kept_cap=settings.upload_bytes_kept, kept_ttl=kept.ttl_s(settings))
    outcome = [part.decode() if isinstance(part, bytes) else part for part in answer]  # type: ignore[union-attr]
    if outcome[0] == "earlier":
        return str(outcome[1])
    if outcome[0] == "over":
        raise uploads_over_cap(int(outcome[1]), upload_bytes, settings)
    if outcome[0] == "kept_over":
        raise uploads_kept_over_cap(int(outcome[1]), upload_bytes, int(outcome[2]), settings)
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


def uploads_kept_over_cap(held: int, upload_bytes: int, wait_s: int, settings: Settings) -> PlatformError:
    """429 `uploads_kept`, with Retry-After when enough of the kept bytes expire; 413 for an upload that alone
    is larger than the cap (no wait makes it fit)."""
    mb, hours, cap = 1024 * 1024, settings.result_ttl_s / 3600, settings.upload_bytes_kept
    if upload_bytes > cap:
        return Oversized(f"This upload ({upload_bytes / mb:.1f} MB) is larger than the {cap / mb:.1f} MB an API key "
                         "may keep in the store (UPLOAD_BYTES_KEPT), so it is never accepted.", code="too_large")
    return RateLimited(f"Your ended jobs keep {held / mb:.1f} MB in the store (their images, kept {hours:.0f} h for "
                       f"annotated.png); this upload ({upload_bytes / mb:.1f} MB) would pass the {cap / mb:.1f} MB "
                       f"allowed (UPLOAD_BYTES_KEPT). Enough of them expire in about {wait_s} s: retry then.",
                       code="uploads_kept", retry_after_s=wait_s)


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
           "uploads_in_flight", "uploads_kept_over_cap", "withdraw"]
