"""The baseline Celery app of the benchmarks: a no-op task on the platform's own Celery settings."""

from kombu import Queue

from common.broker import CLASSIC_V2, JOBS_EXCHANGE, make_celery

app = make_celery()
app.conf.task_queues = [*app.conf.task_queues, Queue("noop", JOBS_EXCHANGE, routing_key="noop", durable=True,
                                                           queue_arguments=CLASSIC_V2)]


@app.task(name="bench.noop", queue="noop")
def noop(payload: dict) -> dict:
    return payload
