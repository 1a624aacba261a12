"""Time limits: `<TYPE>_TIME_LIMIT_S` overrides the catalog's; past the soft limit a job ends FAILURE
`time_limit_exceeded`, a job that ignores it is stopped by the hard limit (15 s later) with the same
code, and the worker runs the next job either way.

An isolated platform with a 2 s audio_length limit, on the test-only `support.fragile_worker` app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.fragile_worker import STUBBORN
from support.isolated import isolated_platform
from support.jobs import ApiSession, follow, submit
from support.media import tone
from support.web import Site

LIMIT_S = 2
# The fetch's read timeout (60 s) outlasts the slow page (20 s), which outlasts the limit: the limit fires.
ENV = {"AUDIO_LENGTH_TIME_LIMIT_S": str(LIMIT_S), "FETCH_ALLOWLIST": "127.0.0.1", "FETCH_READ_TIMEOUT_S": "60"}


@pytest.fixture(scope="module")
def limited() -> Iterator[ApiSession]:
    with (isolated_platform("audio_length", app="support.fragile_worker", **ENV) as (url, _),
          ApiSession(url) as http):
        yield http


def next_job_succeeds(http: ApiSession) -> None:
    record = follow(http, submit(http, "audio_length", files={"audio": ("next.wav", tone(0.5))}))
    assert record["status"] == "SUCCESS" and record["attempts"] == 1, record


def test_the_override_is_the_limit_the_api_shows(limited: ApiSession) -> None:
    types = {t["type"]: t for t in limited.get("/v1/job-types").json()["job_types"]}
    assert types["audio_length"]["limits"]["time_limit_s"] == LIMIT_S


def test_past_the_soft_limit_a_job_fails_and_the_worker_goes_on(limited: ApiSession, site: Site) -> None:
    url = site.add("/limits/slow.wav", tone(0.5), "audio/wav") + "?delay=20"
    record = follow(limited, submit(limited, "audio_length", json={"url": url}))
    assert record["status"] == "FAILURE" and record["attempts"] == 1, record
    assert record["error"] == {"code": "time_limit_exceeded",
                               "message": "The job ran past its time limit and was stopped."}
    next_job_succeeds(limited)


def test_a_job_that_ignores_the_soft_limit_is_stopped_by_the_hard_one(limited: ApiSession, site: Site) -> None:
    record = follow(limited, submit(limited, "audio_length", json={"url": f"{site.url}{STUBBORN}/forever.wav"}))
    assert record["status"] == "FAILURE" and record["attempts"] == 1, record
    assert record["error"]["code"] == "time_limit_exceeded"
    assert f"hard time limit ({LIMIT_S + 15} s)" in record["error"]["message"], record["error"]
    next_job_succeeds(limited)
