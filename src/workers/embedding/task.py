"""Celery task for `embedding` jobs: one text or a list, embedded as one batch."""

from pathlib import Path
from typing import Any

from common.settings import get_settings
from workers.base import JobTask
from workers.celery_app import job_task
from workers.embedding import core


class EmbeddingTask(JobTask):
    def load_model(self) -> core.Engine:
        s, own = get_settings(), get_settings().types["embedding"]
        folder = None
        if own.model:
            folder = Path(own.model) if Path(own.model).is_absolute() else s.models_dir / own.model
        return core.load_model(folder, threads=self.torch_threads(), batch_size=own.batch_size)


@job_task("embedding", base=EmbeddingTask)
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    engine = self.model
    texts = payload["texts"] if "texts" in payload else [payload["text"]]
    return {"model": engine.name, "dimensions": engine.dimensions, "vectors": core.embed(texts, engine)}
