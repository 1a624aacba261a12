"""The HTTP API: validates jobs against the catalog and publishes them by task name.

It never imports a worker's libraries (torch, ultralytics, librosa, transformers) nor `workers`.
"""

from __future__ import annotations

import logging
import threading

import redis
from amqp.exceptions import ChannelError
from flask import Response, current_app, jsonify, request
from flask_openapi3 import Info, OpenAPI
from kombu.exceptions import OperationalError
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from api import access, events, jobs, limits, meta, metrics, queues
from api.inputs import describe_validation_error
from api.submit import Submitter, broker_refused
from common import logs, store
from common.broker import make_celery
from common.errors import Oversized, PlatformError, Unauthorized
from common.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> OpenAPI:
    settings = settings or get_settings()
    logs.configure(settings, "api")
    app = OpenAPI(
        __name__,
        info=Info(title="ML job platform", version="1.0", description="Submit slow model jobs; fetch their results."),
        validation_error_status=400,
        validation_error_callback=_validation_error_response,
        doc_prefix="/openapi",
        security_schemes={"bearerAuth": {"type": "http", "scheme": "bearer",
                                         "description": "An API key, when the API has keys (API_KEYS)."}},
    )
    app.config["MAX_CONTENT_LENGTH"] = limits.largest_limit(settings)  # each route's own: `_limit_body`
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["settings"] = settings
    app.extensions["celery"] = make_celery(settings)
    app.extensions["queue_reader"] = queues.QueueReader(settings, app.extensions["celery"])
    app.extensions["submitter"] = Submitter(app.extensions["celery"], settings)
    waiting = jobs.waiting_cap(settings)
    app.extensions["waiting"] = threading.BoundedSemaphore(waiting) if waiting else None
    app.before_request(_limit_body)
    access.init_app(app, settings)
    app.register_api(jobs.api)
    app.register_api(events.api)
    app.register_api(meta.api)
    app.register_api(queues.api)
    app.register_api(metrics.api)
    metrics.init_app(app)
    app.register_error_handler(Exception, _error_response)
    return app


def error_json(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _limit_body() -> None:
    """The route's body limit, from `Content-Length` before a byte is read; while reading one without it."""
    limit = limits.body_limit(request.method, request.path, current_app.extensions["settings"])
    if request.content_length is not None and request.content_length > limit:
        raise Oversized(f"The request body has {request.content_length} bytes; {request.method} {request.path} takes "
                        f"at most {limit}.")
    request.max_content_length = limit


def _validation_error_response(exc: ValidationError) -> Response:
    return error_json(400, "invalid_input", describe_validation_error(exc))


def _error_response(exc: Exception) -> Response:
    if isinstance(exc, Unauthorized):
        return error_json(exc.status, exc.code, exc.message, {"WWW-Authenticate": "Bearer"})
    if isinstance(exc, PlatformError):
        retry = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else {}
        return error_json(exc.status, exc.code, exc.message, retry)
    if isinstance(exc, HTTPException):
        named = {429: "rate_limited", 413: Oversized.code}
        code = named.get(exc.code or 0) or (exc.name or "error").lower().replace(" ", "_")
        return error_json(exc.code or 500, code, exc.description or exc.name)
    if isinstance(exc, ChannelError):
        return _error_response(broker_refused(exc))
    if isinstance(exc, OperationalError):
        return error_json(503, "broker_unavailable", "The message broker is unavailable; retry shortly.",
                          {"Retry-After": "5"})
    if isinstance(exc, redis.OutOfMemoryError):
        return error_json(503, "store_full", "The job store (Redis) is out of memory; retry later.",
                          {"Retry-After": "30"})
    if isinstance(exc, redis.RedisError) and store.is_outage(exc):  # down, full, read-only, loading, busy...
        return error_json(503, "store_unavailable", "The job store (Redis) is unavailable; retry shortly.",
                          {"Retry-After": "5"})
    log.exception("unhandled error")  # a Redis error that is not an outage (WRONGTYPE, a script error) is a bug
    return error_json(500, "internal_error", "The server hit an unexpected error; it has been logged.")


__all__ = ["create_app", "error_json"]
