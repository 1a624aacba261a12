"""`GET /metrics`: HTTP requests (summed over gunicorn's worker processes), jobs submitted, jobs finished
with run-time histograms (recorded by the workers in Redis), and queue gauges."""

from __future__ import annotations

import io
import uuid

import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from common import jobstats
from ops.stack import HELD, OpsPlatform, submit_held
from support.media import tone
from support.services import REDIS_URL
from support.wait import until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(api: str) -> Samples:
    text = requests.get(f"{api}/metrics", timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_across_gunicorn_workers(ops: OpsPlatform) -> None:
    route = {"method": "GET", "route": "/v1/jobs/<job_id>", "status": "404"}
    before = value(scrape(ops.api), "http_requests_total", **route)
    for _ in range(20):  # spread over both gunicorn worker processes
        assert requests.get(f"{ops.api}/v1/jobs/{uuid.uuid4()}", timeout=10).status_code == 404
    for _ in range(4):  # whichever worker answers the scrape, it reports them all
        assert value(scrape(ops.api), "http_requests_total", **route) == before + 20
    samples = scrape(ops.api)
    latency = {"method": "GET", "route": "/v1/jobs/<job_id>"}
    assert value(samples, "http_request_duration_seconds_count", **latency) >= 20
    assert value(samples, "http_request_duration_seconds_bucket", le="+Inf", **latency) >= 20


def test_jobs_submitted_and_finished_with_run_times(ops: OpsPlatform) -> None:
    good, bad = tone(0.5), b"RIFF\x24\x00\x00\x00WAVEnot really audio"
    before = scrape(ops.api)
    ids = [requests.post(f"{ops.api}/v1/jobs/audio_length", files={"audio": ("a.wav", io.BytesIO(data))},
                         timeout=30).json()["job_id"] for data in (good, good, bad)]
    for job_id in ids:
        assert requests.get(f"{ops.api}/v1/jobs/{job_id}", params={"wait": 30}, timeout=40).json()["status"] in {
            "SUCCESS", "FAILURE"}
    after = scrape(ops.api)
    assert value(after, "jobs_submitted_total", type="audio_length") == value(
        before, "jobs_submitted_total", type="audio_length") + 3
    for state, n in (("SUCCESS", 2), ("FAILURE", 1)):
        labels = {"type": "audio_length", "state": state}
        assert value(after, "jobs_finished_total", **labels) == value(before, "jobs_finished_total", **labels) + n
        assert value(after, "job_run_seconds_count", **labels) == value(after, "jobs_finished_total", **labels)
        assert value(after, "job_run_seconds_bucket", le="+Inf", **labels) == value(
            after, "job_run_seconds_count", **labels)
        assert value(after, "job_run_seconds_sum", **labels) > 0


def test_queue_depth_and_consumers_are_gauges(ops: OpsPlatform) -> None:
    submit_held(ops.api, 2)

    def waiting() -> Samples | None:
        samples = scrape(ops.api)
        return samples if value(samples, "queue_messages_ready", queue=HELD) >= 2 else None

    samples = until(waiting, 30, f"2 ready jobs on {HELD} in /metrics", interval_s=0.5)
    assert value(samples, "queue_stats_up") == 1
    assert value(samples, "queue_consumers", queue=HELD) == 0
    assert value(samples, "queue_oldest_ready_age_seconds", queue=HELD) >= 0
    for name in ops.workers:
        assert value(samples, "queue_consumers", queue=name) >= 1


def test_the_stats_key_is_bounded_and_expires(ops: OpsPlatform) -> None:
    job_id = requests.post(f"{ops.api}/v1/jobs/audio_length", files={"audio": ("a.wav", io.BytesIO(tone(0.2)))},
                           timeout=30).json()["job_id"]
    requests.get(f"{ops.api}/v1/jobs/{job_id}", params={"wait": 30}, timeout=40)
    with redis.Redis.from_url(REDIS_URL) as r:
        key = f"{ops.prefix}stats:jobs"
        until(lambda: r.exists(key), 10, "a finished job's statistics in Redis")
        assert 0 < r.ttl(key) <= jobstats.STATS_TTL_S
        fields = [f.decode() for f in r.hkeys(key)]
        assert all(f.split("|")[0] in {"sentiment", "detection", "audio_length", "scrape"} for f in fields)


def test_run_time_buckets_are_cumulative() -> None:
    times = jobstats.RunTimes()
    for seconds in (0.004, 0.3, 0.3, 400.0):
        times.counts[jobstats.bisect.bisect_left(jobstats.BUCKETS, seconds)] += 1
    buckets = dict(times.cumulative())
    assert (buckets["0.01"], buckets["0.25"], buckets["0.5"], buckets["300.0"], buckets["+Inf"]) == (1, 1, 3, 3, 4)
    assert times.count == 4


def http_series(samples: Samples) -> set[frozenset[tuple[str, str]]]:
    return {labels for name, labels in samples if name == "http_requests_total"}


def test_odd_methods_and_paths_are_one_label_value_each(ops: OpsPlatform) -> None:
    before = http_series(scrape(ops.api))
    for i in range(40):
        odd = f"X{uuid.uuid4().hex.upper()[:12]}"
        assert requests.request(odd, f"{ops.api}/v1/queues", timeout=10).status_code == 405
        assert requests.request(odd, f"{ops.api}/no/such/{uuid.uuid4().hex}", timeout=10).status_code in (404, 405)
        assert requests.get(f"{ops.api}/{uuid.uuid4().hex}/{i}", timeout=10).status_code == 404
    added = http_series(scrape(ops.api)) - before
    methods = {dict(labels)["method"] for labels in added}
    routes = {dict(labels)["route"] for labels in added}
    assert methods <= {"GET", "other"} and routes <= {"/v1/queues", "unmatched"}, added
    assert len(added) <= 4, added
