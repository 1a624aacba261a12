"""Fixtures of the launcher tests: `python -m launcher up` started as `make up` starts it (`support.up`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from support.up import Launched, launched, launcher_env, private_vhost


@pytest.fixture
def broker_url() -> Iterator[str]:
    """A fresh vhost on the configured RabbitMQ, deleted afterwards; its AMQP URL."""
    with private_vhost() as url:
        yield url


@pytest.fixture
def launcher(broker_url: str) -> Iterator[Launched]:
    with launched(launcher_env(broker_url)) as started:
        yield started


@pytest.fixture
def start_launcher(broker_url: str) -> Iterator[Callable[..., Launched]]:
    """`start_launcher(API_HOST="0.0.0.0")`: the launcher with these settings on top of its own vhost and ports."""
    with ExitStack() as stack:
        yield lambda **overrides: stack.enter_context(launched(launcher_env(broker_url, **overrides)))
