"""Celery configuration shared by the API (which only publishes) and the workers.

Every job type gets its own durable queue, bound to the `jobs` direct exchange under its own name.
Messages are persistent and publishing waits for the broker's confirm, so a 202 means the job is
on disk in RabbitMQ.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from common.catalog import CATALOG
from common.settings import Settings, get_settings

JOBS_EXCHANGE = Exchange("jobs", type="direct", durable=True)


def job_queues() -> list[Queue]:
    return [Queue(t.queue, JOBS_EXCHANGE, routing_key=t.queue, durable=True) for t in CATALOG]


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.redis_url,
        "result_expires": settings.result_ttl_s,
        "result_backend_transport_options": {"global_keyprefix": settings.key_prefix} if settings.key_prefix else {},
        "broker_transport_options": {"confirm_publish": True},
        "broker_connection_retry_on_startup": True,
        "broker_heartbeat": 10,
        "task_queues": job_queues(),
        "task_default_exchange": JOBS_EXCHANGE.name,
        "task_routes": {t.task_name: {"queue": t.queue, "routing_key": t.queue} for t in CATALOG},
        "task_create_missing_queues": False,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_track_started": True,
        "task_send_sent_event": settings.worker_events,
        "worker_send_task_events": settings.worker_events,
        "worker_hijack_root_logger": False,
    }


def make_celery(settings: Settings | None = None, include: tuple[str, ...] = ()) -> Celery:
    app = Celery("jobs", include=list(include))
    app.conf.update(celery_config(settings or get_settings()))
    return app
