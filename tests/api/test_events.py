"""`GET /v1/jobs/<id>/events` against a real API (gunicorn), RabbitMQ, Redis and a detection worker: a stream
opened while the job waits in its queue carries its start, its progress and its end (the record as GET shows it),
then closes; `Last-Event-ID` resumes after an event, live or after the end; past the process's cap on waits a
stream answers at once with `Retry-After`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import requests

from support import images, models
from support.jobs import ApiSession, submit
from support.platforms import queued_api, worker_pool
from support.processes import Proc
from support.sse import Event, Seen, events, read_all

CAP = 2  # MAX_WAITING_PER_PROCESS of the one API process


@pytest.fixture(scope="module")
def queued(platform_env: dict[str, str]) -> Iterator[tuple[dict[str, str], str, Proc]]:
    """A platform whose detection worker the test starts: its jobs wait in their queue until then."""
    with queued_api(platform_env["KEY_PREFIX"], DETECTION_MODEL=str(models.detection_weights()), ALLOW_DOWNLOADS="0",
                    MAX_WAITING_PER_PROCESS=str(CAP), EVENTS_MAX_S="60") as platform:
        yield platform


def stream(url: str, job_id: str, last_event_id: int | None = None) -> requests.Response:
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    response = requests.get(f"{url}/v1/jobs/{job_id}/events", headers=headers, stream=True, timeout=60)
    assert response.status_code in (200, 204), response.text
    return response


def test_a_detection_jobs_stream_carries_its_start_progress_and_end_then_closes(queued) -> None:
    detection_env, api, _ = queued
    with ApiSession(api) as http, ThreadPoolExecutor(2) as pool:
        job_id = submit(http, "detection", files={"image": ("scene.png", images.scene(640, 480))})
        whole = stream(api, job_id)
        assert whole.headers["Content-Type"].startswith("text/event-stream")
        seen = Seen()
        reading = events(whole, seen)
        first = next(reading)
        assert (first.name, first.id, first.data) == ("status", "0", {"job_id": job_id, "status": "PENDING",
                                                                       "progress": 0, "attempts": 0})
        rest: Future[tuple[list[Event], float]] = pool.submit(lambda: (list(reading), time.time()))
        resumed = pool.submit(read_all, stream(api, job_id, last_event_id=0))  # has the PENDING event already
        busy = stream(api, job_id)  # a third: past the process's cap of 2
        assert busy.headers["Retry-After"] == "1"
        assert [(e.name, e.data["status"]) for e in read_all(busy).events] == [("status", "PENDING")]
        with worker_pool(detection_env, api, "detection"):
            live, closed_at = rest.result(timeout=120)
            assert [(e.name, e.id) for e in resumed.result(timeout=30).events] == [(e.name, e.id) for e in live]
        record = http.get(f"/v1/jobs/{job_id}").json()
    assert [(e.name, e.id, e.data.get("status"), e.data.get("progress"), e.data.get("attempts")) for e in live] == [
        ("status", "1", "STARTED", 0, 1), ("progress", "2", "STARTED", 30, 1), ("end", "3", "SUCCESS", 100, 1)]
    assert live[-1].data == record and record["result"]["detections"], record  # the end: the whole record
    assert closed_at - live[-1].at < 1.0, "the stream stays open after the end"
    assert seen.retry == ["1000"]


def test_last_event_id_resumes_after_an_event_and_an_ended_job_has_nothing_more(queued) -> None:
    detection_env, api, _ = queued
    with ApiSession(api) as http, worker_pool(detection_env, api, "detection"):
        job_id = submit(http, "detection", files={"image": ("scene.png", images.scene(320, 240))})
        ended = read_all(stream(api, job_id)).events[-1]
        assert ended.name == "end" and ended.data["status"] == "SUCCESS", ended
        version = int(str(ended.id))
        after_progress = read_all(stream(api, job_id, last_event_id=version - 1)).events
        assert [(e.name, e.id, e.data) for e in after_progress] == [("end", ended.id, ended.data)]
        done = stream(api, job_id, last_event_id=version)
        assert done.status_code == 204 and done.content == b""  # an EventSource stops reconnecting
        assert http.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "x"}).status_code == 400
        assert http.get("/v1/jobs/nosuchjob/events").status_code == 404


def test_an_api_process_that_stops_ends_its_streams_at_once(platform_env) -> None:
    """SIGTERM: a stream closes (without an `end`: its client resumes elsewhere) and the process exits, long before
    gunicorn's graceful timeout (MAX_WAIT_S + 5 s)."""
    with (queued_api(platform_env["KEY_PREFIX"]) as (_, url, proc), ApiSession(url) as http,
          ThreadPoolExecutor(1) as pool):
        job_id = submit(http, "scrape", json={"url": "http://127.0.0.1:9/", "selectors": {"t": "p"}})
        reading = events(stream(url, job_id))
        assert next(reading).data["status"] == "PENDING"
        rest = pool.submit(lambda: (list(reading), time.monotonic()))
        stopping = time.monotonic()
        proc.stop()
        exited = time.monotonic() - stopping
        after, closed_at = rest.result(timeout=60)
    assert after == [] and closed_at - stopping < 3, (after, closed_at - stopping)
    assert exited < 5, f"the API took {exited:.1f} s to stop"
