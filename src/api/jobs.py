"""`/v1/jobs`: submit a job of each catalog type, read it (with long-poll), cancel it."""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

from amqp.exceptions import ChannelError
from flask import Response, current_app, jsonify, make_response, request
from flask_openapi3 import APIBlueprint, Tag
from kombu.exceptions import OperationalError
from pydantic import BaseModel, Field

from api import openapi_docs
from api.access import owner
from api.inputs import read_input
from common import drawing, records
from common.catalog import CATALOG, JobType
from common.errors import Conflict, NotFound, Unavailable
from common.records import JobStatus
from common.schemas import ErrorBody, JobAccepted, JobView
from common.settings import Settings, get_settings
from common.store import get_redis
from common.waiting import wait_final

log = logging.getLogger(__name__)
api = APIBlueprint("jobs", __name__, url_prefix="/v1/jobs", abp_tags=[Tag(name="jobs")])

PUBLIC_FIELDS = tuple(JobView.model_fields)
ERRORS: dict[str | int, type[BaseModel]] = {code: ErrorBody for code in (400, 404, 409, 413, 415, 429, 503)}


class JobPath(BaseModel):
    job_id: str = Field(max_length=64)


class CachedSchema(BaseModel):
    """A query model whose JSON schema is built once: flask-openapi3 asks a query model for it on every
    request (to spot list fields), and building it took about a third of a `GET /v1/jobs/<id>`."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in _SCHEMAS:
            _SCHEMAS[key] = super().model_json_schema(*args, **kwargs)
        return copy.deepcopy(_SCHEMAS[key])  # callers may change what they get


_SCHEMAS: dict[tuple[Any, ...], dict[str, Any]] = {}


class WaitQuery(CachedSchema):
    wait: float = Field(default=0, ge=0, le=get_settings().max_wait_s,
                        description="Seconds to wait for a final state (long-poll).")


def public(record: dict[str, Any]) -> dict[str, Any]:
    return {name: record.get(name) for name in PUBLIC_FIELDS}


def not_found(job_id: str) -> NotFound:
    return NotFound(f"No job {job_id!r}: it was never submitted, or it expired after 48 hours.")


def visible(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A job is seen only by the API key that created it."""
    return record if record is not None and record.get("owner", "") == owner() else None


def find(job_id: str) -> dict[str, Any]:
    record = visible(records.load(get_redis(), job_id))
    if record is None:
        raise not_found(job_id)
    return record


def uploader() -> str:
    """Whom an upload counts against in flight: the API key, or without keys the client's address."""
    return owner() or f"addr:{request.remote_addr or ''}"


def _submit_view(job_type: JobType) -> Any:
    def view() -> Any:
        job = read_input(job_type)
        record, created = current_app.extensions["submitter"].submit(
            job_type, job, owner=owner(), uploader=uploader(), idempotency_key=request.headers.get("Idempotency-Key"))
        body = {"job_id": record["job_id"], "type": record["type"], "status": record["status"],
                "created_at": record["created_at"]}
        response = make_response(jsonify(body), 202 if created else 200)
        response.headers["Location"] = f"/v1/jobs/{record['job_id']}"
        return response

    view.__name__ = f"submit_{job_type.name}"
    view.__doc__ = f"Submit a {job_type.name} job\n{job_type.summary}"
    return view


for _t in CATALOG:
    api.post(
        f"/{_t.name}",
        responses={202: JobAccepted, 200: JobAccepted, **ERRORS},
        openapi_extensions={"requestBody": openapi_docs.request_body(_t, api.components_schemas)},
        operation_id=f"submit_{_t.name}",
    )(_submit_view(_t))


@api.get("/<job_id>", responses={200: JobView, 400: ErrorBody, 404: ErrorBody, 503: ErrorBody})
def get_job(path: JobPath, query: WaitQuery) -> Any:
    """Read a job: status, progress, attempts, result or error
    With `wait=S` the answer comes as soon as the job is final, or after S seconds; at once, with
    `Retry-After: 1`, when the API process already holds as many long-polls as it may."""
    record = find(path.job_id)
    if query.wait <= 0 or JobStatus(record["status"]).is_final:
        return jsonify(public(record))
    waiting = current_app.extensions["waiting"]
    if waiting is None or not waiting.acquire(blocking=False):
        # every long-poll this process may hold is taken: answer now, and keep threads for everything else
        return jsonify(public(record)), 200, {"Retry-After": "1"}
    try:
        waited = visible(wait_final(get_redis(), path.job_id, query.wait))
    finally:
        waiting.release()
    if waited is None:  # expired or deleted while waiting
        raise not_found(path.job_id)
    return jsonify(public(waited))


def waiting_cap(settings: Settings) -> int:
    """Long-polls one API process holds at once (`MAX_WAITING_PER_PROCESS`, at most its threads but one): by
    default its threads but 4, and at least half of them, so that `/health` and short requests find a thread."""
    if settings.max_waiting_per_process > 0:
        return min(settings.max_waiting_per_process, settings.api_threads - 1)
    return max(settings.api_threads - 4, settings.api_threads // 2)


CANCELLED = {"code": "revoked", "message": "The job was cancelled by a client."}


@api.delete("/<job_id>", responses={200: JobView, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody})
def cancel_job(path: JobPath) -> Any:
    """Cancel a job
    A PENDING job never runs; a STARTED job is stopped; a job that ended answers 409 with how it ended.
    Cancelling a cancelled job answers 200 again, and sends the stop again."""
    record = find(path.job_id)  # 404 unless it is the caller's
    if not JobStatus(record["status"]).is_final:
        # The transition writes only if the job has not ended since it was read (`records._FINISH`); read
        # again, the record says REVOKED, or how the job ended first.
        records.finish(get_redis(), path.job_id, JobStatus.REVOKED, error=CANCELLED)
        record = find(path.job_id)
    status = JobStatus(record["status"])
    if status is not JobStatus.REVOKED:
        raise Conflict(f"Job {path.job_id} already ended with {status.value}.", code="already_finished")
    _stop(path.job_id, record)
    return jsonify(public(record))


def _stop(job_id: str, record: dict[str, Any]) -> None:
    """Revoke the job with terminate, whatever its status when read: a job that started since is stopped too.
    The record says REVOKED already, so no delivery starts it any more (`records._START`). If the broker
    cannot take the revoke, a job that never started is still cancelled for good (200); one that started
    may still be running, so the caller is told (503) and a DELETE again sends the stop again."""
    try:
        current_app.extensions["celery"].control.revoke(job_id, terminate=True, signal="SIGTERM")
    except (OperationalError, ChannelError) as exc:
        log.warning("job %s: REVOKED, but the revoke was not sent: %s", job_id, exc)
        if record["started_at"] is not None:
            raise Unavailable(f"Job {job_id} is cancelled (REVOKED; its result will not be stored), but the signal "
                              "to stop its run could not reach the message broker, so it may still be running. "
                              "Retry this DELETE shortly to send it again.", code="broker_unavailable") from None


PNG_RESPONSE = {"description": "The image as a PNG.",
                "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}


DRAWING_WAIT_S = 2.0
# Drawings at once in this API process (`ANNOTATED_MAX_DRAWING`): each holds a decoded preview (up to
# `ANNOTATED_MAX_PIXELS` × 3 bytes) and its PNG while it draws.
_drawing = threading.BoundedSemaphore(max(0, get_settings().annotated_max_drawing))


@api.get("/<job_id>/annotated.png", responses={200: PNG_RESPONSE, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody})
def get_annotated(path: JobPath) -> Any:
    """A detection job's image with its boxes and labels drawn
    A PNG of at most `ANNOTATED_MAX_PIXELS`, drawn on the first request and then kept as long as the job;
    409 until the job succeeds, 404 for other job types, 503 while the API draws as many as it may at once."""
    record = find(path.job_id)
    if record["type"] != "detection":
        raise NotFound(f"Job {path.job_id} is a {record['type']} job; only detection jobs have an annotated image.",
                       code="no_annotated_image")
    status = JobStatus(record["status"])
    if not status.is_final:
        raise Conflict(f"Job {path.job_id} is {status.value}; its annotated image exists once it succeeds.",
                       code="not_finished")
    if status is not JobStatus.SUCCESS:
        raise NotFound(f"Job {path.job_id} ended with {status.value} and has no annotated image.",
                       code="no_annotated_image")
    r = get_redis()
    png: bytes | None = r.get(records.annotated_key(path.job_id))  # type: ignore[assignment]
    if png is None:
        png = _draw_once(r, path.job_id, record["result"])
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=3600"})


def _draw_once(r: Any, job_id: str, result: dict[str, Any]) -> bytes:
    """Draw the job's image and cache it for the rest of its record's life; at most `ANNOTATED_MAX_DRAWING`
    at once in this process, waiting up to `DRAWING_WAIT_S` for a turn (then 503)."""
    if not _drawing.acquire(timeout=DRAWING_WAIT_S):
        raise Unavailable("The API is drawing as many annotated images as it may at once; retry shortly.",
                          code="busy")
    try:
        png: bytes | None = r.get(records.annotated_key(job_id))  # drawn by another request meanwhile
        if png is not None:
            return png
        # A preview when the upload had more than ANNOTATED_MAX_PIXELS, else the upload itself.
        image = r.get(records.preview_key(job_id)) or records.load_kept_upload(r, job_id)
        if image is None:
            raise NotFound(f"Job {job_id}'s image is no longer stored.", code="no_annotated_image")
        png = drawing.annotate(image, result, get_settings().annotated_max_pixels)
        ttl_ms = r.pttl(records.job_key(job_id))
        if ttl_ms > 0:
            r.set(records.annotated_key(job_id), png, px=ttl_ms)
        return png
    finally:
        _drawing.release()


@api.post("/<job_id>", doc_ui=False)
def submit_unknown_type(path: JobPath) -> Any:
    known = ", ".join(t.name for t in CATALOG)
    raise NotFound(f"There is no job type {path.job_id!r}; the job types are: {known}.", code="unknown_job_type")
