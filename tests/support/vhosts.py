"""A second, empty vhost for tests that need a queue nobody consumes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import requests
from kombu import Connection

from support import services


@contextmanager
def idle_vhost() -> Iterator[tuple[str, Any]]:
    """Yield (vhost, Flask test client of an API publishing there); no worker consumes it."""
    from api import create_app
    from common.settings import get_settings

    vhost = services.create_vhost()
    try:
        settings = get_settings().model_copy(update=dict(broker_url=f"{services.AMQP_ROOT}/{vhost}"))
        yield vhost, create_app(settings).test_client()
    finally:
        services.delete_vhost(vhost)


def queue_depths(vhost: str) -> dict[str, int]:
    url = f"{services.MANAGEMENT}queues/{quote(vhost, safe='')}?columns=name,messages"
    return {q["name"]: q.get("messages", 0) for q in requests.get(url, auth=services.AUTH, timeout=10).json()}


def declared(vhost: str, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of `queue`, exact: from a passive declare (the management API's figures
    lag the broker by up to about 6 s)."""
    with Connection(f"{services.AMQP_ROOT}/{vhost}", connect_timeout=5) as conn:
        _, ready, consumers = conn.default_channel.queue_declare(queue=queue, passive=True)
    return int(ready), int(consumers)
