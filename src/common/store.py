"""The process's Redis client (one connection pool per process; redis-py resets it after fork), the one
place that tells a Redis outage from a bug (`is_outage`), and the retry that lets a worker's record
writes outlast an outage."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from common.settings import get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Error replies by which Redis says "not now": the same command succeeds once it has memory again (OOM under
# `noeviction`), is a master again (READONLY after a failover, MASTERDOWN, NOREPLICAS), can persist again
# (MISCONF), has loaded its data (LOADING), its script has ended (BUSY) or an operator has mended its ACL
# (NOPERM: the store refuses the platform's keys; holding the job until then loses nothing). Any other reply
# (WRONGTYPE, a script error, a wrong argument) would fail the same way again: a bug, never retried.
OUTAGE_REPLIES = frozenset({"OOM", "READONLY", "MASTERDOWN", "NOREPLICAS", "MISCONF", "LOADING", "BUSY",
                            "TRYAGAIN", "CLUSTERDOWN", "NOPERM"})


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` is Redis unreachable or refusing for now (retry later; the API answers 503), rather than
    a bug. Unreachable covers a lost or refused connection, a timeout, a server still loading its data
    (redis-py's BusyLoadingError) and a password it refuses, all ConnectionError or TimeoutError."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return True
    return isinstance(exc, redis.ResponseError) and reply_code(exc) in OUTAGE_REPLIES


def reply_code(exc: redis.ResponseError) -> str:
    """The error reply's first word ("OOM", "READONLY", "WRONGTYPE"...). redis-py keeps it in `status_code`
    for the replies it has a class for (OutOfMemoryError, ReadOnlyError); otherwise the message starts with
    it, after "Command # n (...) of pipeline caused error: " for a command of a pipeline. Redis 7 keeps the
    code of an error raised by a command inside a script."""
    code = getattr(exc, "status_code", None)
    if code:
        return str(code)
    message = str(exc).split(" caused error: ", 1)[-1]
    return message.split(" ", 1)[0]


@cache
def get_redis() -> redis.Redis:
    """The client rides over a blip (a pooled connection closed by a Redis restart) with two quick retries,
    then raises: the API must answer 503 within about a second, not hang (redis-py's default retry waits
    up to 10 s a try). Workers wrap their record writes in `retrying` for long outages."""
    settings = get_settings()
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=10,
                                health_check_interval=30, retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2))


def retrying(call: Callable[[], T], what: str, budget_s: float | None = None) -> T:
    """Return `call()`, retried during a Redis outage (`is_outage`) with exponential backoff (0.1 s doubling
    up to 5 s) for at most `budget_s` (`STORE_RETRY_S`); each retry is logged. Then the last error is raised.
    Any other Redis error is raised at once."""
    budget = get_settings().store_retry_s if budget_s is None else budget_s
    started = time.monotonic()
    backoff = ExponentialBackoff(cap=5, base=0.05)
    failures = 0
    while True:
        try:
            return call()
        except redis.RedisError as exc:
            if not is_outage(exc):
                raise
            failures += 1
            delay = backoff.compute(failures)
            waited = time.monotonic() - started
            if waited + delay > budget:
                log.error("%s: Redis still unavailable after %.0f s and %d retries: %s: %s",
                          what, waited, failures - 1, type(exc).__name__, exc)
                raise
            log.warning("%s: Redis unavailable (%s: %s); retry %d in %.1f s (%.0f s so far)",
                        what, type(exc).__name__, exc, failures, delay, waited)
            time.sleep(delay)


__all__ = ["OUTAGE_REPLIES", "get_redis", "is_outage", "reply_code", "retrying"]
