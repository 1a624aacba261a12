"""gunicorn settings from the platform's settings: `gunicorn -c src/api/gunicorn_conf.py api.wsgi:app`.

Threaded workers, because a long-poll (`GET /v1/jobs/<id>?wait=30`) holds its thread while it waits.
Metrics: every worker process writes its counters to files in `PROMETHEUS_MULTIPROC_DIR` (emptied at
start, a dead worker's files merged), so `/metrics` answers the same whichever worker serves it.
"""

import os
import shutil
from pathlib import Path

from common.logs import gunicorn_logconfig
from common.settings import get_settings

_settings = get_settings()
_metrics_dir = _settings.run_dir / "metrics" / f"api-{_settings.api_port}"
# prometheus_client picks its multiprocess storage from this variable when it is first imported, and the
# master imports it here, before forking: a lazy import in `child_exit` could be re-entered by a second
# worker's exit mid-import (AttributeError: partially initialized module).
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)
from prometheus_client import multiprocess  # noqa: E402

bind = f"{_settings.api_host}:{_settings.api_port}"
workers = _settings.api_workers
worker_class = "gthread"
threads = _settings.api_threads
graceful_timeout = _settings.max_wait_s + 5
timeout = 120
accesslog = None  # the API logs one line per request itself, with the job id (api.metrics)
logconfig_dict = gunicorn_logconfig(_settings)
raw_env = [f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir}"]


def on_starting(server: object) -> None:
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    Path(_metrics_dir).mkdir(parents=True)


def child_exit(server: object, worker: object) -> None:
    multiprocess.mark_process_dead(worker.pid, str(_metrics_dir))  # type: ignore[attr-defined]
