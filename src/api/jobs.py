"""`/v1/jobs`: submit a job of each catalog type, read it (with long-poll), cancel it."""

from __future__ import annotations

import copy
from typing import Any

from flask import Response, current_app, jsonify, make_response, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from api import openapi_docs
from api.access import owner
from api.inputs import read_input
from common import drawing, records
from common.catalog import CATALOG, JobType
from common.errors import Conflict, NotFound
from common.records import JobStatus
from common.schemas import ErrorBody, JobAccepted, JobView
from common.settings import Settings, get_settings
from common.store import get_redis

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
        waited = visible(records.wait_final(get_redis(), path.job_id, query.wait))
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


@api.delete("/<job_id>", responses={200: JobView, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody})
def cancel_job(path: JobPath) -> Any:
    """Cancel a job
    A PENDING job never runs; a STARTED job is stopped; a finished job answers 409."""
    r = get_redis()
    record = find(path.job_id)
    status = JobStatus(record["status"])
    if status.is_final:
        raise Conflict(f"Job {path.job_id} already ended with {status.value}.", code="already_finished")
    records.finish(r, path.job_id, JobStatus.REVOKED,
                   error={"code": "revoked", "message": "The job was cancelled by a client."})
    celery = current_app.extensions["celery"]
    celery.control.revoke(path.job_id, terminate=status is JobStatus.STARTED, signal="SIGTERM")
    return jsonify(public(find(path.job_id)))


PNG_RESPONSE = {"description": "The image as a PNG.",
                "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}


@api.get("/<job_id>/annotated.png", responses={200: PNG_RESPONSE, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody})
def get_annotated(path: JobPath) -> Any:
    """A detection job's image with its boxes and labels drawn
    A PNG drawn on request (at most 2048 px a side); 409 until the job succeeds, 404 for other job types."""
    record = find(path.job_id)
    if record["type"] != "detection":
        raise NotFound(f"Job {path.job_id} is a {record['type']} job; only detection jobs have an annotated image.",
                       code="no_annotated_image")
    status = JobStatus(record["status"])
    if not status.is_final:
        raise Conflict(f"Job {path.job_id} is {status.value}; its annotated image exists once it succeeds.",
                       code="not_finished")
    image = records.load_kept_upload(get_redis(), path.job_id) if status is JobStatus.SUCCESS else None
    if image is None:
        raise NotFound(f"Job {path.job_id} ended with {status.value} and has no annotated image.",
                       code="no_annotated_image")
    png = drawing.annotate(image, record["result"])
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=3600"})


@api.post("/<job_id>", doc_ui=False)
def submit_unknown_type(path: JobPath) -> Any:
    known = ", ".join(t.name for t in CATALOG)
    raise NotFound(f"There is no job type {path.job_id!r}; the job types are: {known}.", code="unknown_job_type")
