"""Flower, with a Broker page that lists every job queue: `python -m launcher.flower <flower options>`.

Flower 2.2 lists only the queues its known workers consume, so a queue whose workers are all down
(the one whose depth matters most) would vanish from the page. This entry point adds the catalog's
queues to that list, then runs Flower's own command (`celery -A workers.celery_app flower ...`).
"""

from __future__ import annotations

import sys
from typing import Any

from flower.views import BaseHandler

from common.catalog import CATALOG

_consumed_queue_names = BaseHandler.get_active_queue_names


def every_job_queue(handler: Any) -> list[str]:
    return sorted(set(_consumed_queue_names(handler)) | {t.queue for t in CATALOG})


def main(argv: list[str]) -> None:
    from celery.bin.celery import main as celery_main

    BaseHandler.get_active_queue_names = every_job_queue  # type: ignore[method-assign]
    sys.argv = ["celery", "-A", "workers.celery_app", "flower", *argv]
    celery_main()


if __name__ == "__main__":
    main(sys.argv[1:])
