"""Submit a job through the API and follow it to its end."""

from __future__ import annotations

from typing import Any

FINAL = ("SUCCESS", "FAILURE", "REVOKED")


def submit(http: Any, job_type: str, **kwargs: Any) -> str:
    response = http.post(f"/v1/jobs/{job_type}", **kwargs)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def wait_final(http: Any, job_id: str, wait_s: float = 30) -> dict[str, Any]:
    record: dict[str, Any] = http.get(f"/v1/jobs/{job_id}", params={"wait": wait_s}).json()
    assert record.get("status") in FINAL, record
    return record


def run_job(http: Any, job_type: str, **kwargs: Any) -> dict[str, Any]:
    return wait_final(http, submit(http, job_type, **kwargs))
