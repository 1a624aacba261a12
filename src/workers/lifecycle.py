"""One job's way through a worker: start, progress, finish, park. The task's hooks (`workers.base`, in the pool
child) and the request's (`workers.request`, in the worker's main process) both go through here.

A `JobRun` is one attempt at one job. It lives on the Celery request of that job (`JobTask.current`), never on
the task object, which outlives its jobs: nothing of one job's run (its attempt number fences `finish`) can
stand for the next one's.

Store outages (`store.is_outage`): in the pool child each write is retried (`store.retrying`) until
`STORE_RETRY_S` or the job's soft time limit runs out, then `Reject(requeue=True)` makes the worker requeue
the message instead of acking it (Celery lets `Reject` out of `before_start`, `on_success` and `on_failure`
and acks only after they return), so the job runs again later. The main process takes one try (it must not
block: it runs every job of the worker) and its caller requeues on failure. Any other Redis error is a bug,
raised as it is.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded, TimeLimitExceeded

from common import records, store
from common.broker import dead_letter_queue_name
from common.catalog import BY_NAME
from common.errors import InputError, PlatformError
from common.records import JobStatus
from common.settings import get_settings
from common.store import get_redis
from workers.result_size import json_size

log = logging.getLogger(__name__)
T = TypeVar("T")


def this_worker(pid: int | None = None) -> str:
    """The name a worker process writes in records and model statuses: `host:pid`."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


@dataclass
class JobRun:
    job_id: str
    job_type: str
    direct: bool = False  # called directly (no worker): one try at each write, no requeue
    attempt: int | None = None  # what `records.mark_started` returned, once the start is stored
    started: float = 0.0  # monotonic, once the start is stored
    upload: bytes | None = None  # read with the start, handed to the body once
    keeps_upload: bool = False  # kept past a successful end, as long as the record (`records.finish`)
    kept_bytes: int = 0  # stored beside the record for its life (a preview): counted against the job's owner
    batch_size: int = 0  # how many jobs ran together (`workers.batching`); 0: batching off

    def run_s(self) -> float:
        return time.monotonic() - self.started if self.started else 0.0


def start(run: JobRun) -> None:
    """Store the attempt's start (and read the job's upload with it). A job with no record, or already ended,
    is dropped (`Ignore`); one past `MAX_DELIVERIES` is parked."""
    job_type, worker = BY_NAME.get(run.job_type), this_worker()
    if job_type is not None and job_type.upload is not None:
        attempts, run.upload = stored(run, "mark it started",
                                      lambda: records.start_with_upload(get_redis(), run.job_id, worker))
    else:
        attempts = stored(run, "mark it started", lambda: records.mark_started(get_redis(), run.job_id, worker))
    began(run, attempts)


def start_batch(leader: JobRun, runs: list[JobRun]) -> list[Ignore | Reject | None]:
    """Store the starts of a batch's gathered jobs (uploads read with them, the batch's size noted on every
    record, the leader's too) in one round trip; for each, None once started, or what `start` would raise for
    it alone. A store out past its retries raises `Reject` (every message is requeued)."""
    job_type, size = BY_NAME[leader.job_type], len(runs) + 1
    replies = stored(leader, f"mark {len(runs)} jobs started", lambda: records.start_many(
        get_redis(), [run.job_id for run in runs], this_worker(), uploads=job_type.upload is not None,
        batch_size=size, leader=(leader.job_id, leader.attempt or 0)))
    outcomes: list[Ignore | Reject | None] = []
    for run, (attempts, upload) in zip(runs, replies, strict=True):
        run.upload = upload
        try:
            began(run, attempts)
        except (Ignore, Reject) as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


def began(run: JobRun, attempts: int) -> None:
    """After `records.mark_started` answered `attempts`: drop a gone or ended job, park one past
    `MAX_DELIVERIES`."""
    if attempts == records.NOT_FOUND:
        log.warning("job %s has no record (expired or never accepted); dropped", run.job_id)
        raise Ignore()
    if attempts == records.ALREADY_FINAL:
        log.info("job %s already ended (cancelled or done); not run again", run.job_id)
        raise Ignore()
    run.started, run.attempt = time.monotonic(), attempts
    if attempts > get_settings().max_deliveries:
        park(run)


def park(run: JobRun) -> None:
    """A delivery past `MAX_DELIVERIES`: the whole worker died each time, so no main process could decide
    (`park_lost`). Fail the job and dead-letter its message without running it."""
    error = poison_error(run.job_type, run.attempt or 0)
    finish(run, JobStatus.FAILURE, error=error)
    log.error("job %s: %s", run.job_id, error["message"])
    raise Reject(error["message"], requeue=False)


def read_upload(run: JobRun) -> bytes:
    data, run.upload = run.upload, None
    if data is None:
        data = stored(run, "read the upload", lambda: get_redis().get(records.blob_key(run.job_id)))  # type: ignore[assignment]
    if data is None:
        raise InputError("The uploaded file is no longer stored (it expired or the job was cancelled).")
    return data


def progress(run: JobRun, percent: int) -> None:
    """Best effort: during a Redis outage the job goes on without it (its final write, retried, sets
    progress 100), rather than waiting on a figure nobody can read meanwhile."""
    try:
        records.set_progress(get_redis(), run.job_id, percent, run.attempt)
    except redis.RedisError as exc:
        if not store.is_outage(exc):
            raise
        log.warning("job %s: progress %d%% not stored: %s: %s", run.job_id, percent, type(exc).__name__, exc)


def succeed(run: JobRun, result: Any) -> None:
    """Store the result, or fail the job `result_too_large` (also when measuring it ran out of memory)."""
    end(run, result)


def fail(run: JobRun, exc: BaseException) -> None:
    end(run, exc)


def end(run: JobRun, outcome: Any) -> None:
    """Store how the run ended: its body's result, or the exception it raised."""
    ending = ending_of(run, outcome)
    if ending is not None:
        finish(run, ending.status, ending.budget_s, **ending.fields)


def end_batch(leader: JobRun, ends: list[tuple[JobRun, Any]]) -> list[Reject | None]:
    """Store the ends of a batch's gathered jobs (each its result or exception) in one round trip; for each,
    None once stored (or refused by the record: ended or started again meanwhile), or the `Reject` its message
    gets. A store out past its retries rejects every one (requeued)."""
    outcomes: list[Reject | None] = []
    writes: list[tuple[JobRun, Ending]] = []
    for run, outcome in ends:
        try:
            ending = ending_of(run, outcome)
        except Reject as exc:
            outcomes.append(exc)
            continue
        outcomes.append(None)
        if ending is not None:
            writes.append((run, ending))
    if writes:
        budgets = [e.budget_s for _, e in writes if e.budget_s is not None]
        try:
            stored(leader, f"store the ends of {len(writes)} jobs", lambda: records.finish_many(
                get_redis(), [ending_record(run, e.status, **e.fields) for run, e in writes]),
                min(budgets, default=None))
        except Reject as exc:
            return [exc] * len(ends)
    return outcomes


@dataclass
class Ending:
    status: JobStatus
    fields: dict[str, Any]  # `result=` or `error=`
    budget_s: float | None = None  # how long to retry storing it; None: `STORE_RETRY_S`


def ending_of(run: JobRun, outcome: Any) -> Ending | None:
    """How a run ends, from its body's result or exception; None when this process does not store it (the hard
    limit). A store outage that failed the body raises `Reject`: the store failed, not the job."""
    if not isinstance(outcome, BaseException):
        limit = get_settings().result_max_bytes
        try:
            too_large = oversized_result(outcome, limit)
        except MemoryError:
            too_large = unmeasured_result(limit)
        if too_large is not None:
            log.error("job %s: %s", run.job_id, too_large["message"])
            return Ending(JobStatus.FAILURE, {"error": too_large})
        return Ending(JobStatus.SUCCESS, {"result": outcome})
    if isinstance(outcome, TimeLimitExceeded):
        # The hard limit, seen in the worker's main process after `end_past_hard_limit` stored it for the
        # attempt its child ran (or the message was requeued): this process knows no attempt.
        return None
    if store.is_outage(outcome) and not run.direct:
        # The store failed, not the job (an upload read past its retries): run it again later.
        raise Reject(f"Redis unavailable ({type(outcome).__name__}: {outcome}); the message is requeued, not "
                     f"acked", requeue=True) from None
    # Past the soft time limit the hard one kills the child 15 s later: retry for less than that.
    budget_s = 10.0 if isinstance(outcome, SoftTimeLimitExceeded) else None
    return Ending(JobStatus.FAILURE, {"error": classify(outcome)}, budget_s)


def ending_record(run: JobRun, status: JobStatus, **outcome: Any) -> records.Ending:
    """The record's end of this attempt (`records.finish`): fenced by the attempt, counted in the stats."""
    return records.Ending(run.job_id, status, attempt=run.attempt, stats_of=(run.job_type, run.run_s()),
                          keep_upload=run.keeps_upload and status is JobStatus.SUCCESS, kept_bytes=run.kept_bytes,
                          batch_size=run.batch_size, **outcome)


def finish(run: JobRun, status: JobStatus, budget_s: float | None = None, **outcome: Any) -> None:
    """Store this attempt's end (unless the job already ended or a later attempt started) and count it."""
    stored_end = ending_record(run, status, **outcome)
    if not stored(run, f"store its {status.value}", lambda: bool(stored_end.queue(get_redis())), budget_s):
        log.info("job %s: attempt %s ended %s, not stored: the job had already ended or a later attempt "
                 "started", run.job_id, run.attempt, status.value)


def stored(run: JobRun, what: str, write: Callable[[], T], budget_s: float | None = None) -> T:
    """A write of the job's that outlasts a Redis outage, or requeues the job (see the module's doc)."""
    if run.direct:
        return write()
    try:
        return store.retrying(write, what, budget_s)
    except (redis.RedisError, SoftTimeLimitExceeded) as exc:
        if isinstance(exc, redis.RedisError) and not store.is_outage(exc):
            raise
        reason = f"could not {what} ({type(exc).__name__}: {exc}); the message is requeued, not acked"
        log.warning("%s", reason)
        raise Reject(reason, requeue=True) from None  # the reason says it all; Celery logs no chain


# --- in the worker's main process, for a child that did not report back (one try; RedisError is raised) ---
def park_lost(job_id: str, job_type: str, last: str, run_s: float) -> bool:
    """After a child died mid-job: fail the job `poison_job` once its record counts `MAX_DELIVERIES` attempts,
    and say so (the caller then dead-letters its message). A gone or ended job is left as it is."""
    r = get_redis()
    record = records.load(r, job_id)
    if record is None or JobStatus(record["status"]).is_final:
        return False  # gone, cancelled or done: the next delivery is dropped by `start`
    attempts = int(record["attempts"])
    if attempts < get_settings().max_deliveries:
        return False
    error = poison_error(job_type, attempts, last)
    records.finish(r, job_id, JobStatus.FAILURE, error=error, attempt=attempts, stats_of=(job_type, run_s))
    log.error("job %s: %s", job_id, error["message"])
    return True


def end_past_hard_limit(job_id: str, job_type: str, worker: str, limit_s: float | None, run_s: float) -> None:
    """End the attempt `worker` (the killed child) ran FAILURE `time_limit_exceeded`; if another worker has
    started the job since, nothing is written."""
    end_attempt_of(worker, job_id, job_type, hard_limit_error(limit_s), run_s)


def end_attempt_of(worker: str, job_id: str, job_type: str, error: dict[str, str], run_s: float,
                   unstarted: bool = False) -> None:
    """End the attempt `worker` (a child) ran FAILURE with `error`; if another worker has started the job since,
    nothing is written. With `unstarted`, a job no worker has started yet is ended too (its message, the only
    one in flight, is being acknowledged: nothing else would end it)."""
    r = get_redis()
    record = records.load(r, job_id)
    if record is not None and record.get("worker") == worker:
        records.finish(r, job_id, JobStatus.FAILURE, error=error, attempt=record["attempts"],
                       stats_of=(job_type, run_s))
    elif record is not None and unstarted and not record.get("worker"):
        records.finish(r, job_id, JobStatus.FAILURE, error=error, stats_of=(job_type, run_s))


# --- the reasons a job ends FAILURE ---
def poison_error(job_type: str, attempts: int, last: str | None = None) -> dict[str, str]:
    queue = dead_letter_queue_name(BY_NAME[job_type].queue)
    how = f"ended its worker process {attempts} times (last: {last})" if last else \
        f"was delivered {attempts} times and its worker process ended each time before it finished"
    return {"code": "poison_job",
            "message": f"The job {how}; it was not run again and is parked in the dead-letter queue {queue}."}


def hard_limit_error(limit_s: float | None) -> dict[str, str]:
    limit = f" ({limit_s:g} s)" if limit_s else ""
    return {"code": "time_limit_exceeded",
            "message": f"The job ran past its hard time limit{limit} and its worker process was stopped."}


def oversized_result(result: Any, limit: int) -> dict[str, str] | None:
    """The error of a result whose JSON is larger than `limit` bytes (`RESULT_MAX_BYTES`), else None. The
    JSON is measured, not built (`json_size`): a huge result is refused at the cost of about `limit`."""
    size = json_size(result, limit)
    if size <= limit:
        return None
    return {"code": "result_too_large",
            "message": f"The job's result is more than {limit} bytes of JSON, the most a result may take "
                       f"(RESULT_MAX_BYTES); it was not stored."}


def unmeasured_result(limit: int) -> dict[str, str]:
    return {"code": "result_too_large",
            "message": f"The job's result could not be measured within the memory its worker process may use: it "
                       f"is far more than the {limit} bytes of JSON a result may take (RESULT_MAX_BYTES); it was "
                       f"not stored."}


def classify(exc: BaseException) -> dict[str, str]:
    """One readable reason per failure: the user's input, a time limit, or our own fault."""
    if isinstance(exc, PlatformError):
        return exc.to_dict()
    if isinstance(exc, SoftTimeLimitExceeded):
        return {"code": "time_limit_exceeded", "message": "The job ran past its time limit and was stopped."}
    return {"code": "internal_error", "message": f"The worker failed: {type(exc).__name__}: {exc}"}


__all__ = ["Ending", "JobRun", "began", "classify", "end", "end_attempt_of", "end_batch", "end_past_hard_limit",
           "ending_of", "ending_record", "fail", "finish", "hard_limit_error", "oversized_result", "park", "park_lost",
           "poison_error", "progress", "read_upload", "start", "start_batch", "stored", "succeed", "this_worker",
           "unmeasured_result"]
