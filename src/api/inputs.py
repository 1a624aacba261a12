"""Turn a submit request into a job payload, checking it against the job type's catalog entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import request
from pydantic import BaseModel, RootModel, ValidationError

from common import webhooks
from common.catalog import JobType, Upload
from common.errors import InputError, Oversized, UnsupportedMedia
from common.settings import get_settings


@dataclass(frozen=True)
class JobInput:
    payload: dict[str, Any]
    blob: bytes | None = None
    webhook: str | None = None  # where to post the job's end (`common.webhooks`), checked


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def validate(model: type[BaseModel], data: Any) -> dict[str, Any]:
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc)) from None
    inner = value.root if isinstance(value, RootModel) else value
    return inner.model_dump(mode="json", exclude_none=True)


def read_input(job_type: JobType) -> JobInput:
    if request.mimetype == "multipart/form-data":
        if job_type.upload is None:
            raise UnsupportedMedia(f"{job_type.name} jobs take a JSON body, not a file upload.")
        return _read_upload(job_type, job_type.upload)
    input_model = job_type.input_schema(get_settings())
    if input_model is None:
        field = job_type.upload.field if job_type.upload else "file"
        raise UnsupportedMedia(f"{job_type.name} jobs take a multipart/form-data upload in the field '{field}'.")
    if not request.is_json:
        raise UnsupportedMedia("Send the job as JSON with Content-Type: application/json.")
    data = _read_json()
    webhook = data.pop("webhook", None) if isinstance(data, dict) else None
    return JobInput(validate(input_model, data), webhook=_checked_webhook(webhook))


def _checked_webhook(url: Any) -> str | None:
    if url is None:
        return None
    if not isinstance(url, str):
        raise InputError("webhook: an http or https URL (a string).", code="webhook_refused")
    return webhooks.check_url(url, get_settings())


def _read_json() -> Any:
    body = request.get_data(cache=True)
    limit = request.max_content_length
    if limit is not None and len(body) >= limit:  # a body sent without Content-Length is cut at the limit
        raise Oversized(f"The request body passes the {limit} bytes {request.path} takes.")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # json's parser recurses once per nesting level: "[" * 200000
        data = None
    if data is None:
        raise InputError("The body is not valid JSON.", code="malformed_json")
    return data


def _read_upload(job_type: JobType, upload: Upload) -> JobInput:
    file = request.files.get(upload.field)
    if file is None:
        raise InputError(f"Send the file in the multipart field '{upload.field}'.", code="missing_file")
    own = job_type.settings(get_settings())
    limit = upload.max_bytes(own)
    data = file.stream.read(limit + 1)
    if len(data) > limit:
        raise Oversized(f"The file is larger than the {limit // (1024 * 1024)} MB limit for {job_type.name} jobs.")
    if not data:
        raise InputError(f"The file in '{upload.field}' is empty.", code="empty_file")
    kind = upload.sniff(data[:64])
    if kind is None:
        raise UnsupportedMedia(f"The file in '{upload.field}' is not {upload.kinds} (checked by content).")
    options = {k: v for k, v in request.form.items() if k != "webhook"}
    payload = validate(upload.options_model, options) if upload.options_model else {}
    if upload.check is not None:
        upload.check(data, own)
    payload["upload"] = {"kind": kind, "filename": file.filename or "", "bytes": len(data)}
    return JobInput(payload, data, _checked_webhook(request.form.get("webhook")))
