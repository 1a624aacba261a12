"""Publish a job, or a running job's revoke, and wait for the broker's confirm within the request's deadline
(`BROKER_CONFIRM_TIMEOUT_S`).

A broker under a memory or disk alarm takes the message's bytes but stops reading them: it neither routes
nor confirms the message until the alarm clears. So a publish waits for its confirm only until the deadline.
Then its connection is dropped without AMQP's close handshake, which would wait on the blocked broker too
(kombu's own clean-up after a failed publish does, for ever), and the caller answers 503. The broker may
route that message once the alarm clears: the job's record is gone by then (`intake.withdraw`), and a worker
drops a message whose record is missing.

While the broker does not confirm, one publish per process at a time waits for it (`BrokerGate`, shared by
submits and cancels); the others answer 503 at once instead of each holding a thread until the deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from amqp.exceptions import MessageNacked
from celery import Celery
from kombu import Producer
from kombu.exceptions import LimitExceeded, OperationalError

from common.catalog import JobType
from common.errors import Unavailable

log = logging.getLogger(__name__)
Send = Callable[[Producer, float], None]  # publishes on the producer, waiting for the confirm up to the seconds
REVOKE_EXPIRES_S = 1.0  # Celery's own for a control message (`Control.broadcast`'s `timeout`)


class BrokerTimeout(Exception):
    """The broker did not confirm before the deadline."""


class BrokerGate:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._stalled = False
        self._probe = threading.Lock()

    @contextmanager
    def passage(self) -> Iterator[None]:
        """Pass at once while the broker confirms; once it stalled, one at a time (the others: 503)."""
        if not self._stalled:
            yield
            return
        if not self._probe.acquire(blocking=False):
            raise unconfirmed("another job is already waiting for the broker's confirm")
        try:
            yield
        finally:
            self._probe.release()

    def stalled(self, value: bool) -> None:
        self._stalled = value


def unconfirmed(why: str) -> Unavailable:
    return Unavailable(f"The message broker is not confirming jobs ({why}); it may be short of memory or disk. "
                       "The job was not accepted: retry shortly.", code="broker_unavailable")


def publish(celery: Celery, gate: BrokerGate, job_type: JobType, payload: dict[str, Any], job_id: str,
            deadline: float) -> None:
    """Publish the job's message and return once the broker confirmed it; raise `Unavailable` (or the
    broker's `ChannelError`) if it did not, by `deadline` (`time.monotonic()`)."""
    def send(producer: Producer, timeout_s: float) -> None:
        # ignore_result: a job's state and result live in its record (common.records), so Celery's result
        # backend is neither subscribed to here nor written by the worker (one write per transition, not two).
        celery.send_task(job_type.task_name, args=[payload], task_id=job_id, queue=job_type.queue,
                         routing_key=job_type.queue, ignore_result=True, producer=producer, retry=False,
                         timeout=timeout_s, confirm_timeout=timeout_s)

    _confirmed(celery, gate, send, f"job {job_id}", deadline)


def revoke(celery: Celery, gate: BrokerGate, job_id: str, deadline: float) -> None:
    """Broadcast the stop of a running job to every worker (what `celery.control.revoke(job_id, terminate=True,
    signal="SIGTERM")` sends), confirmed by `deadline`; raise `Unavailable` if it was not. Celery's own
    `revoke` waits for the confirm without a limit, so under a broker alarm it never returned."""
    mailbox = celery.control.mailbox
    message = {"method": "revoke", "arguments": {"task_id": job_id, "terminate": True, "signal": "SIGTERM"},
               "destination": None, "pattern": None, "matcher": None}

    def send(producer: Producer, timeout_s: float) -> None:
        # the headers kombu's `Mailbox._publish` sets: a worker drops a control message past its `expires`
        headers = {"clock": mailbox.clock.forward(), "expires": time.time() + REVOKE_EXPIRES_S}
        producer.publish(message, exchange=mailbox.exchange.name, declare=[mailbox.exchange], headers=headers,
                         serializer=mailbox.serializer, retry=False, timeout=timeout_s, confirm_timeout=timeout_s)

    _confirmed(celery, gate, send, f"the revoke of job {job_id}", deadline)


def _confirmed(celery: Celery, gate: BrokerGate, send: Send, what: str, deadline: float) -> None:
    with gate.passage():
        try:
            _publish(celery, send, what, deadline)
        except BrokerTimeout:
            gate.stalled(True)
            raise unconfirmed(f"no confirm within {gate.timeout_s:g} s") from None
        gate.stalled(False)


def _publish(celery: Celery, send: Send, what: str, deadline: float) -> None:
    """One try, and a second on a fresh connection if the first failed at once (a pooled connection the
    broker had closed); never a second after a timeout (the first message may still be routed)."""
    for attempt in (1, 2):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerTimeout()
        try:
            _publish_once(celery, send, remaining)
            return
        except OperationalError as exc:
            if _timed_out(exc):
                raise BrokerTimeout() from exc
            if attempt == 2:
                raise Unavailable("The message broker is unavailable; the job was not accepted. Retry shortly.",
                                  code="broker_unavailable") from None
            log.info("publishing %s failed (%s); trying once more on a new connection", what, exc)
        except MessageNacked:
            raise Unavailable("The message broker refused the job's message (a nack, e.g. a queue at its length "
                              "limit); the job was not accepted. Retry shortly.", code="broker_unavailable") from None


def _publish_once(celery: Celery, send: Send, timeout_s: float) -> None:
    try:
        producer = celery.producer_pool.acquire(block=True, timeout=timeout_s)
    except LimitExceeded:
        raise BrokerTimeout() from None
    sent = False
    try:
        producer.__connection__.ensure_connection(max_retries=0, timeout=timeout_s)
        # as `Celery.send_task` does: a socket error or timeout becomes kombu's `OperationalError`
        with producer.__connection__._reraise_as_library_errors():
            send(producer, timeout_s)
        sent = True
    finally:
        if not sent:  # its state is unknown (a confirm may still come): never reuse it, and close without a word
            producer.__connection__.collect()
        producer.release()


def _timed_out(exc: BaseException) -> bool:
    """A socket timeout anywhere in the exception's chain (py-amqp's confirm wait or write)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError) or "timed out" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


__all__ = ["BrokerGate", "publish", "revoke", "unconfirmed"]
