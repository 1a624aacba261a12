"""The `detection` job type: an image → labelled boxes, and on request `annotated.png`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from common import media
from common.catalog import Artifact, JobType, Model, TypeSettings, Upload
from common.schemas import StrictModel


class DetectionSettings(TypeSettings):
    env_aliases: ClassVar[dict[str, str]] = {
        "IMAGE_MAX_BYTES": "max_bytes", "IMAGE_MAX_PIXELS": "max_pixels",
        "ANNOTATED_MAX_PIXELS": "annotated_max_pixels", "ANNOTATED_MAX_DRAWING": "annotated_max_drawing"}

    concurrency: int = Field(default=2, ge=1, description="processes of the detection worker pool (each gets "
                                                          "cores ÷ processes threads)")
    max_memory_mb: int = Field(default=1536, ge=0, description=TypeSettings.model_fields["max_memory_mb"].description)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1, description="largest image upload")
    max_pixels: int = Field(default=40_000_000, ge=1, description="largest image, in pixels (checked from the "
                                                                  "header, before decoding)")
    annotated_max_pixels: int = Field(default=4_000_000, ge=1, description=(
        "`annotated.png` is drawn on a preview of at most this many pixels, made by the detection worker from the "
        "image it decoded"))
    annotated_max_drawing: int = Field(default=2, ge=0, description=(
        "`annotated.png` drawings at once per API process; past it a request waits up to 2 s, then answers 503 "
        "with `Retry-After`"))
    model: str = Field(default="yolov8n.pt", description=(
        "YOLO weights: a name looked up in `MODELS_DIR` and ultralytics' folder, or a path; `.onnx` runs on ONNX "
        "Runtime"))


class DetectionOptions(StrictModel):
    confidence: float = Field(default=0.25, ge=0.0, le=1.0, description="Minimum confidence of a box.")
    max_detections: int = Field(default=100, ge=1, le=1000, description="Most boxes returned.")


class Detection(BaseModel):
    label: str
    confidence: float = Field(ge=0, le=1)
    box: list[float] = Field(min_length=4, max_length=4, description="x1, y1, x2, y2 in the image's pixels.")


class ImageSize(BaseModel):
    width: int
    height: int


class DetectionResult(BaseModel):
    detections: list[Detection] = Field(description="Most confident first.")
    image: ImageSize
    model: str
    inference_ms: float


def _check_pixels(data: bytes, settings: DetectionSettings) -> None:
    media.check_image(data, settings.max_pixels)


JOB_TYPE = JobType(
    name="detection",
    summary="Image → labelled boxes (ultralytics YOLO).",
    settings_model=DetectionSettings,
    result_model=DetectionResult,
    image="worker-detection",
    upload=Upload("image", media.sniff_image, "JPEG, PNG or WebP", lambda s: s.max_bytes,
                  options_model=DetectionOptions, check=_check_pixels),
    model=Model("On a machine with internet, `make models` fetches yolov8n.pt into models/ (or set "
                "ALLOW_DOWNLOADS=1); then restart the detection workers."),
    artifacts=(Artifact("annotated.png", "image/png", "The image with its boxes and labels drawn, as a PNG.",
                        renderer="workers.detection.drawing:ANNOTATED", max_at_once_setting="annotated_max_drawing",
                        missing_code="no_annotated_image", operation_id="getAnnotatedImage"),),
    example={"confidence": 0.25},
    keeps_upload=True,
    batches=True,
)
