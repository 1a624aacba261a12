"""Queue figures straight from the broker (AMQP declare-ok: ready messages and consumers)."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

from common.broker import job_queues


@dataclass(frozen=True)
class QueueFigures:
    ready: int
    consumers: int


def declare_all(celery: Celery) -> dict[str, QueueFigures]:
    """Declare every job queue (idempotent: same durable arguments) and read its figures."""
    figures = {}
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        channel = conn.default_channel
        for queue in job_queues():
            _, ready, consumers = queue(channel).queue_declare()
            figures[queue.name] = QueueFigures(ready=ready, consumers=consumers)
    return figures
