"""Accept a job: admit it (`api.admission`, uploads in flight and kept), record it (`api.intake`), publish it with the
broker's confirm (`api.publish`). A 202 means the job is in Redis and on disk in RabbitMQ; a failed publish
leaves nothing behind."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from amqp.exceptions import ChannelError
from celery import Celery

from api import intake
from api.admission import StoreGauge
from api.inputs import JobInput
from api.publish import BrokerGate, publish
from common import kept, model_status, records
from common.catalog import JobType
from common.errors import Conflict, InputError, Unavailable
from common.settings import Settings
from common.store import get_redis

log = logging.getLogger(__name__)
MAX_IDEMPOTENCY_KEY = 255


class ModelGate:
    """Refuses a type's jobs while every live worker of it reports its model unavailable. Workers report every
    `model_status.REPORT_EVERY_S` (10 s), so this process reads the statuses at most once a second per type,
    not once per submit."""

    READ_EVERY_S = 1.0

    def __init__(self) -> None:
        self._read: dict[str, tuple[float, str | None]] = {}  # type → (when read, reason or None)

    def refuse_without_model(self, r: redis.Redis, job_type: JobType) -> None:
        if job_type.model is None:
            return
        read_at, reason = self._read.get(job_type.name, (float("-inf"), None))
        if time.monotonic() - read_at >= self.READ_EVERY_S:
            reason = model_status.unavailable_everywhere(r, job_type.name)
            self._read[job_type.name] = (time.monotonic(), reason)
        if reason is not None:
            raise Unavailable(reason, code="model_unavailable")


@dataclass
class Submitter:
    """One per API process: its broker gate and store gauge are shared by its threads."""

    celery: Celery
    settings: Settings
    gate: BrokerGate = field(init=False)
    gauge: StoreGauge = field(init=False)
    models: ModelGate = field(default_factory=ModelGate)

    def __post_init__(self) -> None:
        self.gate = BrokerGate(self.settings.broker_confirm_timeout_s)
        self.gauge = StoreGauge(self.settings)

    def submit(self, job_type: JobType, job: JobInput, owner: str = "", uploader: str = "",
               idempotency_key: str | None = None) -> tuple[dict[str, Any], bool]:
        """The job's record and whether this call created it (False: an earlier job with the same key).
        `uploader` is who the upload counts against in flight (the owner, or the client's address)."""
        r = get_redis()
        deadline = time.monotonic() + self.settings.broker_confirm_timeout_s
        idem = records.idempotency_key(job_type.name, owner, checked(idempotency_key)) if idempotency_key else None
        earlier = self._holder(r, idem)
        if earlier is None:
            self.models.refuse_without_model(r, job_type)
            self._admit(r, job_type, job, uploader)
            job_id, token, record = str(uuid.uuid4()), secrets.token_hex(8), records.new_record(job_type.name, owner)
            if job.webhook is not None:
                record.update(webhook_url=job.webhook, webhook_state="pending", webhook_attempts=0)
            if job.blob is not None:
                intake.stage_upload(r, job_id, job.blob)
            earlier = intake.create(r, job_id, record, token=token, idem=idem, uploader=uploader,
                                    upload_bytes=len(job.blob or b""), settings=self.settings,
                                    keeps=job_type.keeps_upload)
            if earlier is None:
                self._publish_or_withdraw(r, job_type, job.payload, job_id, token, idem, deadline)
                return {**record, "job_id": job_id}, True
            if job.blob is not None:
                r.delete(records.blob_key(job_id))  # staged for nothing: the key was taken meanwhile
        return self._earlier_job(r, job_type, job, earlier, idem, deadline), False

    def _holder(self, r: redis.Redis, idem: str | None) -> str | None:
        """The job that holds the Idempotency-Key; a key whose job's record is gone is released."""
        raw: bytes | None = r.get(idem) if idem else None  # type: ignore[assignment]
        if idem is None or raw is None:
            return None
        if r.exists(records.job_key(raw.decode())):
            return raw.decode()
        intake.release_key(r, idem, raw.decode())
        return None

    def _admit(self, r: redis.Redis, job_type: JobType, job: JobInput, uploader: str) -> None:
        """Refuse before the upload is staged: the store is full, or the uploader's uploads in flight (or kept,
        for a type that keeps them) would pass their cap. `intake.create` checks the caps again, atomically."""
        size = len(job.blob or b"")
        self.gauge.admit(r, size)
        cap = self.settings.upload_bytes_in_flight
        if size and cap:
            held = intake.uploads_in_flight(r, uploader, self.settings)
            if held + size > cap:
                raise intake.uploads_over_cap(held, size, self.settings)
        if size and job_type.keeps_upload and self.settings.upload_bytes_kept:
            held, wait_s = kept.room(r, uploader, size, self.settings)
            if wait_s >= 0:
                raise intake.uploads_kept_over_cap(held, size, wait_s, self.settings)

    def _earlier_job(self, r: redis.Redis, job_type: JobType, job: JobInput, job_id: str, idem: str | None,
                     deadline: float) -> dict[str, Any]:
        """The earlier job with this key. If its API process died before the broker confirmed it, this retry
        publishes it (with this request's input: the same, as the key promises)."""
        token = secrets.token_hex(8)
        state = intake.claim(r, job_id, token, self.settings)
        if state == "claimed":
            log.warning("job %s was recorded but its publish never confirmed (its API process stopped?): "
                        "publishing it again for a retry with its Idempotency-Key", job_id)
            self._publish_or_withdraw(r, job_type, job.payload, job_id, token, idem, deadline)
        record = records.load(r, job_id) if state != "busy" else None
        if record is None:
            raise Conflict("A job with this Idempotency-Key is being accepted; retry in a moment.",
                           code="idempotency_in_progress", retry_after_s=1)
        return record

    def _publish_or_withdraw(self, r: redis.Redis, job_type: JobType, payload: dict[str, Any], job_id: str,
                             token: str, idem: str | None, deadline: float) -> None:
        try:
            publish(self.celery, self.gate, job_type, payload, job_id, deadline)
        except (Unavailable, ChannelError) as exc:
            if self._withdraw(r, job_id, token, idem) == intake.STARTED_MEANWHILE:
                return  # a worker took the message after all
            if isinstance(exc, ChannelError):  # e.g. the queue exists with other arguments (PRECONDITION_FAILED)
                raise broker_refused(exc) from None
            raise
        try:
            intake.mark_published(r, job_id)
        except redis.RedisError as exc:  # the job is on its way; a retry with its key may publish it twice
            log.warning("job %s published, but not marked so: %s", job_id, exc)

    def _withdraw(self, r: redis.Redis, job_id: str, token: str, idem: str | None) -> int:
        try:
            return intake.withdraw(r, job_id, token, idem)
        except redis.RedisError as exc:
            log.error("job %s was not published and its record could not be deleted: %s", job_id, exc)
            return intake.KEPT


def checked(idempotency_key: str) -> str:
    if len(idempotency_key) > MAX_IDEMPOTENCY_KEY or not idempotency_key.isprintable():
        raise InputError(f"An Idempotency-Key is at most {MAX_IDEMPOTENCY_KEY} printable characters.",
                         code="invalid_idempotency_key")
    return idempotency_key


def broker_refused(exc: ChannelError) -> Unavailable:
    """The broker is up but refuses the platform's queues: an operator must act (docs/operations.md)."""
    log.error("the broker refused a job queue: %s", exc)
    return Unavailable(f"The message broker refused the job queue ({exc.reply_text or exc}); the job was not "
                       "accepted. The broker's queues need an operator: see 'Migrating a broker whose queues "
                       "already exist' in docs/operations.md.", code="broker_refused")


__all__ = ["ModelGate", "Submitter", "broker_refused"]
