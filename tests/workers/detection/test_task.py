"""detection jobs end to end: HTTP upload → RabbitMQ → a real worker (yolov8n) → Redis → HTTP, and the drawing."""

import io

import pytest
from PIL import Image

from support import images
from support.jobs import run_job, submit
from support.models import DETECTION_WEIGHTS
from support.wait import until


@pytest.fixture(autouse=True)
def _workers(workers: object) -> None:
    pass


def detect(http, data: bytes, name: str = "image.jpg", **options: object) -> dict:
    return run_job(http, "detection", files={"image": (name, data)}, data=options)


@pytest.mark.parametrize("name", list(images.PHOTOS))
def test_photos_are_detected_in_their_own_pixels(http, name: str) -> None:
    record = detect(http, images.photo(name), name)
    assert record["status"] == "SUCCESS", record
    assert record["progress"] == 100 and record["attempts"] == 1
    result = record["result"]
    assert set(result) == {"detections", "image", "model", "inference_ms"}
    width, height = images.PHOTOS[name]
    assert result["image"] == {"width": width, "height": height}
    assert result["model"] == DETECTION_WEIGHTS and result["inference_ms"] > 0
    assert result["detections"]
    for det in result["detections"]:
        assert set(det) == {"label", "confidence", "box"}
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def test_annotated_png_is_the_image_with_its_boxes(http) -> None:
    record = detect(http, images.scene(1600, 900, "WEBP"), "scene.webp", max_detections=4)
    assert record["status"] == "SUCCESS", record
    assert len(record["result"]["detections"]) == 4
    assert max(d["box"][2] for d in record["result"]["detections"]) > 640
    response = http.get(f"/v1/jobs/{record['job_id']}/annotated.png")
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    drawn = Image.open(io.BytesIO(response.content))
    assert drawn.format == "PNG" and drawn.size == (1600, 900)


def test_options_reach_the_model(http) -> None:
    record = detect(http, images.scene(640, 480, "JPEG"), confidence="0.99")
    assert record["status"] == "SUCCESS" and record["result"]["detections"] == []  # the test weights say 0.95


def test_annotated_png_only_for_succeeded_detection_jobs(http) -> None:
    sentiment = run_job(http, "sentiment", json={"text": "fine"})
    response = http.get(f"/v1/jobs/{sentiment['job_id']}/annotated.png")
    assert response.status_code == 404 and response.json()["error"]["code"] == "no_annotated_image"
    failed = detect(http, images.photo("bus.jpg")[:4000])  # a header, then nothing
    assert failed["status"] == "FAILURE" and failed["error"]["code"] == "undecodable_image", failed
    assert http.get(f"/v1/jobs/{failed['job_id']}/annotated.png").status_code == 404
    assert http.get("/v1/jobs/no-such-job/annotated.png").status_code == 404


@pytest.mark.parametrize("data, status, code", [
    (b"just some text, named like a photo", 415, "unsupported_media_type"),
    (images.png_header(8000, 6000), 413, "too_many_pixels"),  # 48 megapixels, declared in 33 bytes
    (images.png_header(20000, 20000), 413, "too_many_pixels"),  # beyond Pillow's decompression-bomb guard
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 400, "undecodable_image"),
    (b"\xff\xd8\xff" + b"\x00" * (10 * 1024 * 1024), 413, "too_large"),
])
def test_uploads_are_checked_before_queueing(http, data: bytes, status: int, code: str) -> None:
    response = http.post("/v1/jobs/detection", files={"image": ("photo.jpg", data)})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("options", [{"confidence": "1.5"}, {"max_detections": "0"}, {"colour": "red"}])
def test_bad_options_are_refused(http, options: dict) -> None:
    response = http.post("/v1/jobs/detection", files={"image": ("a.png", images.scene(64, 64))}, data=options)
    assert response.status_code == 400, response.text


def test_ready_shows_the_loaded_model(http) -> None:
    submit(http, "detection", files={"image": ("a.png", images.scene(64, 64))})  # the child is up once it ran
    def loaded() -> dict | None:
        model = http.get("/ready").json()["queues"]["detection"].get("model")
        return model if model and model["status"] == "loaded" else None

    model = until(loaded, 60, "the detection workers' model status")
    assert model["model"] == DETECTION_WEIGHTS and model["load_s"] > 0 and model["rss_mb"] > 0
