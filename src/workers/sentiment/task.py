"""Celery task for `sentiment` jobs: one text, or a list labelled as one batch."""

from typing import Any

from common.settings import get_settings
from workers.base import JobTask
from workers.celery_app import job_task
from workers.sentiment import core


class SentimentTask(JobTask):
    def load_model(self) -> core.Engine:
        s, own = get_settings(), get_settings().types["sentiment"]
        return core.load_model(own.model, [s.models_dir], allow_downloads=s.allow_downloads,
                               batch_size=own.batch_size, threads=self.torch_threads())


@job_task("sentiment", base=SentimentTask)
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    engine = self.model
    if "texts" in payload:
        return {"results": core.analyze(payload["texts"], engine), "model": engine.name}
    return {**core.analyze([payload["text"]], engine)[0], "model": engine.name}
