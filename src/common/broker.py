"""Celery configuration shared by the API (which only publishes) and the workers.

Every job type gets its own durable queue, bound to the `jobs` direct exchange under its own name.
Its dead-letter queue `<type>.dead` (bound to `jobs.dead`) holds the jobs a worker gave up on.
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
# A job rejected without requeue (a poison job, see `workers.request`) is dead-lettered by RabbitMQ through
# this exchange to its type's `<type>.dead` queue, which nothing consumes.
DEAD_LETTER_EXCHANGE = Exchange("jobs.dead", type="direct", durable=True)


# RabbitMQ's second classic-queue storage (3.10+; the only one from 4.0): about a third less broker CPU
# per persistent message than the first, measured here (bench/notes.md).
CLASSIC_V2 = {"x-queue-version": 2}


# Completion webhooks (`workers.webhook_delivery`) have a queue and pool of their own: a slow receiver holds
# only a webhooks process, never a job type's pool.
WEBHOOKS_QUEUE = "webhooks"
DELIVER_TASK = "webhooks.deliver"


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dead"


def job_queues() -> list[Queue]:
    """Each type's queue. Its arguments are part of its identity: RabbitMQ refuses to redeclare a queue
    with other arguments (PRECONDITION_FAILED; docs/operations.md says how to migrate)."""
    return [Queue(t.queue, JOBS_EXCHANGE, routing_key=t.queue, durable=True,
                  queue_arguments={"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
                                   "x-dead-letter-routing-key": t.queue, **CLASSIC_V2})
            for t in CATALOG]


def webhooks_queue() -> Queue:
    return Queue(WEBHOOKS_QUEUE, JOBS_EXCHANGE, routing_key=WEBHOOKS_QUEUE, durable=True, queue_arguments=CLASSIC_V2)


def dead_letter_queues() -> list[Queue]:
    return [Queue(dead_letter_queue_name(t.queue), DEAD_LETTER_EXCHANGE, routing_key=t.queue, durable=True)
            for t in CATALOG]


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.redis_url,
        "result_expires": settings.result_ttl_s,
        "result_backend_transport_options": {"global_keyprefix": settings.key_prefix} if settings.key_prefix else {},
        "broker_transport_options": {"confirm_publish": True},
        # One producer connection per API thread: with fewer, a submit waits for another's publisher confirm.
        "broker_pool_limit": max(10, settings.api_threads),
        "broker_connection_retry_on_startup": True,
        # A worker that loses the broker reconnects by itself, however long the broker is away (Celery's
        # default gives up after 100 tries, about 50 min, and the worker then stays idle).
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        # A pool child loads its model in `worker_process_init` before it reports up; replaced children
        # (after a broker restart cancels the running jobs, a kill or a memory limit) took 2-6 s here, past
        # Celery's 4 s default, and were killed and replaced in a loop for about 40 s.
        "worker_proc_alive_timeout": 120.0,
        "broker_heartbeat": settings.broker_heartbeat_s,  # the workers' connections; the API's publishing ones never
        "task_queues": [*job_queues(), webhooks_queue()],
        "task_default_exchange": JOBS_EXCHANGE.name,
        "task_routes": {**{t.task_name: {"queue": t.queue, "routing_key": t.queue} for t in CATALOG},
                        DELIVER_TASK: {"queue": WEBHOOKS_QUEUE, "routing_key": WEBHOOKS_QUEUE}},
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
