"""Celery task for `detection` jobs: an uploaded image → labelled boxes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common import records
from common.settings import get_settings
from common.store import get_redis
from workers import lifecycle
from workers.base import JobTask
from workers.celery_app import job_task
from workers.detection import core, drawing

if TYPE_CHECKING:
    from PIL.Image import Image


class DetectionTask(JobTask):
    def load_model(self) -> core.Detector:
        s = get_settings()
        return core.load_model(s.types["detection"].model, [s.models_dir], threads=self.torch_threads(),
                               allow_downloads=s.allow_downloads)

    def keep_for_drawing(self, image: Image, upload_bytes: int) -> None:
        """What `annotated.png` is drawn on, kept as long as the record: the upload when it has at most
        `DETECTION_ANNOTATED_MAX_PIXELS` (kept by the script that stores the job's end), else a smaller preview,
        never larger than the upload, whose size the owner's kept bytes reserved at the submit."""
        preview = drawing.preview(image, get_settings().types["detection"].annotated_max_pixels, upload_bytes)
        run = self.current
        run.keeps_upload = preview is None
        if preview is not None:
            run.kept_bytes = len(preview)  # counted against the job's owner when its end is stored
            key, ttl_s = records.preview_key(run.job_id), get_settings().result_ttl_s
            lifecycle.stored(run, "store its preview", lambda: get_redis().set(key, preview, ex=ttl_s))


@job_task("detection", base=DetectionTask)
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    model = self.model
    upload = self.upload()
    image = core.decode(upload)
    self.progress(30)  # decoded
    result = core.detect(image, model, payload.get("confidence", 0.25), payload.get("max_detections", 100))
    self.keep_for_drawing(image, len(upload))
    return result
