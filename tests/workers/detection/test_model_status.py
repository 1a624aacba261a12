"""A type whose model no live worker has: the submit answers 503 `model_unavailable` with the worker's own
sentence (where to put the file), instead of accepting a job that fails at once. Real API (gunicorn), real
detection pools, one with weights missing, on their own vhost and key prefix."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from common import model_status
from launcher import platform as launcher_platform
from support import images, services
from support.models import detection_weights
from support.processes import Proc, env_for, free_port, start_worker
from support.wait import until

MISSING = "yolov8n-absent.pt"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], list[Proc]]]:
    """(API URL, platform env, the processes to stop): the API only, no worker yet."""
    vhost, prefix, port = services.create_vhost(), f"test-{uuid.uuid4().hex[:8]}:", free_port()
    env = env_for(vhost, prefix, API_PORT=str(port), API_WORKERS="1", ALLOW_DOWNLOADS="0")
    api, url = launcher_platform.start_api(env)
    procs = [api]
    try:
        yield url, env, procs
    finally:
        for proc in reversed(procs):
            proc.stop()
        services.delete_vhost(vhost)
        services.delete_keys(prefix)


def submit(url: str) -> requests.Response:
    return requests.post(f"{url}/v1/jobs/detection", files={"image": ("a.png", images.scene(64, 64))}, timeout=10)


def model(url: str) -> dict | None:
    return requests.get(f"{url}/ready", timeout=10).json()["queues"]["detection"].get("model")


def test_submit_is_503_while_no_live_worker_has_the_model(platform, tmp_path: Path) -> None:
    url, env, procs = platform
    early = submit(url)  # no worker has reported: accepted
    assert early.status_code == 202, early.text

    blind = start_worker({**env, "DETECTION_MODEL": MISSING, "MODELS_DIR": str(tmp_path)}, "detection",
                         f"detection-blind-{uuid.uuid4().hex[:6]}")
    procs.append(blind)
    job_url = f"{url}/v1/jobs/{early.json()['job_id']}"
    record = until(lambda: (r := requests.get(job_url, params={"wait": 20}, timeout=30).json())["status"]
                   in ("SUCCESS", "FAILURE") and r, 90, "the early job to end")
    assert record["status"] == "FAILURE" and record["error"]["code"] == "model_unavailable", record
    hint = record["error"]["message"]
    assert MISSING in hint and f"{tmp_path}/" in hint and "make models" in hint

    status = until(lambda: model(url), 60, "the blind worker's model status")
    assert status["status"] == "unavailable" and status["message"] == hint
    assert status["workers"] == {"loaded": 0, "unavailable": 1}
    refused = submit(url)
    assert refused.status_code == 503, refused.text
    assert refused.json() == {"error": {"code": "model_unavailable", "message": hint}}
    assert int(refused.headers["Retry-After"]) > 0

    weights = detection_weights()
    seeing = start_worker({**env, "DETECTION_MODEL": weights.name, "MODELS_DIR": str(weights.parent)}, "detection",
                          f"detection-seeing-{uuid.uuid4().hex[:6]}")
    procs.append(seeing)
    status = until(lambda: (m := model(url)) and m["status"] == "loaded" and m, 120, "the seeing worker's model")
    assert status["model"] == weights.name and status["workers"] == {"loaded": 1, "unavailable": 1}
    assert submit(url).status_code == 202  # one worker has it: accepted (RabbitMQ may give it to either)

    seeing.stop()  # a clean stop withdraws its entry
    until(lambda: submit(url).status_code == 503, 30, "the submit refused again once the seeing worker stopped")

    pool = [psutil.Process(blind.pid), *psutil.Process(blind.pid).children(recursive=True)]
    for process in pool:  # the parent first (else it replaces its children): nothing withdraws its entry
        process.send_signal(signal.SIGKILL)
    until(lambda: submit(url).status_code == 202, model_status.FRESH_S + 30,
          "the submit accepted once the killed worker's status went stale")
    assert model(url) is None
