"""The client follows each job through its event stream (`Api.follow`): a detection job's progress reaches the
progress bar as it changes, and a stream that fails leaves the rest to the long-poll. Real API, broker, store and
detection worker; the job waits in its queue until the test starts the worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from client.session import Api
from support import images, models
from support.jobs import ApiSession, submit
from support.platforms import queued_api, worker_pool
from support.processes import Proc
from support.wait import until


@pytest.fixture(scope="module")
def queued(platform_env: dict[str, str]) -> Iterator[tuple[dict[str, str], str, Proc]]:
    with queued_api(platform_env["KEY_PREFIX"], DETECTION_MODEL=str(models.detection_weights()),
                    ALLOW_DOWNLOADS="0") as platform:
        yield platform


def follow_in_thread(api: Api, job_id: str, progress: list[int]) -> tuple[threading.Thread, dict[str, object]]:
    """`api.follow` of the job on a thread, once it has read the stream's first event (the job, queued)."""
    answer: dict[str, object] = {}
    stop = threading.Event()
    thread = threading.Thread(target=lambda: answer.update(api.follow(job_id, stop, None, progress.append)))
    thread.start()
    until(lambda: progress, 30, "the client reading the job's event stream")
    return thread, answer


def test_the_client_sees_a_detection_jobs_progress_as_it_changes(queued) -> None:
    env, url, _ = queued
    progress: list[int] = []
    with Api(url) as api, ApiSession(url) as http:
        job_id = submit(http, "detection", files={"image": ("scene.png", images.scene(640, 480))})
        thread, record = follow_in_thread(api, job_id, progress)
        with worker_pool(env, url, "detection"):
            thread.join(120)
    assert record["status"] == "SUCCESS" and record["result"], record
    assert progress == [0, 0, 30]  # queued, started, decoded (detection's progress); then the end


def test_a_stream_that_fails_leaves_the_rest_to_the_long_poll(queued) -> None:
    env, url, _ = queued
    progress: list[int] = []
    with Api(url) as api, ApiSession(url) as http:
        job_id = submit(http, "detection", files={"image": ("scene.png", images.scene(640, 480))})
        thread, record = follow_in_thread(api, job_id, progress)
        api.interrupt()  # the stream's connection dies
        with worker_pool(env, url, "detection"):
            thread.join(120)
    assert record["status"] == "SUCCESS" and record["result"], record
    assert progress == [0]  # what the stream said before it died; the long-poll took over
