"""gunicorn settings from the platform's settings: `gunicorn -c src/api/gunicorn_conf.py api.wsgi:app`.

Threaded workers, because a long-poll (`GET /v1/jobs/<id>?wait=30`) holds its thread while it waits: gthread
with a read deadline (`api.read_deadline`), so that slow clients cannot hold the threads (`CLIENT_READ_TIMEOUT_S`).
A request whose body the API will not read to its end (its `Content-Length` passes the route's limit, or
it has none: chunked) closes its connection after the answer (`pre_request`): gunicorn would otherwise read
and discard the rest of the body, on a thread, to keep the connection alive.
Metrics: every worker process writes its counters to files in `PROMETHEUS_MULTIPROC_DIR` (emptied at
start, a dead worker's files merged), so `/metrics` answers the same whichever worker serves it.
"""

import os
import shutil
from pathlib import Path
from typing import Any

from common.logs import gunicorn_logconfig
from common.settings import get_settings

_settings = get_settings()
_metrics_dir = _settings.run_dir / "metrics" / f"api-{_settings.api_port}"
# prometheus_client picks its multiprocess storage from this variable when it is first imported, and the
# master imports it here, before forking: a lazy import in `child_exit` could be re-entered by a second
# worker's exit mid-import (AttributeError: partially initialized module).
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)
from prometheus_client import multiprocess  # noqa: E402

from api.limits import over_limit  # noqa: E402  (after the variable: it imports the app's metrics)

bind = f"{_settings.api_host}:{_settings.api_port}"
workers = _settings.api_workers
worker_class = "api.read_deadline.ReadDeadlineWorker"
threads = _settings.api_threads
graceful_timeout = _settings.max_wait_s + 5
timeout = 120
accesslog = None  # the API logs one line per request itself, with the job id (api.metrics)
logconfig_dict = gunicorn_logconfig(_settings)
raw_env = [f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir}"]


def on_starting(server: object) -> None:
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    Path(_metrics_dir).mkdir(parents=True)


def pre_request(worker: object, req: Any) -> None:
    headers = dict(req.headers)
    length = headers.get("CONTENT-LENGTH")
    declared = int(length) if length is not None and length.isdigit() else None
    if "TRANSFER-ENCODING" in headers or over_limit(req.method, req.path, declared, _settings):
        req.force_close()


def child_exit(server: object, worker: object) -> None:
    multiprocess.mark_process_dead(worker.pid, str(_metrics_dir))  # type: ignore[attr-defined]
