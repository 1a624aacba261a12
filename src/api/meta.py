"""Health, readiness, the job-type catalog and the API's own documentation."""

from __future__ import annotations

from typing import Any, Literal

import redis
from flask import current_app, jsonify, redirect
from flask_openapi3 import APIBlueprint, Tag
from kombu.exceptions import OperationalError
from pydantic import BaseModel, Field

from api.jobs import CachedSchema
from api.queues import declare_all
from common import model_status
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
    result: dict[str, Any] = Field(description="JSON schema of a succeeded job's `result`.")
    example: dict[str, Any] = Field(description="An input of this type (the JSON body, or an upload's options).")
    artifacts: list[str] = Field(description="Files made on request: `GET /v1/jobs/<id>/<artifact>`.")
    model_hint: str | None = Field(description="How to install the model its workers load, when they load one.")


class JobTypesView(BaseModel):
    job_types: list[JobTypeView]


class HealthView(BaseModel):
    status: str


class ReadyView(BaseModel):
    status: str = Field(description="ready, or unavailable (with 503)")
    checks: dict[str, str]
    queues: dict[str, dict[str, Any]]
    without_consumers: list[str] = Field(description="Catalog queues no worker consumes (their jobs would wait).")


class ReadyQuery(CachedSchema):
    scope: Literal["platform", "api"] = Field(
        default="platform",
        description="`platform`: the store, the broker and a consumer on every job queue (what `make up` waits "
                    "for). `api`: this API process can serve reads, i.e. the store answers; for a "
                    "Kubernetes readiness probe, so that a broker outage does not take every API pod out of "
                    "its Service.")


def describe(job_type: JobType) -> dict[str, Any]:
    settings = current_app.extensions["settings"]
    inputs: dict[str, Any] = {}
    input_model = job_type.input_schema(settings)
    if input_model is not None:
        inputs["json"] = input_model.model_json_schema()
    if job_type.upload is not None:
        upload = job_type.upload
        inputs["multipart"] = {"field": upload.field, "accepts": upload.kinds,
                               "options": upload.options_model.model_json_schema() if upload.options_model else None}
    limits: dict[str, Any] = {"time_limit_s": job_type.soft_time_limit_s(settings)}
    if job_type.upload is not None:
        limits["max_bytes"] = job_type.upload.max_bytes(job_type.settings(settings))
    return {"type": job_type.name, "queue": job_type.queue, "task": job_type.task_name,
            "summary": job_type.summary, "url": f"/v1/jobs/{job_type.name}", "inputs": inputs, "limits": limits,
            "result": job_type.result_model.model_json_schema(), "example": job_type.example,
            "artifacts": [a.name for a in job_type.artifacts],
            "model_hint": job_type.model.install_hint if job_type.model is not None else None}


@api.get("/v1/job-types", responses={200: JobTypesView}, operation_id="listJobTypes")
def job_types() -> Any:
    """The job types this platform runs: queue, inputs and limits"""
    return jsonify({"job_types": [describe(t) for t in CATALOG]})


@api.get("/health", responses={200: HealthView}, operation_id="getHealth")
def health() -> Any:
    """Process alive"""
    return jsonify({"status": "ok"})


@api.get("/ready", responses={200: ReadyView, 503: ReadyView}, operation_id="getReadiness")
def ready(query: ReadyQuery) -> Any:
    """Ready to run jobs: store and broker reachable, a worker consuming every job queue
    503 when the broker or the store is down, or when a queue has no consumer (`without_consumers`); each queue
    also says whether its model loaded. With `scope=api`: only whether this process can serve (the store)."""
    checks: dict[str, str] = {"store": _store_check()}
    queues: dict[str, dict[str, Any]] = {}
    idle: list[str] = []
    if query.scope == "platform":
        checks["broker"], queues = _broker_check()
        idle = [name for name, q in queues.items() if not q["consumers"]]
        if checks["broker"] == "ok":
            checks["consumers"] = f"none on {', '.join(idle)}" if idle else "ok"
        if checks["store"] == "ok":
            _add_models(queues)
    ok = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ok else "unavailable", "checks": checks, "queues": queues, "without_consumers": idle}
    response = jsonify(body)
    response.status_code = 200 if ok else 503
    if not ok:
        response.headers["Retry-After"] = "5"
    return response


def _store_check() -> str:
    try:
        get_redis().ping()
    except redis.RedisError as exc:
        return f"unreachable: {exc}"
    return "ok"


def _broker_check() -> tuple[str, dict[str, dict[str, Any]]]:
    try:
        queues = declare_all(current_app.extensions["celery"])
    except OperationalError as exc:
        return f"unreachable: {exc}", {}
    return "ok", {name: {"consumers": q.consumers, "ready": q.ready} for name, q in queues.items()}


def _add_models(queues: dict[str, dict[str, Any]]) -> None:
    """A model type's queue also says whether its model loaded, as its live worker processes report it
    (`status` "loaded" with the model's name if any has it, else "unavailable" with the reason; `workers`
    counts each)."""
    r = get_redis()
    for t in CATALOG:
        status = model_status.summary(model_status.fresh(r, t.name)) if t.queue in queues else None
        if status is not None:
            queues[t.queue]["model"] = status


@api.get("/openapi.json", doc_ui=False)
def openapi_json() -> Any:
    return jsonify(current_app.api_doc)  # type: ignore[attr-defined]


@api.get("/docs", doc_ui=False)
def docs() -> Any:
    return redirect("/openapi/swagger")
