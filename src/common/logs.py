"""Logging for the API and the workers: plain text (default) or one JSON object per line.

`LOG_FORMAT=json` switches every line to JSON (python-json-logger) with the fields `time`, `level`,
`logger`, `message`, `service` and, on each line that concerns a job, `job_id`. The job id comes from
the first of: the API's per-request context (`job_context`), the Celery task running in this process,
or the arguments of Celery's own "Task ... received/succeeded" lines.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from common.settings import Settings

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(job)s: %(message)s"
# Celery's "received" line carries its arguments again as `extra={"data": ...}`: not repeated in JSON.
_SKIPPED = (*RESERVED_ATTRS, "data", "job")
_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


@contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    """Attach `job_id` to every line logged inside the block (in this thread)."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


def set_job_id(job_id: str | None) -> None:
    """Attach `job_id` to the lines that follow in this context (an API request: reset when it ends)."""
    _job_id.set(job_id)


def job_id_of(record: logging.LogRecord) -> str | None:
    explicit = getattr(record, "job_id", None) or _job_id.get()
    if explicit:
        return str(explicit)
    if record.name.startswith("celery"):
        if isinstance(record.args, Mapping) and record.args.get("id"):
            return str(record.args["id"])
        return _celery_task_id()
    return _celery_task_id() if "celery" in sys.modules else None


def _celery_task_id() -> str | None:
    from celery import current_task

    request = getattr(current_task, "request", None)
    task_id = getattr(request, "id", None)
    return str(task_id) if task_id else None


class TextFormatter(logging.Formatter):
    def __init__(self, service: str = "") -> None:
        super().__init__(TEXT_FORMAT)
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        job_id = job_id_of(record)
        record.job = f" job={job_id}" if job_id else ""
        return super().format(record)


class JsonFormatter(_BaseJsonFormatter):
    def __init__(self, service: str = "") -> None:
        super().__init__(["levelname", "name", "message"], rename_fields={"levelname": "level", "name": "logger"},
                         timestamp="time", static_fields={"service": service} if service else None,
                         reserved_attrs=_SKIPPED)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        job_id = job_id_of(record)
        if job_id:
            log_data["job_id"] = job_id


def make_formatter(settings: Settings, service: str) -> logging.Formatter:
    if settings.log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {settings.log_format!r}")
    return JsonFormatter(service) if settings.log_format == "json" else TextFormatter(service)


def configure(settings: Settings, service: str, level: str | int | None = None) -> None:
    """Give the root logger one handler on stderr with the configured format (once per process)."""
    root = logging.getLogger()
    root.setLevel(level or settings.log_level)
    if any(isinstance(h.formatter, TextFormatter | JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(settings, service))
    root.addHandler(handler)
    if settings.log_format == "json":
        logging.captureWarnings(True)  # Python warnings become JSON lines too (logger `py.warnings`)


def gunicorn_logconfig(settings: Settings) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its own lines (and the root logger's) in JSON too, when asked."""
    if settings.log_format != "json":
        return {}
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "root": {"level": settings.log_level, "handlers": ["console"]},
        "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False,
                                       "qualname": "gunicorn.error"},
                    # the API writes its own line per request, with the job id (api.metrics)
                    "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False,
                                        "qualname": "gunicorn.access"}},
        "handlers": {"console": handler},
        "formatters": {"json": {"()": "common.logs.JsonFormatter", "service": "api"}},
    }


__all__ = ["JsonFormatter", "TextFormatter", "configure", "gunicorn_logconfig", "job_context", "job_id_of",
           "set_job_id"]
