"""The real RabbitMQ and Redis the tests run against, each test run in its own vhost and key prefix."""

from __future__ import annotations

import subprocess

import pytest
import redis
import requests
from kombu import Connection

from launcher.sandbox import AMQP_ROOT, AUTH, MANAGEMENT, REDIS_URL, create_vhost, delete_keys, delete_vhost


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


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


__all__ = ["AMQP_ROOT", "AUTH", "MANAGEMENT", "REDIS_URL", "create_vhost", "delete_keys", "delete_vhost",
           "rabbitmqctl", "require_services"]
