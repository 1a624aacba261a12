"""Completion webhooks: the URL check at submit, the delivery schedule in Redis, and its counters.

A job submitted with a `webhook` keeps its URL in its record (`webhook_url`). The script that stores the
job's end (`records._FINISH`) sets the webhook `pending` and adds the job to the schedule, a sorted set
`{prefix}webhooks` scored by the time (ms) its next attempt is due, in the same step: a process that dies
right after the end cannot lose the delivery. The `webhooks` pool (`workers.webhook_delivery`) claims due
entries (`claim_due`: their score moves a lease ahead, so an entry claimed by a process that died before
sending it is due again once the lease ends), posts them, and stores each attempt's outcome (`store_outcome`):
delivered and failed leave the schedule, a retry goes back into it at its next due time.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis
from standardwebhooks import Webhook

from common import jobstats, records
from common.addresses import Allowlist, check_address
from common.errors import InputError
from common.lua import Script, lua_set
from common.settings import Settings, get_settings

STATES = ("pending", "delivered", "failed")
OUTCOMES = ("delivered", "retry", "failed")  # of one attempt; `retry`: failed, another one is scheduled
MAX_URL = 2048
_NOW_MS = """local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)"""


def unusable_secret(settings: Settings) -> str | None:
    """Why `WEBHOOK_SECRET` (or `WEBHOOK_SECRET_PREVIOUS`) cannot sign, or None: each must be `whsec_` and a
    non-empty base64 key."""
    for name, secret in (("WEBHOOK_SECRET", settings.webhook_secret),
                         ("WEBHOOK_SECRET_PREVIOUS", settings.webhook_secret_previous)):
        if not secret:
            continue
        try:
            Webhook(secret)
        except Exception:  # standardwebhooks raises its own errors and binascii's
            return f"{name} is not a signing key (`whsec_` followed by a non-empty base64 key)"
    return None


def leases_key() -> str:
    """The schedule's entries claimed and not yet begun (`_CLAIM`, `_BEGIN`)."""
    return f"{records.webhook_schedule_key()}:leases"


def stats_key() -> str:
    return f"{get_settings().key_prefix}stats:webhooks"


def check_url(url: str, settings: Settings) -> str:
    """The URL a submit asks to be called at, or 400 `webhook_refused`: not http(s), no signing key, or an
    address the SSRF guard refuses (`common.addresses`, with `WEBHOOK_ALLOWLIST`)."""
    def refused(why: str) -> InputError:
        return InputError(f"The webhook {url[:200]!r} is refused: {why}", code="webhook_refused")

    parts = urlsplit(url)
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
        raise refused(f"it must be an http or https URL of at most {MAX_URL} characters.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise refused("its port is invalid.") from None
    if not settings.webhook_secret:
        raise refused("this platform has no WEBHOOK_SECRET to sign webhooks with, and sends no unsigned ones.")
    unusable = unusable_secret(settings)
    if unusable:
        raise refused(f"this platform's {unusable}, and it sends no unsigned webhooks.")
    try:
        allowlist = Allowlist.parse(settings.webhook_allowlist, "WEBHOOK_ALLOWLIST")
    except ValueError as exc:
        raise InputError(f"The platform's {exc}.", code="webhook_allowlist_invalid") from None
    try:
        check_address(parts.hostname, port, allowlist)
    except InputError as exc:
        raise refused(exc.message.replace("Fetching", "Posting to")) from None
    return url


# Due entries, at most `limit`, each leased for `lease_ms` (its score moves that far ahead) and noted as claimed
# in `leases`: one `deliver` task may begin per claim.
_CLAIM = Script(keys=("schedule", "leases"), args=("lease_ms", "limit"), body=_NOW_MS + """
local due = redis.call('ZRANGEBYSCORE', schedule, '-inf', now_ms, 'LIMIT', 0, tonumber(limit))
for _, id in ipairs(due) do
  redis.call('ZADD', schedule, now_ms + tonumber(lease_ms), id)
  redis.call('HSET', leases, id, now_ms)
end
return due
""")
# The start of an attempt: its number (attempts so far), with the lease renewed; -1 when there is nothing to
# send (record expired, or its webhook no longer pending: the entry leaves the schedule), -2 when no claim is
# left to begin (a second task of one claim, published again while the first waited in the queue: it must not
# post at once, past a backoff or a `Retry-After` the first one stored).
_BEGIN = Script(keys=("job", "schedule", "leases"), args=("job_id", "lease_ms"), body=_NOW_MS + """
local claimed = redis.call('HDEL', leases, job_id)
if redis.call('HGET', job, 'webhook_state') ~= 'pending' then
  redis.call('ZREM', schedule, job_id)
  return -1
end
if claimed == 0 then return -2 end
redis.call('ZADD', schedule, 'XX', now_ms + tonumber(lease_ms), job_id)
return tonumber(redis.call('HGET', job, 'webhook_attempts') or '0')
""")
# An attempt's outcome, stored only if no other attempt (a duplicate, or a redelivery) came in between.
_OUTCOME = Script(
    keys=("job", "schedule", "stats"),
    args=("job_id", "attempt", "outcome", "status", "error", "delay_ms", "stats_ttl"), body=_NOW_MS + """
if redis.call('HGET', job, 'webhook_state') ~= 'pending'
   or (redis.call('HGET', job, 'webhook_attempts') or '0') ~= attempt then return 0 end
redis.call('HINCRBY', job, 'webhook_attempts', 1)
redis.call('HSET', job, 'webhook_last_status', status, 'webhook_last_error', error)
if outcome == 'retry' then
  local due = now_ms + tonumber(delay_ms)
  redis.call('HSET', job, 'webhook_due_ms', due)
  redis.call('ZADD', schedule, due, job_id)
else
  redis.call('HSET', job, 'webhook_state', outcome)
  redis.call('HDEL', job, 'webhook_due_ms')
  redis.call('ZREM', schedule, job_id)
end
redis.call('HINCRBY', stats, outcome, 1)
redis.call('EXPIRE', stats, stats_ttl)
return 1
""")
_REDELIVER = Script(keys=("job", "schedule"), args=("job_id", "wake"), preamble=(lua_set("FINAL", records.FINAL),),
                    body=_NOW_MS + """
local state = redis.call('HMGET', job, 'status', 'webhook_url')
if not state[1] then return -1 end
if not state[2] then return -2 end
if not FINAL[state[1]] then return -3 end
redis.call('HSET', job, 'webhook_state', 'pending', 'webhook_attempts', 0, 'webhook_due_ms', now_ms)
redis.call('ZADD', schedule, now_ms, job_id)
redis.call('PUBLISH', wake, job_id)
return 1
""")
REDELIVERED, NOT_FOUND, NO_WEBHOOK, NOT_FINISHED = 1, -1, -2, -3


def claim_due(r: redis.Redis, lease_s: float, limit: int = 100) -> list[str]:
    ids: list[bytes] = _CLAIM(r, schedule=records.webhook_schedule_key(), leases=leases_key(),
                              lease_ms=int(lease_s * 1000), limit=limit)
    return [i.decode() for i in ids]


def begin(r: redis.Redis, job_id: str, lease_s: float) -> int:
    """The number of this attempt's predecessors, or below 0: nothing to send (see `_BEGIN`)."""
    return int(_BEGIN(r, job=records.job_key(job_id), schedule=records.webhook_schedule_key(), leases=leases_key(),
                      job_id=job_id, lease_ms=int(lease_s * 1000)))


def store_outcome(r: redis.Redis, job_id: str, attempt: int, outcome: str, status: int | None, error: str,
                  delay_s: float = 0) -> bool:
    return bool(_OUTCOME(r, job=records.job_key(job_id), schedule=records.webhook_schedule_key(), stats=stats_key(),
                         job_id=job_id, attempt=attempt, outcome=outcome, status="" if status is None else status,
                         error=error[:500], delay_ms=int(delay_s * 1000), stats_ttl=jobstats.STATS_TTL_S))


def redeliver(r: redis.Redis, job_id: str) -> int:
    """Make the job's webhook pending and due now, with a fresh schedule: REDELIVERED, or NOT_FOUND, NO_WEBHOOK,
    NOT_FINISHED (nothing written)."""
    return int(_REDELIVER(r, job=records.job_key(job_id), schedule=records.webhook_schedule_key(), job_id=job_id,
                          wake=records.webhook_wake_channel()))


def counts(r: redis.Redis) -> dict[str, int]:
    """Attempts so far by outcome (`/metrics`)."""
    raw: dict[bytes, bytes] = r.hgetall(stats_key())  # type: ignore[assignment]
    found = {k.decode(): int(v) for k, v in raw.items()}
    return {outcome: found.get(outcome, 0) for outcome in OUTCOMES}


__all__ = ["OUTCOMES", "STATES", "begin", "check_url", "claim_due", "counts", "redeliver", "stats_key",
           "store_outcome"]
