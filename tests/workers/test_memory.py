"""Every worker child's memory is bounded during a job: a job past its pool's `<TYPE>_MAX_MEMORY_MB`
ends FAILURE `out_of_memory`, its child is replaced, and the jobs of its siblings end SUCCESS at their
first attempt (a neighbour's crash never counts towards their `poison_job`)."""

from __future__ import annotations

import psutil
import pytest
import redis

from support import services
from support.fragile_worker import NO_MEMORY, POISON
from support.isolated import isolated_platform
from support.jobs import ApiSession, follow, submit
from support.media import tone
from support.pages import long_text, tiny_tags
from support.processes import Proc
from support.rss import peak_rss_mb
from support.wait import until
from support.web import Site

CAP_MB = 256
SIBLINGS = 5
LONG_TEXT = 3_000_000  # characters of the one paragraph of `long_text`
COPIES = 10  # fields selecting that paragraph: 30 MB of text in the child, 180 MB as JSON


def children(worker: Proc) -> set[int]:
    return {child.pid for child in psutil.Process(worker.pid).children()}


def child_of(worker: Proc, job: str) -> int:
    """The pid of the pool child that ran `job` (its record's `worker`, `host:pid`)."""
    with redis.Redis.from_url(services.REDIS_URL) as r:
        return int(r.hget(f"{worker.extra['key_prefix']}job:{job}", "worker").decode().rsplit(":", 1)[1])


def test_a_job_past_its_memory_cap_fails_alone(site: Site) -> None:
    """A 20 MB page of tiny tags would take about 1.3 GB in BeautifulSoup; the cap stops it in the parser."""
    hostile = site.add("/memory/tiny-tags.html", tiny_tags(20 * 1024 * 1024))
    sibling = site.add("/memory/small.html", "<html><title>Small</title><p>fine</p></html>")
    env = {"SCRAPE_MAX_MEMORY_MB": str(CAP_MB), "SCRAPE_MAX_HTML_BYTES": str(30 * 1024 * 1024),
           "FETCH_ALLOWLIST": "127.0.0.1"}
    with isolated_platform("scrape", concurrency=3, **env) as (url, worker), ApiSession(url) as http:
        before = children(worker)
        with peak_rss_mb(lambda: psutil.Process(worker.pid).children()) as peak:
            job = submit(http, "scrape", json={"url": hostile, "selectors": {"tags": "b"}})
            siblings = [submit(http, "scrape", json={"url": sibling, "selectors": {"p": "p"}}) for _ in range(SIBLINGS)]
            record = follow(http, job)
            others = [follow(http, sibling_id) for sibling_id in siblings]
        print(f"peak RSS of a scrape child: {peak['one_mb']:.0f} MB under a {CAP_MB} MB cap")

        assert record["status"] == "FAILURE" and record["attempts"] == 1, record
        assert record["error"]["code"] == "out_of_memory"
        assert f"{CAP_MB} MB" in record["error"]["message"] and "SCRAPE_MAX_MEMORY_MB" in record["error"]["message"]
        assert [(o["status"], o["attempts"], o["result"]["fields"]) for o in others] == \
            [("SUCCESS", 1, {"p": ["fine"]})] * SIBLINGS
        assert peak["one_mb"] < CAP_MB + 64  # RSS also counts shared libraries, which the data cap leaves out

        ran_in = child_of(worker, job)
        assert ran_in in before
        until(lambda: ran_in not in children(worker) and len(children(worker)) == 3, 30,
              "the child that ran out of memory to be replaced")


def test_a_child_killed_mid_job_leaves_its_siblings_at_one_attempt(site: Site) -> None:
    """As the kernel's OOM killer would: the child running the poison job dies (SIGKILL) on each delivery;
    the jobs that ran beside it in the same pool each ran once, in another child."""
    with (isolated_platform("audio_length", concurrency=2, app="support.fragile_worker",
                            FETCH_ALLOWLIST="127.0.0.1") as (url, _),
          ApiSession(url) as http):
        poison = submit(http, "audio_length", json={"url": f"{site.url}{POISON}/killed.wav"})
        siblings = [submit(http, "audio_length", files={"audio": ("a.wav", tone(0.5))}) for _ in range(SIBLINGS)]
        others = [follow(http, sibling_id) for sibling_id in siblings]
        record = follow(http, poison)
    assert record["status"] == "FAILURE" and record["error"]["code"] == "poison_job" and record["attempts"] == 3
    assert [(o["status"], o["attempts"]) for o in others] == [("SUCCESS", 1)] * SIBLINGS


@pytest.mark.parametrize(("result_max_bytes", "code", "words"), [
    (None, "result_too_large", "more than 1048576 bytes of JSON"),
    (2**30, "out_of_memory", f"{CAP_MB} MB its worker process may use (SCRAPE_MAX_MEMORY_MB) to store its result"),
], ids=["measured", "stored"])
def test_a_result_too_large_to_serialise_fails_alone(site: Site, result_max_bytes: int | None, code: str,
                                                      words: str) -> None:
    """The job itself fits the cap, but its result's JSON (180 MB, and as much again in bytes) would not.
    Measured against RESULT_MAX_BYTES without being built, it is refused (`result_too_large`); with a limit
    above the cap, storing it runs out of memory (`out_of_memory`). Neither reaches the worker's main process,
    which Celery stops on a `MemoryError` out of a job's hooks: it stays up, the siblings run once, and the
    child that ran out of memory is replaced."""
    hostile = site.add("/memory/long-text.html", long_text(LONG_TEXT))
    sibling = site.add("/memory/short.html", "<html><title>Short</title><p>fine</p></html>")
    env = {"SCRAPE_MAX_MEMORY_MB": str(CAP_MB), "SCRAPE_MAX_HTML_BYTES": str(30 * 1024 * 1024),
           "SCRAPE_MAX_TEXT_CHARS": str(LONG_TEXT), "FETCH_ALLOWLIST": "127.0.0.1"}
    if result_max_bytes is not None:
        env["RESULT_MAX_BYTES"] = str(result_max_bytes)
    with isolated_platform("scrape", concurrency=3, **env) as (url, worker), ApiSession(url) as http:
        job = submit(http, "scrape", json={"url": hostile, "selectors": {f"copy{i}": "p" for i in range(COPIES)}})
        siblings = [submit(http, "scrape", json={"url": sibling, "selectors": {"p": "p"}}) for _ in range(SIBLINGS)]
        record = follow(http, job, timeout_s=60)
        others = [follow(http, sibling_id, timeout_s=60) for sibling_id in siblings]

        assert record["status"] == "FAILURE" and record["attempts"] == 1, record
        assert record["error"]["code"] == code and words in record["error"]["message"], record["error"]
        assert record["result"] is None
        assert [(o["status"], o["attempts"], o["result"]["fields"]) for o in others] == \
            [("SUCCESS", 1, {"p": ["fine"]})] * SIBLINGS
        assert worker.alive()
        if code == "out_of_memory":  # its heap passed REPLACE_AT: Celery replaces it after the job
            ran_in = child_of(worker, job)
            until(lambda: ran_in not in children(worker), 30, "the child that ran out of memory to be replaced")
        until(lambda: len(children(worker)) == 3, 30, "the pool to hold its 3 children")
        assert submit_and_follow_ok(http, sibling)


def submit_and_follow_ok(http: ApiSession, url: str) -> bool:
    """One more job after the hostile one: the worker still takes and ends jobs."""
    record = follow(http, submit(http, "scrape", json={"url": url, "selectors": {"p": "p"}}), timeout_s=60)
    return bool(record["status"] == "SUCCESS")


def test_a_memory_error_past_the_jobs_hooks_ends_the_job_not_the_worker(site: Site) -> None:
    """Where no hook of the job's can catch it (Celery's own handling of the job), a `MemoryError` reaches the
    worker's main process, on which Celery stops the whole worker. The main process ends the job instead."""
    hostile = site.add(f"{NO_MEMORY}/tone.wav", tone(0.5), content_type="audio/wav")
    with (isolated_platform("audio_length", concurrency=2, app="support.fragile_worker",
                            FETCH_ALLOWLIST="127.0.0.1") as (url, worker),
          ApiSession(url) as http):
        job = submit(http, "audio_length", json={"url": hostile})
        siblings = [submit(http, "audio_length", files={"audio": ("a.wav", tone(0.5))}) for _ in range(SIBLINGS)]
        record = follow(http, job, timeout_s=60)
        others = [follow(http, sibling_id, timeout_s=60) for sibling_id in siblings]
        assert worker.alive()
    assert record["status"] == "FAILURE" and record["attempts"] == 1, record
    assert record["error"] == {"code": "out_of_memory", "message": (
        "The job needed more memory than the 1024 MB its worker process may use (AUDIO_LENGTH_MAX_MEMORY_MB) "
        "and was stopped; other jobs were not affected.")}
    assert [(o["status"], o["attempts"]) for o in others] == [("SUCCESS", 1)] * SIBLINGS
