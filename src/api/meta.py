"""Health, readiness, the job-type catalog and the API's own documentation."""

from __future__ import annotations

from typing import Any

import redis
from flask import current_app, jsonify, redirect
from flask_openapi3 import APIBlueprint, Tag
from kombu.exceptions import OperationalError
from pydantic import BaseModel, Field

from api.queues import declare_all
from common import records
from common.catalog import CATALOG, JobType
from common.store import get_redis

api = APIBlueprint("meta", __name__, abp_tags=[Tag(name="meta")])


class JobTypeView(BaseModel):
    type: str
    queue: str
    task: str
    summary: str
    url: str
    inputs: dict[str, Any]
    limits: dict[str, Any]


class JobTypesView(BaseModel):
    job_types: list[JobTypeView]


class HealthView(BaseModel):
    status: str


class ReadyView(BaseModel):
    status: str = Field(description="ready, or unavailable (with 503)")
    checks: dict[str, str]
    queues: dict[str, dict[str, Any]]


def describe(job_type: JobType) -> dict[str, Any]:
    settings = current_app.extensions["settings"]
    inputs: dict[str, Any] = {}
    if job_type.input_model is not None:
        inputs["json"] = job_type.input_model.model_json_schema()
    if job_type.upload is not None:
        upload = job_type.upload
        inputs["multipart"] = {"field": upload.field, "accepts": upload.kinds,
                               "options": upload.options_model.model_json_schema() if upload.options_model else None}
    limits: dict[str, Any] = {"time_limit_s": job_type.soft_time_limit_s(settings)}
    if job_type.upload is not None:
        limits["max_bytes"] = job_type.upload.max_bytes(settings)
    return {"type": job_type.name, "queue": job_type.queue, "task": job_type.task_name,
            "summary": job_type.summary, "url": f"/v1/jobs/{job_type.name}", "inputs": inputs, "limits": limits}


@api.get("/v1/job-types", responses={200: JobTypesView})
def job_types() -> Any:
    """The job types this platform runs: queue, inputs and limits"""
    return jsonify({"job_types": [describe(t) for t in CATALOG]})


@api.get("/health", responses={200: HealthView})
def health() -> Any:
    """Process alive"""
    return jsonify({"status": "ok"})


@api.get("/ready", responses={200: ReadyView, 503: ReadyView})
def ready() -> Any:
    """Broker and store reachable, the workers consuming each queue, and whether model types loaded their model
    503 when the broker or the store is down."""
    checks: dict[str, Any] = {}
    try:
        get_redis().ping()
        checks["store"] = "ok"
    except redis.RedisError as exc:
        checks["store"] = f"unreachable: {exc}"
    try:
        queues = declare_all(current_app.extensions["celery"])
        checks["broker"] = "ok"
    except OperationalError as exc:
        queues = {}
        checks["broker"] = f"unreachable: {exc}"
    ok = checks["store"] == "ok" and checks["broker"] == "ok"
    per_queue: dict[str, dict[str, Any]] = {name: {"consumers": q.consumers, "ready": q.ready}
                                            for name, q in queues.items()}
    if checks["store"] == "ok":
        _add_models(per_queue)
    body = {"status": "ready" if ok else "unavailable", "checks": checks, "queues": per_queue}
    response = jsonify(body)
    response.status_code = 200 if ok else 503
    if not ok:
        response.headers["Retry-After"] = "5"
    return response


def _add_models(queues: dict[str, dict[str, Any]]) -> None:
    """A model type's queue also says whether its model loaded, as its last worker child reported it
    (`status` "loaded" with the model's name, or "unavailable" with the reason)."""
    r = get_redis()
    for t in CATALOG:
        status = records.load_model_status(r, t.name) if t.queue in queues else None
        if status is not None:
            queues[t.queue]["model"] = status


@api.get("/openapi.json", doc_ui=False)
def openapi_json() -> Any:
    return jsonify(current_app.api_doc)  # type: ignore[attr-defined]


@api.get("/docs", doc_ui=False)
def docs() -> Any:
    return redirect("/openapi/swagger")
