"""Pydantic models of what the API answers (its OpenAPI responses); a job type's own input and result
models live in its spec."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from common import records


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_input"])
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class JobAccepted(BaseModel):
    job_id: str
    type: str
    status: str
    created_at: str


class WebhookView(BaseModel):
    url: str
    state: Literal["pending", "delivered", "failed"] = Field(description=(
        "`pending` until delivered (2xx) or given up (`failed`: 410, or every attempt failed); see docs/webhooks.md."))
    attempts: int = Field(description="Attempts so far (since the last redeliver).")
    last_status: int | None = Field(description="HTTP status of the last attempt; null when none answered.")
    last_error: str | None
    next_attempt_at: str | None = Field(description="When the next attempt is due, while `pending` after the end.")


class JobView(BaseModel):
    job_id: str
    type: str
    status: Literal["PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"]
    progress: int = Field(ge=0, le=100)
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    result: Any = None
    error: ErrorDetail | None = None
    batch_size: int | None = Field(default=None, description=(
        "How many jobs ran together in the engine call of its latest attempt (`<TYPE>_BATCH_MAX` > 1); absent when "
        "batching is off."))
    webhook: WebhookView | None = Field(default=None, description=(
        "The completion webhook's delivery, for a job submitted with a `webhook` URL; absent otherwise."))


if tuple(JobView.model_fields) != records.PUBLIC_FIELDS:  # what GET shows is what a webhook sends
    raise RuntimeError("api.models.JobView and common.records.PUBLIC_FIELDS differ")

__all__ = ["ErrorBody", "ErrorDetail", "JobAccepted", "JobView", "WebhookView"]
