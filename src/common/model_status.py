"""What each worker process found when it loaded its job type's model, as `/ready` and the submit read it.

Each worker process that loads a model keeps one entry in the hash `models:{type}` (field: the process,
`host:pid`), stamped with Redis's clock (one clock for every host), and writes it again every
`REPORT_EVERY_S` while it lives (`workers.models`). An entry not written for `FRESH_S` is of a process that
is gone (killed, or its machine lost) and counts for nothing; a process that stops cleanly withdraws its
entry. So the API can tell "the model is unavailable on every consumer of this type" (the submit answers
503 `model_unavailable`) from "some worker has it" or "no worker has said yet" (accepted).
"""

from __future__ import annotations

import json
from typing import Any

import redis

from common.lua import Script
from common.records import prefix

REPORT_EVERY_S = 10
FRESH_S = 3 * REPORT_EVERY_S  # two reports may be missed (a busy process, a Redis blip) before it counts as gone

# An entry is "<seconds> <status JSON>", the seconds from Redis's TIME. Each report drops the stale entries
# of its type, and the hash expires with the last report.
_REPORT = Script(keys=("statuses",), args=("worker", "status", "fresh_s"), body="""
local now = tonumber(redis.call('TIME')[1])
redis.call('HSET', statuses, worker, now .. ' ' .. status)
local all = redis.call('HGETALL', statuses)
for i = 1, #all, 2 do
  local seen = tonumber(string.match(all[i + 1], '^(%d+) '))
  if not seen or now - seen > tonumber(fresh_s) then redis.call('HDEL', statuses, all[i]) end
end
redis.call('EXPIRE', statuses, fresh_s)
""")
_FRESH = Script(keys=("statuses",), args=("fresh_s",), body="""#!lua flags=no-writes
local now = tonumber(redis.call('TIME')[1])
local all = redis.call('HGETALL', statuses)
local fresh = {}
for i = 1, #all, 2 do
  local seen, status = string.match(all[i + 1], '^(%d+) (.*)$')
  if seen and now - tonumber(seen) <= tonumber(fresh_s) then table.insert(fresh, status) end
end
return fresh
""")


def statuses_key(job_type: str) -> str:
    return f"{prefix()}models:{job_type}"  # a hash; `model:{type}` was a string once


def report(r: redis.Redis, job_type: str, worker: str, status: dict[str, Any]) -> None:
    """Write (or refresh) this worker process's entry: `status` is "loaded" (with `model`) or "unavailable"
    (with `message`, the reason and how to install it)."""
    _REPORT(r, statuses=statuses_key(job_type), worker=worker, status=json.dumps(status), fresh_s=FRESH_S)


def withdraw(r: redis.Redis, job_type: str, worker: str) -> None:
    r.hdel(statuses_key(job_type), worker)


def fresh(r: redis.Redis, job_type: str) -> list[dict[str, Any]]:
    """The entries of the type's live worker processes (none: no worker has reported yet, or all are gone)."""
    return [json.loads(raw) for raw in _FRESH(r, statuses=statuses_key(job_type), fresh_s=FRESH_S)]


def summary(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One status for the type: a loaded entry if any process has the model, else an unavailable one (its
    reason), with how many processes reported each."""
    if not entries:
        return None
    loaded = [entry for entry in entries if entry.get("status") == "loaded"]
    chosen = loaded[0] if loaded else entries[0]
    return {**chosen, "workers": {"loaded": len(loaded), "unavailable": len(entries) - len(loaded)}}


def unavailable_everywhere(r: redis.Redis, job_type: str) -> str | None:
    """The reason the type's model is unavailable on every live worker process that reported, or None when
    one has it or none has reported."""
    status = summary(fresh(r, job_type))
    if status is None or status["status"] == "loaded":
        return None
    return str(status.get("message") or f"The {job_type} model is unavailable on every worker.")


__all__ = ["FRESH_S", "REPORT_EVERY_S", "fresh", "report", "statuses_key", "summary", "unavailable_everywhere",
           "withdraw"]
