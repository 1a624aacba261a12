"""What the worker's main process decides about a job whose child process did not report back.

Celery runs `JobRequest` (`JobTask.Request`) in the main process for every job. Two cases end there, each
decided by the job's lifecycle (`workers.lifecycle`); this module is the Celery side:

- The child died mid-job (`WorkerLostError`: a segfault, the OOM killer, `kill -9`). With late acks
  Celery requeues the message, so a job that kills its worker every time would loop forever. Once the
  job's record counts `MAX_DELIVERIES` attempts, the job ends FAILURE (`lifecycle.park_lost`) and its message is
  rejected without requeue: RabbitMQ dead-letters it to `<type>.dead` (`common.broker`).
- The child ran past the hard time limit and was killed: the record ends FAILURE `time_limit_exceeded`.
- The child ran out of memory where the job's hooks (`workers.base`) could not catch it, in Celery's own
  handling of the job: the record ends FAILURE `out_of_memory` (Celery would stop the whole worker).

Either decision takes one try at Redis (the main process must not block: it runs every job of the worker).
If Redis cannot take it (`store.is_outage`), the message is requeued, never acknowledged, and the next
delivery's `before_start` writes again.

When the whole worker dies, no main process decides: `JobTask.before_start` then refuses a delivery
past `MAX_DELIVERIES` the same way (`lifecycle.park`), without running it.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import redis
from billiard.einfo import ExceptionInfo, ExceptionWithTraceback
from celery import bootsteps
from celery.exceptions import TimeLimitExceeded, WorkerLostError
from celery.worker import state
from celery.worker.request import Request
from kombu import Connection

from common.broker import dead_letter_queues
from common.settings import get_settings
from common.store import is_outage
from workers import lifecycle, memory

log = logging.getLogger(__name__)


def _exit_status(exc: BaseException) -> str:
    """'signal 9 (SIGKILL)' or 'exitcode 1', from billiard's 'Worker exited prematurely: ... Job: N.'"""
    match = re.search(r"prematurely: (.+?)(?: Job: \d+)?\.?$", str(exc))
    return match.group(1) if match else type(exc).__name__


class JobRequest(Request):  # type: ignore[misc]
    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> Any:
        exc = exc_info.exception
        exc = exc.exc if isinstance(exc, ExceptionWithTraceback) else exc
        lost = isinstance(exc, WorkerLostError) or (  # billiard >= 4.3 may report the child's exit this way
            isinstance(exc, SystemExit | KeyboardInterrupt) and not (self._already_cancelled or self._already_revoked))
        if lost and self.task.acks_late and not state.should_terminate:
            self._park_if_spent(exc)
        if isinstance(exc, MemoryError) and not state.should_terminate:
            exc_info = self._end_out_of_memory()  # Celery's own would stop the worker: "Process got: ..."
        # billiard reports a hard time limit here first (Celery acknowledges it below), then calls `on_timeout`.
        if isinstance(exc, TimeLimitExceeded) and not state.should_terminate:
            self._store_hard_limit(exc.args[0] if exc.args else None)
        # After a park or a requeue the message is already rejected: Celery's own acknowledgement or requeue
        # below is then a no-op (`reject` and `acknowledge` act once); its bookkeeping (task_ready, logs) runs.
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _park_if_spent(self, exc: BaseException) -> None:
        """Fail the job and dead-letter its message once its record counts `MAX_DELIVERIES` attempts."""
        try:
            parked = lifecycle.park_lost(self.id, self.task.job_type, _exit_status(exc), self._run_s())
        except redis.RedisError as exc_redis:  # requeue as usual: the next delivery's start decides
            log.warning("job %s: worker lost, its record not read or written (%s: %s); requeued",
                        self.id, type(exc_redis).__name__, exc_redis)
            return
        if parked:
            self.reject(requeue=False)

    def _store_hard_limit(self, timeout: float | None) -> None:
        """End the attempt this child ran FAILURE `time_limit_exceeded`. If Redis is unavailable, requeue the
        message: acknowledging it would leave the job STARTED, with no run to come, until its record expires."""
        try:
            lifecycle.end_past_hard_limit(self.id, self.task.job_type, lifecycle.this_worker(self.worker_pid),
                                          timeout, self._run_s())
        except redis.RedisError as exc:
            if not is_outage(exc):
                log.exception("job %s: hard time limit, record not written", self.id)
                return
            log.warning("job %s: hard time limit, record not written (%s: %s); the message is requeued, not acked",
                        self.id, type(exc).__name__, exc)
            self.reject(requeue=True)

    def _end_out_of_memory(self) -> ExceptionInfo:
        """The child ran out of memory where no hook of the job's could catch it (in Celery's own handling of the
        job, e.g. formatting a huge error). End the attempt FAILURE `out_of_memory` and hand Celery an ordinary
        failure, which it acknowledges, instead of the `MemoryError` on which it would stop the whole worker.
        If Redis cannot take it, the message is requeued."""
        job_type = self.task.job_type
        failure = memory.OutOfMemory(job_type, cap=get_settings().types[job_type].max_memory_mb)
        log.error("job %s: its worker process ran out of memory outside the job's hooks", self.id)
        try:
            lifecycle.end_attempt_of(lifecycle.this_worker(self.worker_pid), self.id, job_type, failure.to_dict(),
                                     self._run_s(), unstarted=True)
        except redis.RedisError as exc:
            log.warning("job %s: out of memory, record not written (%s: %s); the message is requeued, not acked",
                        self.id, type(exc).__name__, exc)
            self.reject(requeue=True)
        try:
            raise failure
        except memory.OutOfMemory:
            return ExceptionInfo()

    def _run_s(self) -> float:
        started = getattr(self, "time_start", None)
        return max(0.0, time.time() - started) if started else 0.0


class DeclareDeadLetterQueues(bootsteps.StartStopStep):  # type: ignore[misc]
    """Declare the dead-letter queues of the queues this worker consumes, each time it connects, before
    it consumes: a message dead-lettered to a queue that does not exist is dropped by RabbitMQ."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, c: Any) -> None:
        consumed = set(c.app.amqp.queues.consume_from or {})
        connection: Connection = c.connection
        channel = connection.channel()
        try:
            for queue in dead_letter_queues():
                if queue.routing_key in consumed:
                    queue(channel).declare()
        finally:
            channel.close()
