"""Dynamic batching across jobs, each job still acknowledged on its own (`<TYPE>_BATCH_MAX`, docs/batching.md).

Celery delivers one job (the leader) to a pool child as always. When its type batches and `<TYPE>_BATCH_MAX`
is above 1, the leader's body (`run`) takes up to `BATCH_MAX - 1` more messages of the same queue on the
child's own channel (`Gatherer`: prefetch `BATCH_MAX - 1`, no auto-ack, consuming only while it gathers),
those that arrive within `<TYPE>_BATCH_WAIT_MS`. Each gathered job goes through the same lifecycle as the
leader (`lifecycle.start`: attempt counted, a cancelled or ended job dropped, one past `MAX_DELIVERIES` parked
and dead-lettered); the type's engine runs once on all their inputs (the task's `run_batch`); each member's
end is stored (`lifecycle.succeed`/`fail`), and only then is its message acked on the child's channel. The
leader's end and ack stay Celery's (`JobTask` hooks, late ack).

A batch call that raises runs its members again one by one, so a failing member fails alone. A child killed
mid-batch drops its connection: RabbitMQ redelivers every unacked member, Celery the leader, and each
attempt was counted in its own record. The leader's time limits cover the whole batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import signals
from celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded
from kombu import Connection, Consumer
from kombu.message import Message

from common import records
from common.settings import get_settings
from common.store import get_redis
from workers import lifecycle, memory
from workers.lifecycle import JobRun

log = logging.getLogger(__name__)


@dataclass
class Member:
    run: JobRun
    payload: dict[str, Any]
    message: Message | None = None  # None: the leader, whose message Celery acks
    outcome: Any = None  # its result, or the exception it failed with


class Gatherer:
    """A pool child's own channel on one queue, opened on first use and kept for the child's life. It consumes
    only while `gather` runs: between batches it holds no message, so none waits behind an idle child."""

    def __init__(self, app: Any, queue: str) -> None:
        self.app, self.queue = app, queue
        self.connection: Connection | None = None
        self.channel: Any = None

    def gather(self, most: int, wait_s: float) -> list[Message]:
        """Up to `most` messages that arrive within `wait_s`, unacked. The channel's prefetch is `most`, so
        RabbitMQ never hands it more than one batch can take."""
        if self.connection is None:
            self.connection = self.app.connection_for_read(heartbeat=0)  # idle between batches: no heartbeats
            self.channel = self.connection.default_channel
            self.channel.basic_qos(0, most, False)  # once: the channel's consumers, one batch at a time
        got: list[Message] = []
        consumer = Consumer(self.channel, [self.app.amqp.queues[self.queue]], on_message=got.append,
                            accept=["json"], auto_declare=False)
        consumer.consume()
        deadline = time.monotonic() + wait_s
        try:
            while len(got) < most and (left := deadline - time.monotonic()) > 0:
                try:
                    self.connection.drain_events(timeout=left)
                except TimeoutError:
                    break
        finally:
            consumer.cancel()  # waits for cancel-ok: a delivery on its way meanwhile still lands in `got`
        return got

    def close(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception as exc:  # already broken: the broker has closed it, or will on its own
                log.debug("batch channel closed with %s: %s", type(exc).__name__, exc)


_gatherers: dict[str, Gatherer] = {}


def gatherer(task: Any) -> Gatherer:
    found = _gatherers.get(task.queue)
    if found is None:
        found = _gatherers[task.queue] = Gatherer(task.app, task.queue)
    return found


@signals.worker_process_shutdown.connect
def _close_gatherers(**_: Any) -> None:
    for each in _gatherers.values():
        each.close()


def run(task: Any, payload: dict[str, Any]) -> Any:
    """The leader's body: its own result (or exception) after its batch's members ended and were acked."""
    own = get_settings().types[task.job_type]
    if own.batch_max <= 1 or task.request.called_directly:
        return unwrap(call(task, [payload])[0])
    messages = gather(task, own.batch_max - 1, own.batch_wait_ms / 1000)
    try:
        members = [Member(task.current, payload)] + [m for m in map(lambda msg: join(task, msg), messages) if m]
        lifecycle.stored(task.current, "note its batch", lambda: records.set_batch_size(
            get_redis(), [(m.run.job_id, m.run.attempt or 0) for m in members], len(members)))
        outcomes = call(task, [m.payload for m in members])
        for member, outcome in zip(members[1:], outcomes[1:], strict=True):
            end(task, member, outcome)
    except BaseException:
        # Whatever stopped the batch (the store out past its retries, the soft time limit outside the engine
        # call, a bug): closing the channel hands every member not yet answered back to RabbitMQ, not held here.
        gatherer(task).close()
        raise
    return unwrap(outcomes[0])


def gather(task: Any, most: int, wait_s: float) -> list[Message]:
    try:
        return gatherer(task).gather(most, wait_s)
    except Exception as exc:  # the broker, not the job: this one runs alone, the next batch reconnects
        log.warning("%s: no batch gathered (%s: %s); the job runs alone", task.name, type(exc).__name__, exc)
        gatherer(task).close()
        return []


def join(task: Any, message: Message) -> Member | None:
    """A gathered message as a started member, or None when it does not run here (answered on its channel)."""
    job_id, name = message.headers.get("id"), message.headers.get("task")
    if name != task.name or not job_id:
        log.warning("a %s message (id %s) on the %s queue is not a %s job; requeued", name, job_id, task.queue,
                    task.name)
        message.requeue()
        return None
    try:
        args, kwargs, _embed = message.decode()
    except Exception as exc:  # not a Celery task message: dead-lettered, as Celery would not run it either
        log.error("job %s: its message cannot be read (%s: %s); dead-lettered", job_id, type(exc).__name__, exc)
        message.reject(requeue=False)
        return None
    run_ = JobRun(job_id, task.job_type)
    try:
        lifecycle.start(run_)
    except Ignore:
        message.ack()  # no record, or already ended (cancelled): dropped, as Celery drops its own
        return None
    except Reject as exc:
        message.reject(requeue=bool(exc.requeue))  # parked (dead-lettered), or the store is out (requeued)
        return None
    return Member(run_, args[0] if args else kwargs["payload"], message)


def call(task: Any, payloads: Sequence[dict[str, Any]]) -> list[Any]:
    """One result or exception per payload: one engine call for all, or, if it raises, one call each."""
    try:
        return list(task.run_batch(list(payloads)))
    except SoftTimeLimitExceeded as exc:  # the batch's time is up: none of them runs again here
        return [exc] * len(payloads)
    except Exception as exc:
        if len(payloads) == 1:
            return [exc]
        log.info("%s: a batch of %d raised %s; its jobs run one by one", task.name, len(payloads),
                 type(exc).__name__)
    return [call(task, [payload])[0] for payload in payloads]


def end(task: Any, member: Member, outcome: Any) -> None:
    """Store a member's end, then ack its message (requeue it if the store could not take the end)."""
    assert member.message is not None
    try:
        if isinstance(outcome, BaseException):
            if memory.is_out_of_memory(outcome):
                outcome = memory.OutOfMemory(task.job_type)
            log.info("job %s failed in a batch: %s: %s", member.run.job_id, type(outcome).__name__, outcome)
            lifecycle.fail(member.run, outcome)
        else:
            lifecycle.succeed(member.run, outcome)
    except Reject as exc:
        member.message.reject(requeue=bool(exc.requeue))
        return
    member.message.ack()


def unwrap(outcome: Any) -> Any:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


__all__ = ["Gatherer", "Member", "call", "run"]
