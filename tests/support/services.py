"""The real RabbitMQ and Redis the tests run against, each test run in its own vhost and key prefix."""

from __future__ import annotations

import subprocess

import pytest

from launcher.sandbox import (
    AMQP_ROOT,
    AUTH,
    MANAGEMENT,
    REDIS_URL,
    create_vhost,
    delete_keys,
    delete_vhost,
    unreachable,
)


def require_services() -> None:
    """Fail the run with one sentence when a service is down; never skip."""
    problem = unreachable()
    if problem:
        pytest.fail(problem, pytrace=False)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


__all__ = ["AMQP_ROOT", "AUTH", "MANAGEMENT", "REDIS_URL", "create_vhost", "delete_keys", "delete_vhost",
           "rabbitmqctl", "require_services"]
