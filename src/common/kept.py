"""Bytes kept per owner: what a job leaves in the store after its end, counted against `UPLOAD_BYTES_KEPT`.

A job type that keeps its upload past its end (`JobType.keeps_upload`: detection, for `annotated.png`) leaves
bytes in Redis for its record's life (48 h), after they stopped counting in flight. They count against their
owner (API key, or client address) in hourly counters that outlive what they count:

- the intake (`api.intake`) reserves the upload's size in the owner's current counter, in the script that
  writes the record (`kept_counter` in the record), and refuses the job (429 `uploads_kept`) past the cap;
- the job's end (`records.finish`) takes the reservation back and counts what stays (the upload, or the
  worker's smaller preview) in the counter of that moment, which the record then names;
- a drawn artifact (`annotated.png`) is cached only if it fits under the owner's cap, and is then counted the
  same way (`cache`); past the cap it is served, not cached, and drawn again on the next request.

A counter expires `ttl_s` after its last write: counted bytes stop counting only after what they count
(kept as long as the record, `RESULT_TTL_S`) is gone. The counters of the last `ttl_s` are read, current
first; `ROOM_LUA` tells how long until enough of them expire (the oldest first) for a refused job to fit.
"""

from __future__ import annotations

import time

import redis

from common.lua import Script
from common.settings import Settings

# `kept_room(first, last, size, limit)`: the bytes the counters KEYS[first..last] (current first) hold, and -1
# if `size` more stays within `limit` (0: none), else the seconds until enough of them have expired.
ROOM_LUA = """local function kept_room(first, last, size, limit)
  local held, counts = 0, {}
  for i = first, last do
    counts[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
    held = held + counts[i]
  end
  if limit <= 0 or held + size <= limit then return held, -1 end
  local left, wait = held, 1
  for i = last, first, -1 do
    if counts[i] > 0 then
      left = left - counts[i]
      wait = math.max(wait, redis.call('TTL', KEYS[i]))
      if left + size <= limit then break end
    end
  end
  return held, wait
end"""
_ROOM = Script(keys=(), args=("size", "limit"), extra_keys=True, preamble=(ROOM_LUA,), body="""
local held, wait = kept_room(EXTRA_KEYS, #KEYS, tonumber(size), tonumber(limit))
return {held, wait}
""")
# `_CACHE` stores `data` at `key` for the rest of the job's record's life if it fits under the owner's cap,
# counted in the owner's current counter (the first of `more_keys`).
_CACHE = Script(keys=("job", "key"), args=("data", "limit", "ttl"), extra_keys=True, preamble=(ROOM_LUA,), body="""
local left_ms = redis.call('PTTL', job)
if left_ms <= 0 then return 0 end
local held, wait = kept_room(EXTRA_KEYS, #KEYS, string.len(data), tonumber(limit))
if wait >= 0 then return 0 end
redis.call('SET', key, data, 'PX', left_ms)
redis.call('INCRBY', KEYS[EXTRA_KEYS], string.len(data))
redis.call('EXPIRE', KEYS[EXTRA_KEYS], ttl)
return 1
""")


def ttl_s(settings: Settings) -> int:
    """How long a counter lives after its last write: as long as anything it counts may."""
    return max(settings.result_ttl_s, settings.blob_ttl_s)


def width_s(settings: Settings) -> int:
    """The time one counter covers (1 h with the 48 h default)."""
    return max(60, ttl_s(settings) // 48)


def bucket(settings: Settings, at: float | None = None) -> int:
    return int((time.time() if at is None else at) // width_s(settings))


def counters(owner: str, settings: Settings, at: float | None = None) -> list[str]:
    """The owner's counters that may still count kept bytes, the current one first."""
    return _counters(f"{settings.key_prefix}kept:{owner}:", settings, at)


def counters_of(counter: str, settings: Settings) -> list[str]:
    """The counters of the owner of `counter` (a name a record holds), the current one first."""
    return _counters(counter.rsplit(":", 1)[0] + ":", settings)


def _counters(base: str, settings: Settings, at: float | None = None) -> list[str]:
    current = bucket(settings, at)
    oldest = current - ttl_s(settings) // width_s(settings) - 1
    return [f"{base}{n}" for n in range(current, oldest - 1, -1)]


def room(r: redis.Redis, owner: str, size: int, settings: Settings) -> tuple[int, int]:
    """The owner's kept bytes, and -1 if `size` more fits under `UPLOAD_BYTES_KEPT`, else the seconds until
    enough of them have expired."""
    held, wait = _ROOM(r, more_keys=counters(owner, settings), size=size, limit=settings.upload_bytes_kept)
    return int(held), int(wait)


def cache(r: redis.Redis, job_key: str, key: str, data: bytes, settings: Settings) -> bool:
    """Store `data` (a drawn artifact) at `key` for the rest of the job's record's life, counted against the
    job's owner; False (nothing stored) past the owner's cap, or for a record that counts no kept bytes."""
    counter: bytes | None = r.hget(job_key, "kept_counter")  # type: ignore[assignment]
    if counter is None:
        return False
    return bool(_CACHE(r, more_keys=counters_of(counter.decode(), settings), job=job_key, key=key, data=data,
                       limit=settings.upload_bytes_kept, ttl=ttl_s(settings)))


__all__ = ["ROOM_LUA", "bucket", "cache", "counters", "counters_of", "room", "ttl_s", "width_s"]
