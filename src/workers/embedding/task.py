"""Celery task for `embedding` jobs: one text or a list, embedded as one batch; with `EMBEDDING_BATCH_MAX` > 1,
several jobs' texts in one engine call (`workers.batching`)."""

from pathlib import Path
from typing import Any

from common.errors import InputError
from common.settings import get_settings
from workers import batching
from workers.base import JobTask
from workers.celery_app import job_task
from workers.embedding import core
from workers.lifecycle import JobRun


class EmbeddingTask(batching.ByTexts, JobTask):
    def load_model(self) -> core.Engine:
        s, own = get_settings(), get_settings().types["embedding"]
        folder = None
        if own.model:
            folder = Path(own.model) if Path(own.model).is_absolute() else s.models_dir / own.model
        engine = core.load_model(folder, threads=self.torch_threads(), batch_size=own.batch_size)
        most = core.result_bound(own.max_texts, engine.dimensions)
        if most > s.result_max_bytes:  # every full job would be computed, then refused `result_too_large`
            raise InputError(f"EMBEDDING_MAX_TEXTS={own.max_texts} vectors of {engine.dimensions} floats can take "
                             f"{most} bytes, past RESULT_MAX_BYTES={s.result_max_bytes}: lower the one or raise the "
                             "other, then restart the embedding workers.", code="model_unavailable")
        return engine

    def run_batch(self, payloads: list[dict[str, Any]], runs: list[JobRun]) -> list[dict[str, object]]:
        """Each job's result, every job's texts embedded in one call."""
        engine = self.model
        texts = [p["texts"] if "texts" in p else [p["text"]] for p in payloads]
        vectors = iter(core.embed([text for own in texts for text in own], engine))
        return [{"model": engine.name, "dimensions": engine.dimensions, "vectors": [next(vectors) for _ in own]}
                for own in texts]


@job_task("embedding", base=EmbeddingTask)
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    return batching.run(self, payload)  # type: ignore[no-any-return]
