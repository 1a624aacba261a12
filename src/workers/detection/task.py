"""Celery task for `detection` jobs: an uploaded image → labelled boxes."""

from typing import Any

from common.settings import get_settings
from workers.base import JobTask
from workers.celery_app import job_task
from workers.detection import core


class DetectionTask(JobTask):
    keeps_upload = True  # annotated.png is drawn from it on request

    def load_model(self) -> core.Detector:
        s = get_settings()
        return core.load_model(s.detection_model, [s.models_dir], threads=self.torch_threads(),
                               allow_downloads=s.allow_downloads)


@job_task("detection", base=DetectionTask)
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    model = self.model
    image = core.decode(self.upload())
    self.progress(30)  # decoded
    return core.detect(image, model, payload.get("confidence", 0.25), payload.get("max_detections", 100))
