"""The HTTP contract of v1 through real HTTP against gunicorn, real RabbitMQ, Redis and workers."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from api.limits import largest_limit
from common import records
from common.catalog import BY_NAME
from common.settings import get_settings
from support.jobs import submit, wait_final
from support.media import tone


@pytest.fixture(autouse=True)
def _workers(workers: object) -> None:
    pass


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"].strip()
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def test_submit_answers_202_with_location_and_pending(http) -> None:
    response = http.post("/v1/jobs/audio_length", files={"audio": ("a.wav", tone(0.5))})
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"job_id", "type", "status", "created_at"}
    assert body["type"] == "audio_length" and body["status"] == "PENDING"
    assert response.headers["Location"] == f"/v1/jobs/{body['job_id']}"
    record = wait_final(http, body["job_id"])
    assert set(record) == {"job_id", "type", "status", "progress", "attempts", "created_at", "started_at",
                           "finished_at", "result", "error"}
    assert record["status"] == "SUCCESS" and record["error"] is None
    assert record["created_at"] <= record["started_at"] <= record["finished_at"]


def test_idempotency_key_returns_the_first_job(http) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = http.post("/v1/jobs/scrape", json={"preset": "euromillions", "draw_date": "2024-01-02"}, headers=key)
    again = http.post("/v1/jobs/scrape", json={"preset": "euromillions", "draw_date": "2024-01-02"}, headers=key)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"]
    other_type = http.post("/v1/jobs/audio_length", files={"audio": ("a.wav", tone(0.2))}, headers=key)
    assert other_type.status_code == 202 and other_type.json()["job_id"] != first.json()["job_id"]


def test_unknown_job_is_404_not_pending(http) -> None:
    assert_error(http.get(f"/v1/jobs/{uuid.uuid4()}"), 404, "not_found")
    assert_error(http.get(f"/v1/jobs/{uuid.uuid4()}", params={"wait": 1}), 404, "not_found")
    assert_error(http.delete(f"/v1/jobs/{uuid.uuid4()}"), 404, "not_found")
    assert_error(http.post("/v1/jobs/no_such_type", json={}), 404)


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "code"),
    [
        ("scrape", {"json": {"selectors": {"a": "p"}}}, 400, "invalid_input"),  # missing field
        ("scrape", {"json": {"url": "https://example.org", "selectors": ["p"]}}, 400, "invalid_input"),  # wrong type
        ("scrape", {"json": {"url": "ftp://example.org/x", "selectors": {"a": "p"}}}, 400, "invalid_input"),
        ("audio_length", {"json": {"url": "file:///etc/passwd"}}, 400, "invalid_input"),  # invalid URL scheme
        ("sentiment", {"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400, "malformed_json"),
        ("sentiment", {"json": {"text": "hi", "texts": ["a"]}}, 400, "invalid_input"),
        ("sentiment", {"data": "text=hello"}, 415, "unsupported_media_type"),
        ("audio_length", {"files": {"audio": ("a.wav", b"")}}, 400, "empty_file"),
        ("audio_length", {"files": {"audio": ("a.mp3", b"plain text, not audio" * 20)}}, 415, None),
        ("audio_length", {"files": {"sound": ("a.wav", tone(0.1))}}, 400, "missing_file"),
        ("detection", {"json": {"image": "x"}}, 415, "unsupported_media_type"),
        ("scrape", {"files": {"page": ("p.html", b"<html>")}}, 415, "unsupported_media_type"),
    ],
)
def test_bad_input_gets_a_clear_4xx(http, path: str, kwargs: dict, status: int, code: str | None) -> None:
    assert_error(http.post(f"/v1/jobs/{path}", **kwargs), status, code)


@pytest.mark.parametrize(("job_type", "field", "start"), [("detection", "image", b"\xff\xd8\xff"),
                                                          ("audio_length", "audio", tone(0.1))])
def test_an_upload_past_its_types_limit_is_413(http, job_type: str, field: str, start: bytes) -> None:
    """More than the type's own limit, less than what the largest route takes (the app's global limit)."""
    body = start + b"\0" * BY_NAME[job_type].upload.max_bytes(BY_NAME[job_type].settings(get_settings()))
    assert len(body) < largest_limit(get_settings())
    assert_error(http.post(f"/v1/jobs/{job_type}", files={field: ("big", body)}), 413, "too_large")


def test_bad_wait_is_400(http) -> None:
    job_id = submit(http, "audio_length", files={"audio": ("a.wav", tone(0.1))})
    assert_error(http.get(f"/v1/jobs/{job_id}", params={"wait": 31}), 400, "invalid_input")
    assert_error(http.get(f"/v1/jobs/{job_id}", params={"wait": "soon"}), 400, "invalid_input")


def test_wrong_method_and_unknown_route_are_json(http) -> None:
    assert_error(http.put("/v1/jobs/audio_length"), 405)
    assert_error(http.get("/nowhere"), 404)


def test_record_and_result_expire_after_48_hours(http) -> None:
    job_id = submit(http, "audio_length", files={"audio": ("a.wav", tone(0.3))})
    assert wait_final(http, job_id)["status"] == "SUCCESS"
    with redis.Redis.from_url(get_settings().redis_url) as r:
        ttl = r.ttl(records.job_key(job_id))
        assert 48 * 3600 - 60 <= ttl <= 48 * 3600
        assert r.exists(records.blob_key(job_id)) == 0  # the upload is gone once the job is done


def test_every_key_the_platform_writes_has_a_ttl(http) -> None:
    submit(http, "audio_length", files={"audio": ("a.wav", tone(0.2))}, headers={"Idempotency-Key": "ttl-check"})
    with redis.Redis.from_url(get_settings().redis_url) as r:
        keys = list(r.scan_iter(match=f"{get_settings().key_prefix}*", count=1000))
        assert keys
        assert [k for k in keys if r.type(k) != b"none" and r.ttl(k) == -1] == []


def test_long_poll_answers_as_soon_as_the_job_is_final(http) -> None:
    job_id = submit(http, "audio_length", files={"audio": ("a.wav", tone(0.5))})
    started = time.monotonic()
    record = http.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert record["status"] == "SUCCESS"
    assert time.monotonic() - started < 10  # not after 30 s


def test_long_poll_without_a_final_state_answers_after_the_wait(http, site) -> None:
    url = site.add("/slow/tone.wav", tone(0.2), "audio/wav") + "?delay=4"
    job_id = submit(http, "audio_length", json={"url": url})
    record = http.get(f"/v1/jobs/{job_id}", params={"wait": 1}).json()
    assert record["status"] in ("PENDING", "STARTED")
    assert wait_final(http, job_id)["status"] == "SUCCESS"


def test_cancel_a_finished_job_is_409(http) -> None:
    job_id = submit(http, "audio_length", files={"audio": ("a.wav", tone(0.1))})
    wait_final(http, job_id)
    assert_error(http.delete(f"/v1/jobs/{job_id}"), 409, "already_finished")


def test_job_types_and_docs(http) -> None:
    types = http.get("/v1/job-types").json()["job_types"]
    audio = next(t for t in types if t["type"] == "audio_length")
    assert audio["inputs"]["multipart"]["field"] == "audio"
    assert audio["limits"]["max_bytes"] == get_settings().types["audio_length"].max_bytes
    spec = http.get("/openapi.json").json()
    assert {"/v1/jobs/sentiment", "/v1/jobs/detection", "/v1/jobs/audio_length", "/v1/jobs/scrape",
            "/v1/jobs/{job_id}", "/v1/job-types", "/health", "/ready"} <= set(spec["paths"])
    body = spec["paths"]["/v1/jobs/audio_length"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_health_and_ready(http) -> None:
    assert http.get("/health").json() == {"status": "ok"}
    ready = http.get("/ready").json()
    assert ready["status"] == "ready"
    assert ready["checks"] == {"store": "ok", "broker": "ok", "consumers": "ok"}
    assert ready["without_consumers"] == []
    assert all(q["consumers"] >= 1 for q in ready["queues"].values())
