"""`LOG_FORMAT=json`: one JSON object per line, with the job id on every line that concerns a job, from the
API (gunicorn included) and the workers alike; `text` keeps readable lines with `job=<id>`."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import requests

from common import logs
from common.settings import Settings
from ops.stack import OpsPlatform
from support.media import tone
from support.wait import until

CELERY_SHUTDOWN_LINE = "worker: Warm shutdown"  # Celery prints it itself, straight to stdout, at exit


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_api_and_worker_lines_are_json_with_the_job_id(ops: OpsPlatform) -> None:
    job_id = requests.post(f"{ops.api}/v1/jobs/audio_length", files={"audio": ("a.wav", io.BytesIO(tone(0.2)))},
                           timeout=30).json()["job_id"]
    assert requests.get(f"{ops.api}/v1/jobs/{job_id}", params={"wait": 30}, timeout=40).json()["status"] == "SUCCESS"
    worker = ops.workers["audio_length"]

    def worker_lines() -> list[dict[str, Any]]:
        lines = [line for line in worker.tail(400).splitlines() if line.strip() and CELERY_SHUTDOWN_LINE not in line]
        parsed = [json.loads(line) for line in lines]  # every line is JSON, or this fails
        return [p for p in parsed if job_id in p["message"]]

    about_job = until(lambda: len(worker_lines()) >= 2 and worker_lines(), 10, "the worker's lines about the job")
    assert all(p["job_id"] == job_id and p["service"] == "worker" for p in about_job), about_job
    assert {"received", "succeeded"} <= {word for p in about_job for word in p["message"].split()}

    api_lines = json_lines(ops.api_proc.log.read_text())  # gunicorn's own lines included
    requests_for_job = [p for p in api_lines if p.get("logger") == "api.request" and p.get("job_id") == job_id]
    assert {p["method"] for p in requests_for_job} == {"POST", "GET"}
    submit = next(p for p in requests_for_job if p["method"] == "POST")
    assert submit["job_id"] == job_id and submit["status"] == 202 and submit["route"] == "/v1/jobs/audio_length"
    assert any(p.get("logger") == "gunicorn.error" for p in api_lines)
    assert {"time", "level", "logger", "message", "service"} <= set(api_lines[0])


def record(message: str, name: str = "api.demo") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)


def test_text_format_shows_the_job_id() -> None:
    formatter = logs.make_formatter(Settings(log_format="text"), "api")
    assert " job=" not in formatter.format(record("no job here"))
    with logs.job_context("j-123"):
        line = formatter.format(record("about a job"))
    assert "api.demo job=j-123: about a job" in line


def test_json_format_reads_celerys_own_task_lines() -> None:
    formatter = logs.make_formatter(Settings(log_format="json"), "worker")
    line = logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1, "Task %(name)s[%(id)s] succeeded",
                             ({"name": "scrape.run", "id": "j-9"},), None)
    out = json.loads(formatter.format(line))
    assert out["job_id"] == "j-9" and out["message"] == "Task scrape.run[j-9] succeeded" and out["level"] == "INFO"
    assert "job_id" not in json.loads(formatter.format(record("nothing about a job")))


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.make_formatter(Settings(log_format="xml"), "api")
