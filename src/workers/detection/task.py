"""Celery task for `detection` jobs: an uploaded image → labelled boxes."""

from typing import Any

from common import drawing, records
from common.settings import get_settings
from common.store import get_redis
from workers.base import JobTask
from workers.celery_app import job_task
from workers.detection import core


class DetectionTask(JobTask):
    def load_model(self) -> core.Detector:
        s = get_settings()
        return core.load_model(s.detection_model, [s.models_dir], threads=self.torch_threads(),
                               allow_downloads=s.allow_downloads)

    def keep_preview(self, preview: bytes) -> None:
        """What `annotated.png` is drawn on (never the upload when it is larger), kept as long as the record."""
        key, ttl_s = records.preview_key(self.request.id), get_settings().result_ttl_s
        self._store("store its preview", lambda: get_redis().set(key, preview, ex=ttl_s))


@job_task("detection", base=DetectionTask)
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    model, data = self.model, self.upload()
    image = core.decode(data)
    self.progress(30)  # decoded
    result = core.detect(image, model, payload.get("confidence", 0.25), payload.get("max_detections", 100))
    self.keep_preview(drawing.preview(data, image, get_settings().annotated_max_pixels))
    return result
