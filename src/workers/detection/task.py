"""Celery task for `detection` jobs: an uploaded image → labelled boxes; with `DETECTION_BATCH_MAX` > 1, several
jobs' images in one call of the model (`workers.batching`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common import records
from common.settings import get_settings
from common.store import get_redis
from workers import batching, lifecycle
from workers.base import JobTask
from workers.celery_app import job_task
from workers.detection import core, drawing
from workers.lifecycle import JobRun

if TYPE_CHECKING:
    from PIL.Image import Image


class DetectionTask(JobTask):
    def load_model(self) -> core.Detector:
        s = get_settings()
        return core.load_model(s.types["detection"].model, [s.models_dir], threads=self.torch_threads(),
                               allow_downloads=s.allow_downloads)

    def run_batch(self, payloads: list[dict[str, Any]], runs: list[JobRun]) -> list[dict[str, object]]:
        """Each job's boxes, every job's image detected in one call; an image that cannot be decoded raises (the
        batch then runs one by one, and that job fails alone)."""
        model = self.model
        uploads = [lifecycle.read_upload(run) for run in runs]
        images = []
        for run, upload in zip(runs, uploads, strict=True):
            images.append(core.decode(upload))
            lifecycle.progress(run, 30)  # decoded
        options = [(p.get("confidence", 0.25), p.get("max_detections", 100)) for p in payloads]
        results = core.detect_many(images, model, options)
        for run, image, upload in zip(runs, images, uploads, strict=True):
            keep_for_drawing(run, image, len(upload))
        return results


def keep_for_drawing(run: JobRun, image: Image, upload_bytes: int) -> None:
    """What `annotated.png` of `run`'s job is drawn on, kept as long as the record: the upload when it has at most
    `DETECTION_ANNOTATED_MAX_PIXELS` (kept by the script that stores the job's end), else a smaller preview, never
    larger than the upload, whose size the owner's kept bytes reserved at the submit."""
    preview = drawing.preview(image, get_settings().types["detection"].annotated_max_pixels, upload_bytes)
    run.keeps_upload = preview is None
    if preview is not None:
        run.kept_bytes = len(preview)  # counted against the job's owner when its end is stored
        key, ttl_s = records.preview_key(run.job_id), get_settings().result_ttl_s
        lifecycle.stored(run, "store its preview", lambda: get_redis().set(key, preview, ex=ttl_s))


@job_task("detection", base=DetectionTask)
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    return batching.run(self, payload)  # type: ignore[no-any-return]
