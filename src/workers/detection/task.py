"""Celery task for `detection` jobs (its model worker comes with the model issue)."""

from typing import Any

from common.errors import InputError
from workers.celery_app import job_task


@job_task("detection")
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    raise InputError("detection workers are not available yet.", code="not_implemented")
