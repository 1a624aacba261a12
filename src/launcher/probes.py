"""Is a service answering? Short, bounded checks, and one bounded wait loop."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import redis
import requests
from amqp.exceptions import AccessRefused
from kombu import Connection
from kombu.exceptions import OperationalError

from common.internal_http import direct_session

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ServiceError(RuntimeError):
    """A service cannot be made ready; the message is one sentence that says what to do."""


def wait_until(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> bool:
    """Poll `check` until it is true or `timeout_s` has passed; return its last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return check()


def amqp_reachable(url: str) -> bool:
    """True when an AMQP login at `url` succeeds within about two seconds."""
    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=0, timeout=2)
    except (OperationalError, OSError):
        return False
    except AccessRefused as exc:
        raise ServiceError(f"RabbitMQ at {safe_url(url)} refused the login in BROKER_URL: {exc}") from exc
    return True


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping())
    except redis.AuthenticationError as exc:
        raise ServiceError(f"Redis at {safe_url(url)} refused the password in REDIS_URL: {exc}") from exc
    except redis.RedisError:
        return False


def management_reachable(url: str) -> bool:
    """True when `GET {url}overview` answers 200 with the URL's credentials."""
    parts = urlsplit(url)
    plain = parts._replace(netloc=f"{parts.hostname}:{parts.port or 15672}").geturl()
    try:
        with direct_session() as session:
            response = session.get(f"{plain}overview", auth=(parts.username or "guest", parts.password or "guest"),
                                   timeout=2)
    except requests.RequestException:
        return False
    if response.status_code == 401:
        raise ServiceError(f"RabbitMQ's management API at {plain} refused the credentials in RABBITMQ_MANAGEMENT_URL.")
    return response.status_code == 200


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}"
