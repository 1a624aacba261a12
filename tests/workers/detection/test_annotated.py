"""annotated.png has a bounded cost: drawn on a preview of at most DETECTION_ANNOTATED_MAX_PIXELS (made by
the worker, which decodes the image anyway), cached as long as its job, at most DETECTION_ANNOTATED_MAX_DRAWING
at once per API process."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from PIL import Image

from api import jobs
from common import records
from common.settings import get_settings
from common.store import get_redis
from support import images, models, services
from support.isolated import isolated_platform
from support.jobs import ApiSession, follow, run_job, submit
from support.rss import family, peak_rss_mb, rss_mb

FORTY_MP = (8000, 4999)  # 39,992,000 pixels: just under DETECTION_MAX_PIXELS (40,000,000)
GROWTH_LIMIT_MB = 150


def test_annotated_png_of_a_40_megapixel_upload_keeps_the_api_small() -> None:
    """4 concurrent GETs: gunicorn's master and 2 workers together grow by less than 150 MB (decoding the
    upload itself would take 120 MB per request)."""
    with (isolated_platform("detection", API_WORKERS="2", DETECTION_MODEL=str(models.detection_weights())) as
          (url, worker), ApiSession(url) as http):
        upload = images.scene(*FORTY_MP, "PNG")
        record = follow(http, submit(http, "detection", files={"image": ("big.png", upload)}))
        assert record["status"] == "SUCCESS", record
        assert record["result"]["image"] == {"width": FORTY_MP[0], "height": FORTY_MP[1]}
        assert_kept(worker.extra["key_prefix"], record["job_id"], upload=False)
        api = int(worker.extra["api_pid"])
        before = rss_mb(family(api))
        annotated = f"{url}/v1/jobs/{record['job_id']}/annotated.png"
        with peak_rss_mb(lambda: family(api)) as peak, ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda _: requests.get(annotated, timeout=60), range(4)))
        growth = peak["mb"] - before
        print(f"API RSS {before:.0f} MB before, peak {peak['mb']:.0f} MB during 4 GETs: +{growth:.0f} MB")
        assert [r.status_code for r in responses] == [200] * 4, [r.text[:200] for r in responses]
        with Image.open(io.BytesIO(responses[0].content)) as drawn:
            assert drawn.size == (2530, 1580)  # DETECTION_ANNOTATED_MAX_PIXELS: 4,000,000
        assert len({r.content for r in responses}) == 1
        assert growth < GROWTH_LIMIT_MB


def assert_kept(prefix: str, job_id: str, upload: bool) -> None:
    """What a finished detection job keeps to draw on: its upload (small) or a preview (large), as long as
    its record; never both, and nothing once the record is gone."""
    with redis.Redis.from_url(services.REDIS_URL) as r:
        kept = {name: r.ttl(f"{prefix}{name}:{job_id}") for name in ("blob", "source", "preview")}
        record_ttl = r.ttl(f"{prefix}job:{job_id}")
    assert kept["blob"] == -2, kept  # -2: no such key
    assert (kept["source"] > 0) is upload and (kept["preview"] > 0) is not upload, kept
    assert 0 < max(kept.values()) <= record_ttl


@pytest.fixture
def finished_detection(http, workers) -> str:
    record = run_job(http, "detection", files={"image": ("scene.png", images.scene(1600, 900))})
    assert record["status"] == "SUCCESS", record
    return str(record["job_id"])


def test_a_small_upload_is_kept_and_the_drawing_is_cached(http, finished_detection: str) -> None:
    r = get_redis()
    job = records.job_key(finished_detection)
    assert_kept(get_settings().key_prefix, finished_detection, upload=True)
    assert r.get(records.annotated_key(finished_detection)) is None  # nothing drawn yet
    first = http.get(f"/v1/jobs/{finished_detection}/annotated.png")
    assert first.status_code == 200
    assert r.get(records.annotated_key(finished_detection)) == first.content
    assert 0 < r.ttl(records.annotated_key(finished_detection)) <= r.ttl(job)
    assert http.get(f"/v1/jobs/{finished_detection}/annotated.png").content == first.content


def test_past_the_drawing_limit_a_request_gets_503(client, finished_detection: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """While this API process draws as many images as DETECTION_ANNOTATED_MAX_DRAWING allows, another waits up to
    2 s for a turn, then answers 503 with Retry-After."""
    busy = threading.BoundedSemaphore(1)
    monkeypatch.setitem(jobs.RENDERINGS, ("detection", "annotated.png"), busy)
    busy.acquire()  # another request's drawing, under way
    try:
        refused = client.get(f"/v1/jobs/{finished_detection}/annotated.png")
    finally:
        busy.release()
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert refused.get_json()["error"]["code"] == "busy"
    assert client.get(f"/v1/jobs/{finished_detection}/annotated.png").status_code == 200
