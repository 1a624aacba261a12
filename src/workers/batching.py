"""Dynamic batching across jobs, each job still acknowledged on its own (`<TYPE>_BATCH_MAX`, docs/batching.md).

Celery delivers one job (the leader) to a pool child as always. When its type batches and `<TYPE>_BATCH_MAX`
is above 1, the leader's body (`run`) takes up to `BATCH_MAX - 1` more messages of the same queue on the
child's own channel (`Gatherer`: prefetch `BATCH_MAX - 1`, no auto-ack, consuming only while it gathers),
those that arrive within `<TYPE>_BATCH_WAIT_MS`. Each gathered job goes through the same lifecycle as the
leader (`lifecycle.start_batch`, every start in one round trip: attempt counted, a cancelled or ended job
dropped, one past `MAX_DELIVERIES` parked and dead-lettered); the type's engine runs once on all their inputs
(the task's `run_batch(payloads, runs)`, each job's `JobRun` beside its payload, the leader's first); the
members' ends are stored (`lifecycle.end_batch`, one round trip), and only then is each message acked on the
child's channel. The leader's end and ack stay Celery's (`JobTask` hooks, late ack).

A batch call that raises runs its members again one by one, so a failing member fails alone. A child killed
mid-batch drops its connection: RabbitMQ redelivers every unacked member, Celery the leader, and each
attempt was counted in its own record. The leader's time limits cover the whole batch.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import signals
from celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded
from kombu import Connection
from kombu.message import Message

from common.catalog import BY_NAME
from common.settings import get_settings
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
        deadline = time.monotonic() + wait_s
        if self.connection is None:
            self.connection = self.app.connection_for_read(heartbeat=0)  # idle between batches: no heartbeats
            self.channel = self.connection.default_channel
            self.channel.basic_qos(0, most, False)  # once: the channel's consumers, one batch at a time
        got: list[Message] = []
        # py-amqp's own consume, without waiting for consume-ok (a refusal closes the channel, raised by the
        # drain); kombu's `Consumer` waits for it, a round trip more per batch.
        tag = self.channel.basic_consume(
            self.app.amqp.queues[self.queue].name, consumer_tag=f"batch-{os.getpid()}", no_ack=False, nowait=True,
            callback=lambda raw: got.append(self.channel.message_to_python(raw)))
        try:
            # In whole milliseconds, rounded down: the socket's wait rounds a timeout up to the next one, and the
            # gathering must not keep a job in hand longer than `wait_s`.
            while len(got) < most and (left_ms := int((deadline - time.monotonic()) * 1000)) > 0:
                try:
                    self.connection.drain_events(timeout=left_ms / 1000)
                except TimeoutError:
                    break
        finally:
            self.channel.basic_cancel(tag)  # waits for cancel-ok: a delivery on its way meanwhile lands in `got`
        return got

    @staticmethod
    def settle(messages: list[Message], requeue: list[bool | None], every: bool = False) -> None:
        """Answer gathered messages: None acks one (its end is stored, or it was dropped), True or False rejects
        it (requeued, or dead-lettered). With `every` (these are all the channel's unanswered messages), the
        rejections go first, then one ack (`multiple`, up to the last of them) covers the rest."""
        acked = [m for m, again in zip(messages, requeue, strict=True) if again is None]
        for message, again in zip(messages, requeue, strict=True):
            if again is not None:
                message.reject(requeue=again)
            elif not every:
                message.ack()
        if every and acked:
            max(acked, key=lambda m: m.delivery_tag).ack(multiple=True)

    def close(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception as exc:  # already broken: the broker has closed it, or will on its own
                log.debug("batch channel closed with %s: %s", type(exc).__name__, exc)


_gatherers: dict[str, Gatherer] = {}


def gatherer(task: Any) -> Gatherer:
    queue = BY_NAME[task.job_type].queue
    found = _gatherers.get(queue)
    if found is None:
        found = _gatherers[queue] = Gatherer(task.app, queue)
    return found


@signals.worker_process_shutdown.connect
def _close_gatherers(**_: Any) -> None:
    for each in _gatherers.values():
        each.close()


def run(task: Any, payload: dict[str, Any]) -> Any:
    """The leader's body: its own result (or exception) after its batch's members ended and were acked."""
    own, leader = get_settings().types[task.job_type], task.current
    if own.batch_max <= 1 or task.request.called_directly or (leader.attempt or 0) > 1:
        # A job delivered again (its worker process died, maybe in a batch it killed) runs alone: a job that
        # kills its process must not take its siblings to MAX_DELIVERIES with it.
        return unwrap(call(task, [payload], [leader])[0])
    messages = gather(task, own.batch_max - 1, own.batch_wait_ms / 1000)
    try:
        members = [Member(leader, payload), *join(task, messages, budget(task) - task.batch_weight(payload))]
        for member in members:
            member.run.batch_size = len(members)  # stored with each job's end
        outcomes = call(task, [m.payload for m in members], [m.run for m in members])
        end(task, members[1:], outcomes[1:])
    except BaseException:
        # Whatever stopped the batch (the store out past its retries, the soft time limit outside the engine
        # call, a bug): closing the channel hands every member not yet answered back to RabbitMQ, not held here.
        gatherer(task).close()
        raise
    return unwrap(outcomes[0])


class ByTexts:
    """For a type whose jobs carry `text` or `texts`: a job weighs its characters, and a batch holds at most as
    many as one job may (`<TYPE>_MAX_TEXTS` × `<TYPE>_MAX_CHARS`): no more work than the largest job."""

    job_type: str

    def batch_weight(self, payload: dict[str, Any]) -> int:
        texts = payload.get("texts") if "texts" in payload else [payload.get("text")]
        return sum(len(text) for text in texts if isinstance(text, str)) if isinstance(texts, list) else 1

    def batch_budget(self) -> int:
        own = get_settings().types[self.job_type]
        return int(own.max_texts) * int(own.max_chars)


# Seconds per unit of weight of this process's engine calls, per job type (a moving average of the batch calls
# that succeeded): a batch is cut so that its engine call is expected to take at most PACE_SHARE of the time
# limit, so jobs that each fit their limit alone fit it together.
_pace: dict[str, float] = {}
PACE_SHARE = 0.5


def budget(task: Any) -> int:
    """The most weight this process's next batch may hold, its leader's included."""
    most = task.batch_budget()
    pace = _pace.get(task.job_type)
    if pace:
        limit_s = BY_NAME[task.job_type].soft_time_limit_s(get_settings())
        most = min(most, int(PACE_SHARE * limit_s / pace))
    return most


def paced(task: Any, payloads: Sequence[dict[str, Any]], seconds: float) -> None:
    weight = sum(task.batch_weight(payload) for payload in payloads)
    if weight > 0:
        pace, last = _pace.get(task.job_type), seconds / weight
        _pace[task.job_type] = last if pace is None else 0.7 * pace + 0.3 * last


def gather(task: Any, most: int, wait_s: float) -> list[Message]:
    try:
        return gatherer(task).gather(most, wait_s)
    except Exception as exc:  # the broker, not the job: this one runs alone, the next batch reconnects
        log.warning("%s: no batch gathered (%s: %s); the job runs alone", task.name, type(exc).__name__, exc)
        gatherer(task).close()
        return []


def join(task: Any, messages: list[Message], room: int) -> list[Member]:
    """The gathered messages as started members, their starts stored in one round trip; a message that does
    not run here is answered on its channel. Members join while their weight (`task.batch_weight`) fits in
    `room` (what `budget` leaves beside the leader); the others go back to the queue unstarted, as do messages
    delivered again (each runs alone, as a leader)."""
    readable = []
    for message in messages:
        member = readable_member(task, message)
        if member is None:
            continue
        weight = task.batch_weight(member.payload)
        if weight <= room and not message.delivery_info.get("redelivered"):
            readable.append(member)
            room -= weight
        else:
            message.requeue()
    if not readable:
        return []
    try:
        starts = lifecycle.start_batch(task.current, [m.run for m in readable])
    except Reject as exc:  # the store is out: every gathered message goes back to the queue
        settle(readable, [exc] * len(readable))
        return []
    settle([m for m, refused in zip(readable, starts, strict=True) if refused is not None],
           [refused for refused in starts if refused is not None])
    return [m for m, refused in zip(readable, starts, strict=True) if refused is None]


def readable_member(task: Any, message: Message) -> Member | None:
    """A gathered message as a member not yet started, or None when it is not a job of this task."""
    job_id, name = message.headers.get("id"), message.headers.get("task")
    if name != task.name or not job_id:
        log.warning("a %s message (id %s) on the %s queue is not a %s job; requeued", name, job_id,
                    BY_NAME[task.job_type].queue, task.name)
        message.requeue()
        return None
    try:
        args, kwargs, _embed = message.decode()
        payload = args[0] if args else kwargs["payload"]
        if not isinstance(payload, dict):
            raise TypeError(f"its payload is a {type(payload).__name__}, not an object")
    except Exception as exc:  # not a task message Celery could run: dead-lettered, alone
        log.error("job %s: its message cannot be read (%s: %s); dead-lettered", job_id, type(exc).__name__, exc)
        message.reject(requeue=False)
        return None
    return Member(JobRun(job_id, task.job_type), payload, message)


def settle(members: list[Member], refused: Sequence[Ignore | Reject | None], every: bool = False) -> None:
    """Answer the members' messages: ack one whose end is stored, or that was dropped (`Ignore`); reject one
    refused with `Reject` (requeued, or dead-lettered when parked). `every`: see `Gatherer.settle`."""
    Gatherer.settle([m.message for m in members if m.message is not None],
                    [bool(r.requeue) if isinstance(r, Reject) else None for r in refused], every)


def call(task: Any, payloads: Sequence[dict[str, Any]], runs: Sequence[JobRun]) -> list[Any]:
    """One result or exception per payload (`runs`: each one's job, the leader's first): one engine call for all,
    or, if it raises, one call each."""
    try:
        started = time.monotonic()
        results = list(task.run_batch(list(payloads), list(runs)))
        paced(task, payloads, time.monotonic() - started)
        return results
    except SoftTimeLimitExceeded as exc:  # the batch's time is up: none of them runs again here
        return [exc] * len(payloads)
    except Exception as exc:
        if len(payloads) == 1:
            return [exc]
        log.info("%s: a batch of %d raised %s; its jobs run one by one", task.name, len(payloads),
                 type(exc).__name__)
    outcomes: list[Any] = []
    for payload, run in zip(payloads, runs, strict=True):
        outcome = call(task, [payload], [run])[0]
        if isinstance(outcome, SoftTimeLimitExceeded):  # the batch's time is up: the rest do not run either
            return outcomes + [outcome] * (len(payloads) - len(outcomes))
        outcomes.append(outcome)
    return outcomes


def end(task: Any, members: list[Member], outcomes: list[Any]) -> None:
    """Store the members' ends in one round trip, then ack their messages (requeue those whose end the store
    could not take)."""
    ends = []
    for member, outcome in zip(members, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if memory.is_out_of_memory(outcome):
                outcome = memory.OutOfMemory(task.job_type)
            log.info("job %s failed in a batch: %s: %s", member.run.job_id, type(outcome).__name__, outcome)
        ends.append((member.run, outcome))
    settle(members, lifecycle.end_batch(task.current, ends), every=True)  # the batch's last unanswered messages


def unwrap(outcome: Any) -> Any:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


__all__ = ["Gatherer", "Member", "call", "join", "run"]
