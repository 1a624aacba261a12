"""Poison jobs: a job that ends its worker process on every delivery runs at most `MAX_DELIVERIES` times,
ends FAILURE `poison_job`, and its message is parked in `<type>.dead` while the queue keeps flowing.

The misbehaving task is test-only (`support.fragile_worker`); each test runs an isolated platform."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psutil
import pytest
import requests

from support import services
from support.fragile_worker import POISON
from support.isolated import isolated_platform
from support.jobs import ApiSession, follow, submit
from support.media import tone
from support.processes import Proc, env_for, start_worker
from support.wait import until
from support.web import Site

ALLOW_SITE = {"FETCH_ALLOWLIST": "127.0.0.1", "FETCH_READ_TIMEOUT_S": "60"}


@pytest.fixture(scope="module")
def fragile() -> Iterator[tuple[ApiSession, Proc]]:
    """An audio_length worker of one process, whose task kills that process on a `/poison` URL."""
    with (isolated_platform("audio_length", app="support.fragile_worker", **ALLOW_SITE) as (url, worker),
          ApiSession(url) as http):
        yield http, worker


def queue_figures(http: ApiSession) -> dict[str, dict[str, Any]]:
    return {q["name"]: q for q in http.get("/v1/queues").json()["queues"]}


def parked(vhost: str, queue: str) -> dict[str, Any]:
    """The first message of `queue`, read through the management API and left where it is."""
    url = f"{services.MANAGEMENT}queues/{quote(vhost, safe='')}/{quote(queue, safe='')}/get"
    body = {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 10000}
    messages = requests.post(url, json=body, auth=services.AUTH, timeout=10).json()
    assert messages, f"no message in {queue}"
    return messages[0]  # type: ignore[no-any-return]


def test_a_job_that_kills_its_worker_is_parked_after_max_deliveries(fragile: tuple[ApiSession, Proc],
                                                                     site: Site) -> None:
    http, worker = fragile
    poison = submit(http, "audio_length", json={"url": f"{site.url}{POISON}/every-time.wav"})
    record = follow(http, poison)
    assert record["status"] == "FAILURE", record
    assert record["attempts"] == 3  # MAX_DELIVERIES by default
    assert record["error"]["code"] == "poison_job"
    for words in ("3 times", "signal 9", "not run again", "audio_length.dead"):
        assert words in record["error"]["message"], record["error"]

    shown = until(lambda: (queue_figures(http)["audio_length.dead"]["ready"] or 0) == 1 and queue_figures(http), 30,
                  "the poison job in audio_length.dead in /v1/queues (figures lag up to 5 s)", interval_s=0.5)
    assert shown["audio_length.dead"]["consumers"] == 0
    message = parked(worker.extra["vhost"], "audio_length.dead")
    assert message["properties"]["headers"]["id"] == poison
    death = message["properties"]["headers"]["x-death"][0]
    assert death["reason"] == "rejected" and death["queue"] == "audio_length" and death["count"] == 1

    after = follow(http, submit(http, "audio_length", files={"audio": ("after.wav", tone(0.5))}))
    assert after["status"] == "SUCCESS" and after["attempts"] == 1, after
    # Nothing loops: a requeued message goes back to the head of its queue, so the poison job would have
    # run again before this one. Its record is still exactly as it ended, and its queue is empty.
    assert http.get(f"/v1/jobs/{poison}").json() == record
    until(lambda: queue_figures(http)["audio_length"]["ready"] == 0 == queue_figures(http)["audio_length"]["unacked"],
          30, "an empty audio_length queue", interval_s=0.5)


def kill_whole_worker(worker: Proc) -> None:
    """SIGKILL the worker's main process and its children at once: nobody is left to decide anything."""
    main = psutil.Process(worker.pid)
    for process in [*main.children(recursive=True), main]:
        process.kill()
    worker.popen.wait(30)


def test_a_job_whose_whole_worker_dies_is_parked_without_running_again(site: Site) -> None:
    path = "/poison-free/slow.wav"
    url = site.add(path, tone(0.5), "audio/wav") + "?delay=40"
    env = {**ALLOW_SITE, "MAX_DELIVERIES": "1"}
    with isolated_platform("audio_length", **env) as (api, first), ApiSession(api) as http:
        job_id = submit(http, "audio_length", json={"url": url})
        until(lambda: site.hits.get(path) == 1, 60, "the first delivery fetching its URL")
        assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "STARTED"
        kill_whole_worker(first)
        second = start_worker(env_for(first.extra["vhost"], first.extra["key_prefix"], **env), "audio_length",
                              f"{first.name}-second")
        try:
            record = follow(http, job_id)
            assert record["status"] == "FAILURE" and record["attempts"] == 2, record
            assert record["error"]["code"] == "poison_job"
            assert "delivered 2 times" in record["error"]["message"], record["error"]
            until(lambda: queue_figures(http)["audio_length.dead"]["ready"] == 1, 30,
                  "the job in audio_length.dead in /v1/queues", interval_s=0.5)
        finally:
            second.stop()
    assert site.hits[path] == 1  # the second delivery did not run it
