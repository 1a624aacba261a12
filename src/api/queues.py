"""Queue figures: `GET /v1/queues`, the `/metrics` queue gauges, and `/ready`'s consumer check.

The figures come from RabbitMQ's management API: one call lists every queue of the broker URL's
vhost with ready, unacked, consumers and the publish time of its oldest ready message (the API stamps
each job message with an AMQP `timestamp`). The answer is cached for at most `CACHE_S` per process.
RabbitMQ refreshes these figures every 5 s, so they lag by up to that much. When the management API
is down, a declare of each job queue (the same idempotent declare the workers make) still gives
ready and consumers; unacked and age are then null. Each job queue is followed, after all of them, by
the dead-letter queues `<type>.dead`, where the workers park poison jobs (`workers.request`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests
from celery import Celery, signals
from flask import current_app, jsonify
from flask_openapi3 import APIBlueprint, Tag
from kombu import Queue
from kombu.exceptions import OperationalError
from kombu.utils.url import parse_url
from pydantic import BaseModel, Field

from api.models import ErrorBody
from common.broker import dead_letter_queues, job_queues
from common.errors import Unavailable
from common.internal_http import direct_session
from common.settings import Settings

CACHE_S = 1.0
MANAGEMENT_TIMEOUT_S = 2.0
COLUMNS = "name,messages_ready,messages_unacknowledged,consumers,head_message_timestamp"
Source = Literal["management", "declare"]
# A queue not declared yet holds nothing; one declared in the last 5 s has no figures yet (null).
ABSENT = {"messages_ready": 0, "messages_unacknowledged": 0, "consumers": 0}

api = APIBlueprint("queues", __name__, abp_tags=[Tag(name="operations")])


@dataclass(frozen=True)
class QueueFigures:
    ready: int | None
    consumers: int | None
    unacked: int | None = None
    oldest_ready_age_s: float | None = None


@dataclass(frozen=True)
class Snapshot:
    source: Source
    taken_at: float  # time.time()
    queues: dict[str, QueueFigures]


class QueueView(BaseModel):
    name: str = Field(description="The queue: a job type's name, or `<type>.dead`, its dead-letter queue (poison "
                                   "jobs parked after `MAX_DELIVERIES` deliveries; nothing consumes it).")
    ready: int | None = Field(description="Messages waiting for a worker (null: not yet counted by the broker).")
    unacked: int | None = Field(description="Messages delivered to a worker and running (null: unknown).")
    consumers: int | None = Field(description="Worker pools consuming the queue (one per Celery worker).")
    oldest_ready_age_s: float | None = Field(
        description="Age of the oldest ready message, in seconds (null: empty queue, or the broker does not say).")


class QueuesView(BaseModel):
    source: Source = Field(description="`management`: RabbitMQ's management API (lags up to 5 s); "
                                       "`declare`: queue declares, when the management API is down.")
    as_of: float = Field(description="Unix time the figures were read.")
    queues: list[QueueView]


def all_queues() -> list[Queue]:
    return [*job_queues(), *dead_letter_queues()]


def declare_all(celery: Celery, queues: list[Queue] | None = None) -> dict[str, QueueFigures]:
    """Declare every job queue, or `queues` (idempotent: same durable arguments), and read its figures."""
    figures = {}
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        channel = conn.default_channel
        for queue in job_queues() if queues is None else queues:
            _, ready, consumers = queue(channel).queue_declare()
            figures[queue.name] = QueueFigures(ready=ready, consumers=consumers)
    return figures


def from_management(settings: Settings, now: float) -> dict[str, QueueFigures]:
    """Every job and dead-letter queue's figures in one call; raises `requests.RequestException` when it cannot."""
    parts = urlsplit(settings.rabbitmq_management_url)
    base = parts._replace(netloc=f"{parts.hostname}:{parts.port or 15672}").geturl().rstrip("/")
    vhost = parse_url(settings.broker_url)["virtual_host"] or "/"
    with direct_session() as session:  # an internal service: never through HTTP(S)_PROXY
        response = session.get(f"{base}/queues/{quote(vhost, safe='')}", params={"columns": COLUMNS},
                               auth=(parts.username or "guest", parts.password or "guest"),
                               timeout=MANAGEMENT_TIMEOUT_S)
    response.raise_for_status()
    listed = {q["name"]: q for q in response.json()}
    return {q.name: _figures(listed.get(q.name, ABSENT), now) for q in all_queues()}


def _figures(q: dict[str, Any], now: float) -> QueueFigures:
    head = q.get("head_message_timestamp")
    age = round(max(0.0, now - head), 1) if isinstance(head, int | float) and q.get("messages_ready") else None
    return QueueFigures(ready=q.get("messages_ready"), consumers=q.get("consumers"),
                        unacked=q.get("messages_unacknowledged"), oldest_ready_age_s=age)


class QueueReader:
    """The figures of one app (one broker vhost), cached for `CACHE_S`; one refresh at a time."""

    def __init__(self, settings: Settings, celery: Celery) -> None:
        self.settings = settings
        self.celery = celery
        self._lock = threading.Lock()
        self._cached: tuple[float, Snapshot] | None = None

    def read(self) -> Snapshot:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < CACHE_S:
                return self._cached[1]
            snapshot = self._take()
            self._cached = (time.monotonic(), snapshot)
            return snapshot

    def _take(self) -> Snapshot:
        now = time.time()
        try:
            return Snapshot("management", now, from_management(self.settings, now))
        except (requests.RequestException, ValueError):
            pass
        try:
            return Snapshot("declare", now, declare_all(self.celery, all_queues()))
        except OperationalError as exc:
            raise Unavailable(f"Neither RabbitMQ's management API nor the broker answers: {exc}",
                              code="broker_unavailable") from None


def reader() -> QueueReader:
    return current_app.extensions["queue_reader"]  # type: ignore[no-any-return]


@signals.before_task_publish.connect(dispatch_uid="api.queues.stamp_publish_time")
def _stamp_publish_time(properties: dict[str, Any] | None = None, **_: Any) -> None:
    """Give each job message an AMQP timestamp, from which the broker tells the oldest one's age."""
    if properties is not None:
        properties.setdefault("timestamp", int(time.time()))


@api.get("/v1/queues", responses={200: QueuesView, 503: ErrorBody}, operation_id="listQueues")
def list_queues() -> Any:
    """Each job type's queue and dead-letter queue: ready, unacked, consumers, oldest ready message's age
    From RabbitMQ's management API (figures lag up to 5 s, cached 1 s); from queue declares when it is down.
    The dead-letter queues `<type>.dead` follow the job queues."""
    snapshot = reader().read()
    queues = [QueueView(name=name, **vars(f)) for name, f in snapshot.queues.items()]
    body = QueuesView(source=snapshot.source, as_of=round(snapshot.taken_at, 3), queues=queues)
    return jsonify(body.model_dump(mode="json"))


__all__ = ["QueueFigures", "QueueReader", "Snapshot", "all_queues", "api", "declare_all", "from_management", "reader"]
