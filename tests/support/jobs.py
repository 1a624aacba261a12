"""Submit a job through the API and follow it to its end."""

from __future__ import annotations

from typing import Any

import requests

from support.wait import until

FINAL = ("SUCCESS", "FAILURE", "REVOKED")


class ApiSession(requests.Session):
    """A requests session whose paths are relative to one API (e.g. an isolated platform's)."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", 60)
        return super().request(method, f"{self.base_url}{url!s}", *args, **kwargs)


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


def follow(http: Any, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """The job's record once final, long-polling for up to about `timeout_s` (for jobs that take longer
    than one long-poll, e.g. delivered several times)."""
    def final() -> dict[str, Any] | None:
        record: dict[str, Any] = http.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
        return record if record.get("status") in FINAL else None

    return until(final, timeout_s, f"job {job_id} to end")
