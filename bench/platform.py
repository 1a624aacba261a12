"""A platform of its own for each benchmark, from the platform builder (`launcher.platform`, what the tests use
and what `make up` runs): a vhost and key prefix, the API, worker pools (`noop`: the baselines' no-op
Celery app `bench.noop_app` on the same settings), and the consumer of a queue paused or resumed.

Every figure is measured next to its baseline in the same run, because the machines are shared and
absolute numbers are noisy.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import requests

from launcher import platform as builder
from launcher import sandbox
from launcher.platform import Platform, Proc, settings_of, start_api, until

Stack = Platform
WORKER_FLAGS = ("--without-mingle", "--without-gossip")
APPS = {"noop": "bench.noop_app"}


@contextmanager
def platform(queues: dict[str, int], api: bool = True, **overrides: str) -> Iterator[Stack]:
    """A platform of its own: `queues` maps a queue to its pool's concurrency (`noop` is the baselines' no-op
    Celery app, on the same settings). This process gets the same BROKER_URL and KEY_PREFIX."""
    problem = sandbox.unreachable()
    if problem:
        raise SystemExit(problem)
    settings = {"LOG_LEVEL": "INFO", "API_WORKERS": "2", **overrides}
    with builder.isolated(queues, name="bench", api=api, apps=APPS, flags=WORKER_FLAGS, **settings) as stack, \
            settings_of(stack.env):
        yield stack


def start_gunicorn(env: dict[str, str], app: str, name: str) -> tuple[Proc, str]:
    """`app` (e.g. `bench.trivial_app:app`) under the platform's own gunicorn settings (gthread, API_WORKERS ×
    API_THREADS), once its `/health` answers."""
    return start_api(env, name, app)


def queue_now(stack: Stack, queue: str) -> tuple[int, int]:
    """(messages, consumers) of a queue right now (a passive declare: the management API lags up to 5 s)."""
    from kombu import Connection

    with Connection(stack.env["BROKER_URL"]) as conn:
        _, messages, consumers = conn.default_channel.queue_declare(queue=queue, passive=True)
    return int(messages), int(consumers)


def consuming(stack: Stack, queue: str, on: bool) -> None:
    """Resume (`on`) or pause the consumer of `queue` in the pool started for it (Celery's remote control,
    sent to that pool only), and wait until the broker agrees: jobs pile up while the pool stays warm."""
    from common.broker import make_celery

    app, node = make_celery(), [f"{stack.procs[queue].name}@{socket.gethostname()}"]
    try:
        if on:
            app.control.add_consumer(queue, reply=True, timeout=5, destination=node)
        else:
            app.control.cancel_consumer(queue, reply=True, timeout=5, destination=node)
    finally:
        app.close()
    until(lambda: (queue_now(stack, queue)[1] >= 1) == on, 30, f"the consumer of {queue} {'back' if on else 'paused'}",
          interval_s=0.1)


def queue_info(vhost: str, queue: str) -> dict[str, Any]:
    """The management API's figures of a queue (they lag the broker by up to 5 s)."""
    url = f"{sandbox.MANAGEMENT}queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
    response = requests.get(url, auth=sandbox.AUTH, timeout=10)
    return response.json() if response.ok else {}


__all__ = ["Stack", "consuming", "platform", "queue_info", "queue_now", "start_gunicorn", "until"]
