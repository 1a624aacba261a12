"""detection jobs in batches (`DETECTION_BATCH_MAX`): images of several jobs in one call of the real YOLO network,
each job with the boxes it gets alone, its own `annotated.png`, and a failure of its own."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from PIL import Image

from support import images, models
from support.isolated import isolated_platform
from support.jobs import ApiSession, follow, submit

SMALL = images.scene(320, 240, "PNG")  # under DETECTION_ANNOTATED_MAX_PIXELS: its upload is kept to draw on
BUS, ZIDANE = images.photo("bus.jpg"), images.photo("zidane.jpg")  # over it: a preview is kept


@pytest.fixture(scope="module")
def detection_batches(platform_env: dict[str, str]) -> Iterator[ApiSession]:
    """A detection pool of 1 process gathering up to 4 jobs, waiting up to 1.5 s for them."""
    with (isolated_platform("detection", 1, DETECTION_BATCH_MAX="4", DETECTION_BATCH_WAIT_MS="1500",
                            DETECTION_ANNOTATED_MAX_PIXELS="200000", DETECTION_MODEL=str(models.detection_weights()))
          as (url, _), ApiSession(url) as http):
        yield http


@pytest.fixture(scope="module")
def model() -> Any:
    from workers.detection import core

    return core.load_model(str(models.detection_weights()), [], threads=1)


def submit_images(http: ApiSession, jobs: list[tuple[bytes, dict[str, str]]]) -> list[dict[str, Any]]:
    """Submitted together, followed to their ends."""
    def one(job: tuple[bytes, dict[str, str]]) -> str:
        return submit(http, "detection", files={"image": ("image", job[0])}, data=job[1])

    with ThreadPoolExecutor(len(jobs)) as pool:
        ids = list(pool.map(one, jobs))
    return [follow(http, job_id) for job_id in ids]


def alone(model: Any, data: bytes, options: dict[str, str]) -> list[dict[str, Any]]:
    from workers.detection import core

    found = core.detect(core.decode(data), model, float(options.get("confidence", 0.25)),
                        int(options.get("max_detections", 100)))
    return found["detections"]  # type: ignore[no-any-return]


def assert_same_boxes(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [d["label"] for d in got] == [d["label"] for d in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine["confidence"] == pytest.approx(theirs["confidence"], abs=1e-3)
        assert mine["box"] == pytest.approx(theirs["box"], abs=1.0), (mine, theirs)


def assert_annotated(http: ApiSession, record: dict[str, Any]) -> None:
    response = http.get(f"/v1/jobs/{record['job_id']}/annotated.png")
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png", response.text[:200]
    with Image.open(io.BytesIO(response.content)) as drawn:
        width, height = record["result"]["image"]["width"], record["result"]["image"]["height"]
        assert drawn.format == "PNG" and drawn.width / drawn.height == pytest.approx(width / height, rel=0.02)


def test_jobs_in_a_batch_get_their_own_boxes_and_drawings(detection_batches: ApiSession, model: Any) -> None:
    http = detection_batches
    jobs = [(BUS, {}), (BUS, {"max_detections": "5"}), (BUS, {"confidence": "0.99"}), (ZIDANE, {}),
            (ZIDANE, {"max_detections": "7"}), (SMALL, {}), (SMALL, {"max_detections": "2"}), (BUS, {})]
    ended = submit_images(http, jobs)
    assert all(r["status"] == "SUCCESS" for r in ended), ended
    assert max(r["batch_size"] for r in ended) > 1, [r["batch_size"] for r in ended]
    assert [len(r["result"]["detections"]) for r in ended][1:3] == [5, 0]
    for record, (data, options) in zip(ended, jobs, strict=True):
        assert_same_boxes(record["result"]["detections"], alone(model, data, options))
    for record in ended:
        if record["batch_size"] > 1:
            assert_annotated(http, record)


def test_an_undecodable_member_fails_alone(detection_batches: ApiSession, model: Any) -> None:
    http = detection_batches
    jobs = [(BUS, {}), (BUS[:4000], {}), (SMALL, {}), (ZIDANE, {"max_detections": "3"})]  # a header, then nothing
    ended = submit_images(http, jobs)
    bad = ended[1]
    assert bad["status"] == "FAILURE" and bad["error"]["code"] == "undecodable_image", bad
    assert bad["error"]["message"].startswith("The image cannot be decoded")
    assert bad["batch_size"] > 1, bad  # it ran in a batch with siblings
    siblings = [ended[0], *ended[2:]]
    assert all(r["status"] == "SUCCESS" for r in siblings), siblings
    for record, (data, options) in zip(siblings, [jobs[0], *jobs[2:]], strict=True):
        assert_same_boxes(record["result"]["detections"], alone(model, data, options))
        assert_annotated(http, record)
