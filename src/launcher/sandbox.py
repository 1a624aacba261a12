"""A space of its own on shared services for a platform `launcher.platform` builds: a RabbitMQ vhost and a
Redis key prefix, made and removed through the management API and Redis."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import redis
import requests
from kombu import Connection

AMQP_ROOT = "amqp://guest:guest@127.0.0.1:5672"
REDIS_URL = "redis://127.0.0.1:6379/0"
MANAGEMENT = "http://127.0.0.1:15672/api/"
AUTH = ("guest", "guest")


def unreachable() -> str | None:
    """One sentence on the first local service that does not answer (RabbitMQ, Redis, the management API)."""
    try:
        with Connection(f"{AMQP_ROOT}//", connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        return f"RabbitMQ is not reachable at 127.0.0.1:5672 ({exc}); start it: rabbitmq-server -detached"
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3) as r:
            r.ping()
    except redis.RedisError as exc:
        return f"Redis is not reachable at 127.0.0.1:6379 ({exc}); start it: redis-server --daemonize yes"
    try:
        requests.get(f"{MANAGEMENT}overview", auth=AUTH, timeout=5).raise_for_status()
    except requests.RequestException as exc:
        return f"RabbitMQ's management API is not answering ({exc}); run `make services`"
    return None


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
