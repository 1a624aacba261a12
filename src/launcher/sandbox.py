"""A space of its own on shared services for a platform `launcher.platform` builds: a RabbitMQ vhost and a
Redis key prefix, made and removed through the management API and Redis."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import redis
import requests

AMQP_ROOT = "amqp://guest:guest@127.0.0.1:5672"
REDIS_URL = "redis://127.0.0.1:6379/0"
MANAGEMENT = "http://127.0.0.1:15672/api/"
AUTH = ("guest", "guest")


def create_vhost(prefix: str = "test") -> str:
    """A new vhost on the local RabbitMQ where `guest` may do everything; its name."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:10]}"
    url = f"{MANAGEMENT}vhosts/{quote(vhost, safe='')}"
    requests.put(url, auth=AUTH, timeout=10).raise_for_status()
    perms = f"{MANAGEMENT}permissions/{quote(vhost, safe='')}/guest"
    requests.put(perms, json={"configure": ".*", "write": ".*", "read": ".*"}, auth=AUTH, timeout=10).raise_for_status()
    return vhost


def delete_vhost(vhost: str) -> None:
    requests.delete(f"{MANAGEMENT}vhosts/{quote(vhost, safe='')}", auth=AUTH, timeout=30)


def delete_keys(prefix: str, redis_url: str = REDIS_URL) -> None:
    with redis.Redis.from_url(redis_url) as r:
        for key in r.scan_iter(match=f"{prefix}*", count=1000):
            r.delete(key)
