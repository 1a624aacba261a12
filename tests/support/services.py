"""The real RabbitMQ and Redis the tests run against, each test run in its own vhost and key prefix."""

from __future__ import annotations

import subprocess
import uuid
from urllib.parse import quote

import pytest
import redis
import requests
from kombu import Connection

AMQP_ROOT = "amqp://guest:guest@127.0.0.1:5672"
REDIS_URL = "redis://127.0.0.1:6379/0"
MANAGEMENT = "http://127.0.0.1:15672/api/"
AUTH = ("guest", "guest")


def require_services() -> None:
    """Fail the run with one sentence when a service is down; never skip."""
    try:
        with Connection(f"{AMQP_ROOT}//", connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not reachable at 127.0.0.1:5672 ({exc}); start it: rabbitmq-server -detached",
                    pytrace=False)
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3) as r:
            r.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at 127.0.0.1:6379 ({exc}); start it: redis-server --daemonize yes",
                    pytrace=False)
    try:
        requests.get(f"{MANAGEMENT}overview", auth=AUTH, timeout=5).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"RabbitMQ's management API is not answering ({exc}); run `make services`", pytrace=False)


def create_vhost() -> str:
    vhost = f"test-{uuid.uuid4().hex[:10]}"
    url = f"{MANAGEMENT}vhosts/{quote(vhost, safe='')}"
    requests.put(url, auth=AUTH, timeout=10).raise_for_status()
    perms = f"{MANAGEMENT}permissions/{quote(vhost, safe='')}/guest"
    requests.put(perms, json={"configure": ".*", "write": ".*", "read": ".*"}, auth=AUTH, timeout=10).raise_for_status()
    return vhost


def delete_vhost(vhost: str) -> None:
    requests.delete(f"{MANAGEMENT}vhosts/{quote(vhost, safe='')}", auth=AUTH, timeout=30)


def delete_keys(prefix: str) -> None:
    with redis.Redis.from_url(REDIS_URL) as r:
        for key in r.scan_iter(match=f"{prefix}*", count=1000):
            r.delete(key)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)
