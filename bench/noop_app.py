"""The baseline Celery app of the benchmarks, on the platform's own Celery settings (acks late, prefetch 1,
persistent messages, results in Redis): a no-op task, and the sentiment engine wired by hand into a bare
task, as a user would without the platform."""

import os
from typing import Any

from kombu import Queue

from common.broker import CLASSIC_V2, JOBS_EXCHANGE, make_celery

app = make_celery()
app.conf.task_queues = [*app.conf.task_queues, Queue("noop", JOBS_EXCHANGE, routing_key="noop", durable=True,
                                                           queue_arguments=CLASSIC_V2)]
_engine: Any = None


@app.task(name="bench.noop", queue="noop")
def noop(payload: dict) -> dict:
    return payload


@app.task(name="bench.sentiment", queue="noop")
def sentiment(payload: dict) -> dict:
    """`core.analyze` of the texts, the engine loaded once per process (`SENTIMENT_MODEL`)."""
    from workers.sentiment import core

    global _engine
    if _engine is None:
        _engine = core.load_model(os.environ.get("SENTIMENT_MODEL", core.VADER), batch_size=32)
    return {"results": core.analyze(payload["texts"], _engine)}
