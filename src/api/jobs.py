"""`/v1/jobs`: submit a job of each catalog type, read it (with long-poll), cancel it."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from amqp.exceptions import ChannelError
from flask import Response, current_app, jsonify, make_response, request
from flask_openapi3 import APIBlueprint, Tag
from kombu.exceptions import OperationalError
from pydantic import BaseModel, Field

from api import openapi_docs, publish
from api.access import client_address, owner
from api.inputs import read_input
from api.models import ErrorBody, JobAccepted, JobView
from common import records, webhooks
from common.catalog import BY_NAME, CATALOG, Artifact, JobType
from common.errors import Conflict, NotFound, Unavailable
from common.records import JobStatus
from common.settings import Settings, get_settings
from common.store import get_redis
from common.waiting import wait_final

log = logging.getLogger(__name__)
api = APIBlueprint("jobs", __name__, url_prefix="/v1/jobs", abp_tags=[Tag(name="jobs")])

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


public = records.public


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
    return owner() or f"addr:{client_address()}"


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
    view.__doc__ = (f"Submit a {job_type.name} job\n{job_type.summary} Any body may add `webhook`: an http(s) URL the "
                    "job's record is posted to, signed, when it ends (docs/webhooks.md).")
    return view


for _t in CATALOG:
    api.post(
        f"/{_t.name}",
        responses={202: JobAccepted, 200: JobAccepted, **ERRORS},
        openapi_extensions={"requestBody": openapi_docs.request_body(_t, get_settings(), api.components_schemas)},
        operation_id=_t.submit_operation,
    )(_submit_view(_t))
    openapi_docs.register(_t.result_model, api.components_schemas)


@api.get("/<job_id>", responses={200: JobView, 400: ErrorBody, 404: ErrorBody, 503: ErrorBody}, operation_id="getJob")
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


@api.delete("/<job_id>", responses={200: JobView, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody},
            operation_id="cancelJob")
def cancel_job(path: JobPath) -> Any:
    """Cancel a job
    A PENDING job never runs; a STARTED job is stopped; a job that ended answers 409 with how it ended.
    Cancelling a cancelled job answers 200 again, and sends the stop again to a job that had started. 503 when
    the stop of a started job could not be sent (the broker down or not confirming): retry the DELETE."""
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
    """Stop a job that started (its record, read after the cancel, has `started_at`): a revoke with terminate,
    sent through the submits' bounded publish (`publish.revoke`), so a broker that does not confirm (a memory
    or disk alarm) costs at most `BROKER_CONFIRM_TIMEOUT_S`. If the broker does not take it, the job may still
    be running: the caller is told (503) and a DELETE again sends the stop again.
    A job that never started needs no message: its record says REVOKED, so no delivery starts it
    (`records._START`), and its cancel answers at once even while the broker is blocked."""
    if record["started_at"] is None:
        return
    settings = current_app.extensions["settings"]
    deadline = time.monotonic() + settings.broker_confirm_timeout_s
    try:
        publish.revoke(current_app.extensions["celery"], current_app.extensions["submitter"].gate, job_id, deadline)
    except (Unavailable, OperationalError, ChannelError) as exc:
        log.warning("job %s: REVOKED, but the revoke was not sent: %s", job_id, exc)
        raise Unavailable(f"Job {job_id} is cancelled (REVOKED; its result will not be stored), but the signal "
                          "to stop its run did not reach the message broker (down, or not confirming within "
                          f"{settings.broker_confirm_timeout_s:g} s, e.g. short of memory or disk), so it may "
                          "still be running. Retry this DELETE shortly to send it again.",
                          code="broker_unavailable") from None


@api.post("/<job_id>/webhook/redeliver", responses={202: JobView, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody},
          operation_id="redeliverWebhook")
def redeliver_webhook(path: JobPath) -> Any:
    """Send a job's completion webhook again
    The webhook becomes `pending` and due now, with a fresh retry schedule (its `attempts` start again from 0),
    whether it was delivered, failed or still pending. 409 for a job submitted without a `webhook` or not ended."""
    find(path.job_id)  # 404 unless it is the caller's
    outcome = webhooks.redeliver(get_redis(), path.job_id)
    if outcome == webhooks.NOT_FOUND:
        raise not_found(path.job_id)
    if outcome == webhooks.NO_WEBHOOK:
        raise Conflict(f"Job {path.job_id} was submitted without a webhook.", code="no_webhook")
    if outcome == webhooks.NOT_FINISHED:
        raise Conflict(f"Job {path.job_id} has not ended; its webhook is sent when it does.", code="not_finished")
    return jsonify(public(find(path.job_id))), 202


class ArtifactPath(JobPath):
    artifact: str = Field(max_length=64, description="A file its job type declares, e.g. `annotated.png`.")


RENDER_WAIT_S = 2.0
# Renderings at once in this API process, per job type and artifact (`<TYPE>_<max_at_once_setting>`, e.g.
# DETECTION_ANNOTATED_MAX_DRAWING): each holds a decoded image and its encoding while it renders.
RENDERINGS: dict[tuple[str, str], threading.BoundedSemaphore] = {
    (t.name, a.name): threading.BoundedSemaphore(max(0, getattr(t.settings(get_settings()), a.max_at_once_setting)))
    for t in CATALOG for a in t.artifacts}


def _artifact_view(declared: Artifact) -> Callable[[JobPath], Any]:
    def view(path: JobPath) -> Any:
        return artifact_response(path.job_id, declared.name)

    view.__name__ = f"get_{declared.name.replace('.', '_')}"
    view.__doc__ = (f"{declared.description}\nMade from a succeeded job on the first request and then kept as long "
                    f"as the job (if it fits in its owner's `UPLOAD_BYTES_KEPT`; else made on each request); 409 "
                    f"until the job succeeds, 404 for a job of a type without it, 503 while the API makes as many "
                    f"as it may at once.")
    return view


# One documented route per declared file (its own media type and operationId); any other name is a 404 below.
for _a in {a.name: a for t in CATALOG for a in t.artifacts}.values():
    api.get(f"/<job_id>/{_a.name}", operation_id=_a.operation_id, responses={
        200: {"description": _a.description, "content": {_a.media_type: {"schema": {"type": "string",
                                                                                     "format": "binary"}}}},
        404: ErrorBody, 409: ErrorBody, 503: ErrorBody})(_artifact_view(_a))


@api.get("/<job_id>/<artifact>", doc_ui=False)
def get_artifact(path: ArtifactPath) -> Any:
    return artifact_response(path.job_id, path.artifact)


def artifact_response(job_id: str, name: str) -> Response:
    """A file made from a succeeded job, as its job type declares (e.g. `annotated.png`)."""
    record = find(job_id)
    job_type = BY_NAME.get(record["type"])
    artifact = job_type.artifact(name) if job_type is not None else None
    if job_type is None or artifact is None:
        raise NotFound(f"Job {job_id} is a {record['type']} job, which has no {name}.", code=_missing_code(name))
    status = JobStatus(record["status"])
    if not status.is_final:
        raise Conflict(f"Job {job_id} is {status.value}; its {artifact.name} exists once it succeeds.",
                       code="not_finished")
    if status is not JobStatus.SUCCESS:
        raise NotFound(f"Job {job_id} ended with {status.value} and has no {artifact.name}.",
                       code=_missing_code(artifact.name))
    renderer = artifact.load_renderer()
    r = get_redis()
    data = renderer.cached(r, job_id)
    if data is None:
        data = _render_once(r, job_type, artifact, job_id, record["result"])
    return Response(data, mimetype=artifact.media_type, headers={"Cache-Control": "private, max-age=3600"})


def _missing_code(artifact: str) -> str:
    """The code a type that declares `artifact` gives when a job has none (`no_annotated_image`)."""
    return next((a.missing_code for t in CATALOG for a in t.artifacts if a.name == artifact), "not_found")


def _render_once(r: Any, job_type: JobType, artifact: Artifact, job_id: str, result: dict[str, Any]) -> bytes:
    """Render the artifact and cache it for the rest of its record's life (within its owner's `UPLOAD_BYTES_KEPT`:
    the renderer's business, e.g. `kept.cache`); at most so many at once in this
    process (the type's `max_at_once_setting`), waiting up to `RENDER_WAIT_S` for a turn (then 503)."""
    turn = RENDERINGS[(job_type.name, artifact.name)]
    if not turn.acquire(timeout=RENDER_WAIT_S):
        raise Unavailable(f"The API is rendering as many {artifact.name} files as it may at once; retry shortly.",
                          code="busy")
    try:
        renderer = artifact.load_renderer()
        cached = renderer.cached(r, job_id)  # rendered by another request meanwhile
        return cached if cached is not None else renderer.draw(r, job_id, result, job_type.settings(get_settings()))
    finally:
        turn.release()


@api.post("/<job_id>", doc_ui=False)
def submit_unknown_type(path: JobPath) -> Any:
    known = ", ".join(t.name for t in CATALOG)
    raise NotFound(f"There is no job type {path.job_id!r}; the job types are: {known}.", code="unknown_job_type")
