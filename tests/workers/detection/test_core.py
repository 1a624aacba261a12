"""detection.core on the real yolov8n network (random weights the tests make offline) and real photos."""

from pathlib import Path

import pytest

from common.errors import InputError
from support import images
from support.models import DETECTION_WEIGHTS, detection_weights
from workers.detection import core


@pytest.fixture(scope="module")
def weights() -> Path:
    return detection_weights()  # made once per machine, under run/test-models


@pytest.fixture(scope="module")
def model(weights: Path) -> core.Detector:
    return core.load_model(DETECTION_WEIGHTS, [weights.parent], threads=2)


def assert_inside(result: dict, width: int, height: int) -> None:
    assert result["image"] == {"width": width, "height": height}
    assert result["detections"], "the test weights see people everywhere"
    for det in result["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, det
        assert det["label"] == "person" and 0.25 <= det["confidence"] <= 1
    confidences = [d["confidence"] for d in result["detections"]]
    assert confidences == sorted(confidences, reverse=True)


@pytest.mark.parametrize("name", list(images.PHOTOS))
def test_photos_shipped_with_ultralytics(model: core.Detector, name: str) -> None:
    result = core.detect(core.decode(images.photo(name)), model)
    assert set(result) == {"detections", "image", "model", "inference_ms"}
    assert_inside(result, *images.PHOTOS[name])
    assert result["model"] == DETECTION_WEIGHTS and result["inference_ms"] > 0


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG"])
def test_boxes_are_in_the_original_pixels(model: core.Detector, fmt: str) -> None:
    result = core.detect(core.decode(images.scene(1920, 480, fmt)), model)
    assert_inside(result, 1920, 480)
    assert max(d["box"][2] for d in result["detections"]) > 1280  # not the network's 640 × 640 input


def test_exif_orientation_turns_the_image_upright(model: core.Detector) -> None:
    result = core.detect(core.decode(images.scene(640, 320, "JPEG", orientation=6)), model)  # rotated 90°
    assert_inside(result, 320, 640)


def test_confidence_and_max_detections(model: core.Detector) -> None:
    image = core.decode(images.photo("bus.jpg"))
    assert len(core.detect(image, model, max_detections=3)["detections"]) == 3
    assert core.detect(image, model, confidence=0.99)["detections"] == []  # the test weights say 0.95


def test_detect_many_gives_each_image_what_it_gets_alone(model: core.Detector) -> None:
    """Several images of two sizes, each with its own options, in one `detect_many`: the boxes of each are
    those `detect` finds in it alone (the lowest confidence and highest count of a call are cut per image)."""
    bus, zidane = (core.decode(images.photo(name)) for name in ("bus.jpg", "zidane.jpg"))
    jobs = [(bus, (0.25, 100)), (zidane, (0.25, 7)), (bus, (0.99, 100)), (bus, (0.25, 5)), (zidane, (0.5, 100))]
    many = core.detect_many([image for image, _ in jobs], model, [options for _, options in jobs])
    alone = [core.detect(image, model, *options) for image, options in jobs]
    assert [r["detections"] for r in many] == [r["detections"] for r in alone]
    assert [len(r["detections"]) for r in many][1:4] == [7, 0, 5]
    assert [r["image"] for r in many] == [r["image"] for r in alone]


@pytest.mark.parametrize("data", [b"\xff\xd8\xff" + b"not a jpeg" * 50, images.photo("bus.jpg")[:5000]],
                         ids=["garbage", "truncated"])
def test_undecodable_image_is_an_input_error(data: bytes) -> None:
    with pytest.raises(InputError) as caught:
        core.decode(data)
    assert caught.value.code == "undecodable_image"


def test_missing_weights_say_where_to_put_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        core.load_model("yolov8n-absent.pt", [tmp_path])
    assert caught.value.code == "model_unavailable"
    assert f"{tmp_path}/" in caught.value.message and "make models" in caught.value.message


def test_a_pt_saved_by_the_test_loads_by_absolute_path(weights: Path) -> None:
    detector = core.load_model(str(weights), [])
    assert detector.name == DETECTION_WEIGHTS and detector.backend == "pytorch"


def test_a_model_config_is_not_weights(tmp_path: Path) -> None:
    (tmp_path / "yolov8n.yaml").write_text("nc: 80\n")
    with pytest.raises(InputError, match=r"not a \.pt or \.onnx"):
        core.load_model("yolov8n.yaml", [tmp_path])


def test_onnx_runtime_path(weights: Path, tmp_path: Path) -> None:
    from workers.detection.weights import export_onnx

    onnx = export_onnx(_copy(weights, tmp_path))
    detector = core.load_model(onnx.name, [tmp_path])
    assert detector.backend == "onnxruntime" and detector.name == onnx.name
    # every score of the test weights ties at 0.95, so NMS may keep other boxes than PyTorch: compare the shape
    assert_inside(core.detect(core.decode(images.photo("bus.jpg")), detector), 810, 1080)
    bus = core.decode(images.photo("bus.jpg"))
    many = core.detect_many([bus, bus], detector, [(0.25, 100), (0.25, 3)])  # a batch of 2 through the session
    assert_inside(many[0], 810, 1080)
    assert len(many[1]["detections"]) == 3


def _copy(path: Path, folder: Path) -> Path:
    target = folder / path.name
    target.write_bytes(path.read_bytes())
    return target
