"""Accept a job: record it, keep its upload, publish it with a broker confirm."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from amqp.exceptions import ChannelError
from celery import Celery
from kombu.exceptions import OperationalError

from api.inputs import JobInput
from common import records
from common.catalog import JobType
from common.errors import Conflict, Unavailable
from common.settings import get_settings
from common.store import get_redis

log = logging.getLogger(__name__)


def submit(celery: Celery, job_type: JobType, job: JobInput, owner: str = "",
           idempotency_key: str | None = None) -> tuple[dict[str, Any], bool]:
    """Return the job's record and whether this call created it (False: an earlier job with the same key)."""
    r = get_redis()
    settings = get_settings()
    job_id = str(uuid.uuid4())
    idem = records.idempotency_key(job_type.name, owner, idempotency_key) if idempotency_key else None
    if idem and not r.set(idem, job_id, nx=True, ex=settings.result_ttl_s):
        return _earlier_job(r, idem), False
    record = records.create(r, job_id, job_type.name, owner, blob=job.blob)
    try:
        # ignore_result: a job's state and result live in its record (common.records), so Celery's result
        # backend is neither subscribed to here nor written by the worker (one write per transition, not two).
        celery.send_task(job_type.task_name, args=[job.payload], task_id=job_id,
                         queue=job_type.queue, routing_key=job_type.queue, ignore_result=True)
    except (OperationalError, ChannelError) as exc:
        records.delete(r, job_id)
        if idem:
            r.delete(idem)
        if isinstance(exc, ChannelError):  # e.g. the queue exists with other arguments (PRECONDITION_FAILED)
            raise broker_refused(exc) from None
        raise Unavailable("The message broker is unavailable; the job was not accepted. Retry shortly.",
                          code="broker_unavailable") from None
    record["job_id"] = job_id
    return record, True


def broker_refused(exc: ChannelError) -> Unavailable:
    """The broker is up but refuses the platform's queues: an operator must act (docs/operations.md)."""
    log.error("the broker refused a job queue: %s", exc)
    return Unavailable(f"The message broker refused the job queue ({exc.reply_text or exc}); the job was not "
                       "accepted. The broker's queues need an operator: see 'Migrating a broker whose queues "
                       "already exist' in docs/operations.md.", code="broker_refused")


def _earlier_job(r: Any, idem: str) -> dict[str, Any]:
    earlier_id = r.get(idem)
    record = records.load(r, earlier_id.decode()) if earlier_id else None
    if record is None:
        raise Conflict("A job with this Idempotency-Key is being created; retry in a moment.",
                       code="idempotency_in_progress")
    return record
