"""Celery task for `audio_length` jobs: an upload (kept in Redis) or a URL."""

from typing import Any

from common.settings import get_settings
from workers.audio_length import core
from workers.base import JobTask
from workers.celery_app import job_task
from workers.fetch import fetch, limits_from_settings


class AudioLengthTask(JobTask):
    def load_model(self) -> str:
        return core.load_model()


@job_task("audio_length", base=AudioLengthTask)
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    limits = get_settings().types["audio_length"]
    if "url" in payload:
        data = fetch(payload["url"], limits_from_settings(limits.max_bytes), ok_only=True).content
    else:
        data = self.upload()
    return core.measure(data, limits.max_seconds)
