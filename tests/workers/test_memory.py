"""Every worker child's memory is bounded during a job: a job past its pool's `<TYPE>_MAX_MEMORY_MB`
ends FAILURE `out_of_memory`, its child is replaced, and the jobs of its siblings end SUCCESS at their
first attempt (a neighbour's crash never counts towards their `poison_job`)."""

from __future__ import annotations

import psutil
import redis

from support import services
from support.fragile_worker import POISON
from support.isolated import isolated_platform
from support.jobs import ApiSession, follow, submit
from support.media import tone
from support.pages import tiny_tags
from support.processes import Proc
from support.rss import peak_rss_mb
from support.wait import until
from support.web import Site

CAP_MB = 256
SIBLINGS = 5


def children(worker: Proc) -> set[int]:
    return {child.pid for child in psutil.Process(worker.pid).children()}


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

        with redis.Redis.from_url(services.REDIS_URL) as r:
            ran_in = int(r.hget(f"{worker.extra['key_prefix']}job:{job}", "worker").decode().rsplit(":", 1)[1])
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
