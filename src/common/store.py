"""The process's Redis client (one connection pool per process; redis-py resets it after fork), and the
retry that lets a worker's record writes outlast a Redis outage."""

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

# Redis unreachable, restarting or still loading its data (BusyLoadingError is a ConnectionError): worth
# retrying. Any other RedisError (a wrong type, a script error) would fail the same way again.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


@cache
def get_redis() -> redis.Redis:
    """The client rides over a blip (a pooled connection closed by a Redis restart) with two quick retries,
    then raises: the API must answer 503 within about a second, not hang (redis-py's default retry waits
    up to 10 s a try). Workers wrap their record writes in `retrying` for long outages."""
    settings = get_settings()
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=10,
                                health_check_interval=30, retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2))


def retrying(call: Callable[[], T], what: str, budget_s: float | None = None) -> T:
    """Return `call()`, retried while Redis is unreachable with exponential backoff (0.1 s doubling up to
    5 s) for at most `budget_s` (`STORE_RETRY_S`); each retry is logged. Then the last error is raised."""
    budget = get_settings().store_retry_s if budget_s is None else budget_s
    started = time.monotonic()
    backoff = ExponentialBackoff(cap=5, base=0.05)
    failures = 0
    while True:
        try:
            return call()
        except UNREACHABLE as exc:
            failures += 1
            delay = backoff.compute(failures)
            waited = time.monotonic() - started
            if waited + delay > budget:
                log.error("%s: Redis still unreachable after %.0f s and %d retries: %s",
                          what, waited, failures - 1, exc)
                raise
            log.warning("%s: Redis unreachable (%s); retry %d in %.1f s (%.0f s so far)",
                        what, exc, failures, delay, waited)
            time.sleep(delay)


__all__ = ["UNREACHABLE", "get_redis", "retrying"]
