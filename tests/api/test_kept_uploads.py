"""Bytes a client keeps in the store after its jobs ended are capped per API key (UPLOAD_BYTES_KEPT): a detection
job keeps its image for `annotated.png` for 48 h, so one key submitting them one after another, each ending,
must not fill Redis for everyone. Real detection jobs on an isolated platform (API under gunicorn, a worker)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from PIL import Image

from common import kept
from common.settings import Settings
from support import models, services
from support.isolated import isolated_platform
from support.jobs import ApiSession, follow

SIZE = (400, 300)


def noise_png() -> bytes:
    """An image PNG cannot compress (its size is its pixels'), unlike any other: each upload counts the same."""
    out = io.BytesIO()
    Image.frombytes("RGB", SIZE, os.urandom(SIZE[0] * SIZE[1] * 3)).save(out, format="PNG")
    return out.getvalue()


UPLOAD = noise_png()
CAP = len(UPLOAD) * 5 // 2  # two uploads fit, a third does not


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[str, str]]:
    """(API URL, key prefix) of a platform with UPLOAD_BYTES_KEPT = 2.5 uploads and keys alpha, beta, gamma."""
    with isolated_platform("detection", API_KEYS="alpha,beta,gamma", UPLOAD_BYTES_KEPT=str(CAP),
                           DETECTION_MODEL=str(models.detection_weights())) as (url, worker):
        yield url, worker.extra["key_prefix"]


def session(url: str, key: str) -> ApiSession:
    http = ApiSession(url)
    http.headers["Authorization"] = f"Bearer {key}"
    return http


def detect(http: ApiSession) -> requests.Response:
    return http.post("/v1/jobs/detection", files={"image": ("noise.png", UPLOAD)})


def run_detection(http: ApiSession) -> dict[str, Any]:
    answer = detect(http)
    assert answer.status_code == 202, answer.text
    record = follow(http, answer.json()["job_id"])
    assert record["status"] == "SUCCESS", record
    return record


def kept_bytes(prefix: str, job_id: str) -> int:
    """What the owner of job `job_id` keeps, as its counters say (the record names one of them; none: nothing)."""
    with redis.Redis.from_url(services.REDIS_URL) as r:
        counter: bytes | None = r.hget(f"{prefix}job:{job_id}", "kept_counter")  # type: ignore[assignment]
        if counter is None:
            return 0
        return sum(int(n) for n in r.mget(kept.counters_of(counter.decode(), Settings())) if n)


def test_one_key_keeping_its_uploads_gets_429_while_another_is_admitted(platform: tuple[str, str]) -> None:
    """Two detection jobs run one after the other (each ends: nothing is in flight) keep 2 uploads; the third
    upload of the same key answers 429 `uploads_kept` with Retry-After (when the first ones expire, about 48 h),
    while another key's upload is admitted and runs."""
    url, prefix = platform
    with session(url, "alpha") as alpha, session(url, "beta") as beta:
        first = [run_detection(alpha)["job_id"] for _ in range(2)]
        assert kept_bytes(prefix, first[0]) == 2 * len(UPLOAD)
        refused = detect(alpha)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "uploads_kept"
        message = refused.json()["error"]["message"]
        assert "UPLOAD_BYTES_KEPT" in message and f"{2 * len(UPLOAD) / 2**20:.1f} MB" in message, message
        assert 47 * 3600 < int(refused.headers["Retry-After"]) <= 49 * 3600 + 60
        run_detection(beta)
        assert kept_bytes(prefix, first[0]) == 2 * len(UPLOAD)  # the refused upload counts nothing


def test_a_cached_annotated_png_counts_and_past_the_cap_it_is_not_cached(platform: tuple[str, str]) -> None:
    """gamma's first job keeps its upload; its annotated.png is cached and counted with it, so that a second upload
    (which alone would fit) answers 429."""
    url, prefix = platform
    with session(url, "gamma") as gamma, redis.Redis.from_url(services.REDIS_URL) as r:
        first = run_detection(gamma)["job_id"]
        drawn = gamma.get(f"/v1/jobs/{first}/annotated.png")
        assert drawn.status_code == 200
        png = len(drawn.content)
        assert len(UPLOAD) // 2 < png <= len(UPLOAD) * 3 // 2, (png, len(UPLOAD))  # the premise of the cap
        assert r.get(f"{prefix}annotated:{first}") == drawn.content
        assert kept_bytes(prefix, first) == len(UPLOAD) + png
        refused = detect(gamma)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "uploads_kept", refused.text


def test_past_the_cap_a_drawing_is_served_but_not_cached(platform: tuple[str, str]) -> None:
    """A key keeping two uploads (within the cap) gets the drawing of each, but the store keeps neither: with it,
    the key would pass its cap."""
    url, prefix = platform
    with session(url, "beta") as beta, redis.Redis.from_url(services.REDIS_URL) as r:
        jobs = [run_detection(beta)["job_id"]]
        if kept_bytes(prefix, jobs[0]) < 2 * len(UPLOAD):  # beta ran one in the first test, unless run alone
            jobs.append(run_detection(beta)["job_id"])
        assert kept_bytes(prefix, jobs[0]) == 2 * len(UPLOAD)
        for job_id in jobs:
            drawn = beta.get(f"/v1/jobs/{job_id}/annotated.png")
            assert drawn.status_code == 200 and drawn.content.startswith(b"\x89PNG")
            assert r.get(f"{prefix}annotated:{job_id}") is None
        assert kept_bytes(prefix, jobs[0]) == 2 * len(UPLOAD)


def test_a_preview_kept_instead_of_the_upload_is_what_counts() -> None:
    """An upload of more than DETECTION_ANNOTATED_MAX_PIXELS is dropped at the job's end and a smaller preview
    kept: the owner's kept bytes are the preview's, not the upload's (reserved until then)."""
    with isolated_platform("detection", API_KEYS="alpha", DETECTION_ANNOTATED_MAX_PIXELS="10000",
                           DETECTION_MODEL=str(models.detection_weights())) as (url, worker), \
            session(url, "alpha") as alpha, redis.Redis.from_url(services.REDIS_URL) as r:
        prefix = worker.extra["key_prefix"]
        job_id = run_detection(alpha)["job_id"]
        preview: bytes = r.get(f"{prefix}preview:{job_id}")  # type: ignore[assignment]
        assert preview and len(preview) < len(UPLOAD) and not r.exists(f"{prefix}source:{job_id}")
        assert kept_bytes(prefix, job_id) == len(preview)
