"""`GET /metrics` in Prometheus' text format, and one log line per request with its job id.

- HTTP requests by route and status, with latency histograms, and jobs submitted by type: counted in
  the API process. Under gunicorn every worker process writes them to files in
  `PROMETHEUS_MULTIPROC_DIR` (prometheus-client's multiprocess mode, set up in `gunicorn_conf.py`),
  so any worker answers a scrape with the sum of all of them.
- Jobs finished by type and state, with run-time histograms: recorded by the workers in Redis
  (`common.jobstats`) and read here at scrape time (one HGETALL).
- Completion webhook attempts by outcome: counted by the webhooks pool in Redis (`common.webhooks`), read here.
- Queue depth, unacked and consumers per queue, and the oldest ready message's age: from the same
  cached figures as `/v1/queues`.
The last two are platform-wide: behind several API replicas, aggregate them with `max`, not `sum`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import redis
from flask import Flask, Response, current_app, g, request
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from api.queues import reader
from common import jobstats, webhooks
from common.errors import PlatformError
from common.logs import set_job_id
from common.store import get_redis

disable_created_metrics()
log = logging.getLogger("api.request")
api = APIBlueprint("metrics", __name__, abp_tags=[Tag(name="operations")])

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics"})
# Label values come from these sets only, so a client cannot add series by inventing methods or paths.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"
SUBMIT_PREFIX = "jobs.submit_"

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered, by route and status.",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("http_request_duration_seconds", "Time to answer an HTTP request, by route.",
                         ["method", "route"], buckets=LATENCY_BUCKETS)
JOBS_SUBMITTED = Counter("jobs_submitted_total", "Jobs accepted by the API (202), by type.", ["type"])


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_observe)
    app.teardown_request(_forget)


def _start() -> None:
    g.request_started = time.perf_counter()
    set_job_id((request.view_args or {}).get("job_id"))


def _observe(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD
    HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)
    endpoint = request.endpoint or ""
    if endpoint.startswith(SUBMIT_PREFIX) and response.status_code == 202:
        JOBS_SUBMITTED.labels(endpoint.removeprefix(SUBMIT_PREFIX)).inc()
    location = response.headers.get("Location", "")
    if location.startswith("/v1/jobs/"):
        set_job_id(location.rsplit("/", 1)[-1])
    level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
    log.log(level, "%s %s %s %.1f ms", request.method, request.full_path.rstrip("?"), response.status_code,
            seconds * 1000, extra={"method": request.method, "route": route, "status": response.status_code,
                                   "duration_ms": round(seconds * 1000, 2)})
    return response


def _forget(_: BaseException | None) -> None:
    set_job_id(None)


class PlatformCollector:
    """Figures read at scrape time: finished jobs from Redis, queues from the broker."""

    def collect(self) -> Iterator[Metric]:
        yield from _finished_jobs()
        yield from _webhook_deliveries()
        yield from _queue_gauges()


def _finished_jobs() -> Iterator[Metric]:
    finished = CounterMetricFamily("jobs_finished", "Jobs finished by the workers, by type and state.",
                                   labels=["type", "state"])
    run_time = HistogramMetricFamily("job_run_seconds", "Time a job ran in a worker, by type and state.",
                                     labels=["type", "state"])
    try:
        series = jobstats.read(get_redis())
    except redis.RedisError as exc:
        log.warning("job statistics unavailable for /metrics: %s", exc)
        series = {}
    for (job_type, state), times in sorted(series.items()):
        finished.add_metric([job_type, state], times.count)
        run_time.add_metric([job_type, state], times.cumulative(), times.total_s)
    yield finished
    yield run_time


def _webhook_deliveries() -> Iterator[Metric]:
    deliveries = CounterMetricFamily("webhook_deliveries", "Completion webhook attempts by outcome: delivered, retry "
                                     "(failed, another attempt scheduled), failed (given up).", labels=["outcome"])
    try:
        counts = webhooks.counts(get_redis())
    except redis.RedisError as exc:
        log.warning("webhook statistics unavailable for /metrics: %s", exc)
        counts = {}
    for outcome, count in counts.items():
        deliveries.add_metric([outcome], count)
    yield deliveries


def _queue_gauges() -> Iterator[Metric]:
    up = GaugeMetricFamily("queue_stats_up", "1 when queue figures could be read (management API or declare).")
    try:
        snapshot = reader().read()
    except PlatformError:
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    yield up
    gauges = {
        "ready": GaugeMetricFamily("queue_messages_ready", "Messages waiting for a worker.", labels=["queue"]),
        "unacked": GaugeMetricFamily("queue_messages_unacked", "Messages delivered and running.", labels=["queue"]),
        "consumers": GaugeMetricFamily("queue_consumers", "Worker pools consuming the queue.", labels=["queue"]),
        "oldest_ready_age_s": GaugeMetricFamily("queue_oldest_ready_age_seconds",
                                                "Age of the oldest ready message.", labels=["queue"]),
    }
    for name, figures in snapshot.queues.items():
        for field, gauge in gauges.items():
            value = getattr(figures, field)
            if value is not None:
                gauge.add_metric([name], value)
    yield from gauges.values()


def exposition() -> bytes:
    """The API processes' own metrics (summed over gunicorn workers), then the platform-wide ones."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # prometheus-client's own switch, set by gunicorn_conf
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        own = generate_latest(registry)
    else:
        own = generate_latest(REGISTRY)
    return own + generate_latest(PlatformCollector())  # type: ignore[arg-type]


TEXT_RESPONSE = {"description": "Prometheus text exposition format.",
                 "content": {"text/plain": {"schema": {"type": "string"}}}}


@api.get("/metrics", responses={200: TEXT_RESPONSE}, operation_id="getMetrics")
def metrics() -> Any:
    """Prometheus metrics: HTTP requests, jobs submitted and finished, queue depth and consumers"""
    return current_app.response_class(exposition(), content_type=CONTENT_TYPE_LATEST)


__all__ = ["HTTP_LATENCY", "HTTP_REQUESTS", "JOBS_SUBMITTED", "PlatformCollector", "api", "exposition", "init_app"]
