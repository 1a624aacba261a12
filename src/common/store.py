"""The process's Redis client (one connection pool per process; redis-py resets it after fork)."""

from __future__ import annotations

from functools import cache

import redis

from common.settings import get_settings


@cache
def get_redis() -> redis.Redis:
    settings = get_settings()
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=10,
                                health_check_interval=30)
