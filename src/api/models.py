"""Pydantic models of what the API answers (its OpenAPI responses); a job type's own input and result
models live in its spec."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


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


__all__ = ["ErrorBody", "ErrorDetail", "JobAccepted", "JobView"]
