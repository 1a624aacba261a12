"""Celery task for `sentiment` jobs: one text, or a list labelled as one batch; with `SENTIMENT_BATCH_MAX` > 1,
several jobs' texts in one engine call (`workers.batching`)."""

from typing import Any

from common.settings import get_settings
from workers import batching
from workers.base import JobTask
from workers.celery_app import job_task
from workers.lifecycle import JobRun
from workers.sentiment import core


class SentimentTask(batching.ByTexts, JobTask):
    def load_model(self) -> core.Engine:
        s, own = get_settings(), get_settings().types["sentiment"]
        return core.load_model(own.model, [s.models_dir], allow_downloads=s.allow_downloads,
                               batch_size=own.batch_size, threads=self.torch_threads())

    def run_batch(self, payloads: list[dict[str, Any]], runs: list[JobRun]) -> list[dict[str, object]]:
        """Each job's result, every job's texts labelled in one call."""
        engine = self.model
        texts = [p["texts"] if "texts" in p else [p["text"]] for p in payloads]
        labels = iter(core.analyze([text for own in texts for text in own], engine))
        results = [[next(labels) for _ in own] for own in texts]
        return [{"results": mine, "model": engine.name} if "texts" in p else {**mine[0], "model": engine.name}
                for p, mine in zip(payloads, results, strict=True)]


@job_task("sentiment", base=SentimentTask)
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    return batching.run(self, payload)  # type: ignore[no-any-return]
