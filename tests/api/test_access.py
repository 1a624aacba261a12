"""API keys and per-key rate limits (through Flask's test client, real RabbitMQ and Redis)."""

from __future__ import annotations

import uuid

import pytest

from common.settings import get_settings

KEY_A, KEY_B = "key-a-" + uuid.uuid4().hex, "key-b-" + uuid.uuid4().hex
JOB = {"url": "http://127.0.0.1:9/", "selectors": {"t": "title"}}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(platform_env):
    from api import create_app

    settings = get_settings().model_copy(update=dict(api_keys=f"{KEY_A},{KEY_B}",
                                                     rate_limit="", key_prefix=f"{get_settings().key_prefix}access:"))
    return create_app(settings).test_client()


def test_v1_needs_a_key_but_health_stays_open(keyed) -> None:
    for response in (keyed.get("/v1/job-types"), keyed.post("/v1/jobs/scrape", json=JOB),
                     keyed.get("/v1/job-types", headers=bearer("wrong")),
                     keyed.get("/v1/job-types", headers={"Authorization": KEY_A})):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/v1/job-types", headers=bearer(KEY_A)).status_code == 200


def test_a_job_is_visible_only_to_the_key_that_created_it(keyed) -> None:
    job_id = keyed.post("/v1/jobs/scrape", json=JOB, headers=bearer(KEY_A)).get_json()["job_id"]
    assert keyed.get(f"/v1/jobs/{job_id}", headers=bearer(KEY_A)).status_code == 200
    other = keyed.get(f"/v1/jobs/{job_id}", headers=bearer(KEY_B))
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "not_found"
    assert keyed.delete(f"/v1/jobs/{job_id}", headers=bearer(KEY_B)).status_code == 404
    assert keyed.get(f"/v1/jobs/{job_id}", query_string={"wait": 1}, headers=bearer(KEY_B)).status_code == 404
    assert keyed.get(f"/v1/jobs/{job_id}/events", headers=bearer(KEY_B)).status_code == 404


def test_idempotency_keys_are_per_api_key(keyed) -> None:
    headers = {"Idempotency-Key": "same"}
    first = keyed.post("/v1/jobs/scrape", json=JOB, headers={**headers, **bearer(KEY_A)})
    second = keyed.post("/v1/jobs/scrape", json=JOB, headers={**headers, **bearer(KEY_B)})
    assert first.status_code == 202 and second.status_code == 202
    assert first.get_json()["job_id"] != second.get_json()["job_id"]


def test_rate_limit_per_key_is_429_with_retry_after(platform_env) -> None:
    from api import create_app

    settings = get_settings().model_copy(update=dict(api_keys=f"{KEY_A},{KEY_B}", rate_limit="3/minute",
                                                     key_prefix=f"{get_settings().key_prefix}limit-{uuid.uuid4().hex[:6]}:"))
    client = create_app(settings).test_client()
    codes = [client.get("/v1/job-types", headers=bearer(KEY_A)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/v1/job-types", headers=bearer(KEY_A))
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    assert client.get("/v1/job-types", headers=bearer(KEY_B)).status_code == 200  # another key has its own budget
    assert client.get("/health").status_code == 200
