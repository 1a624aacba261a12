"""Every key the platform writes expires, within 48 h.

A platform of its own on a private Redis (so every key in it is the platform's, Celery's included) runs
each job type to each of its ends: success, failure, cancel (pending, and running), soft and hard time
limit, poison. Its API also rate-limits, keeps an idempotency key and draws an annotated image. Then
every key in that Redis must have a TTL in (0, 48 h].
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from common.catalog import CATALOG
from common.settings import HOURS_48
from support import models
from support.faults import RUN, SHARED_MANAGEMENT, platform_env, shared_vhost
from support.fragile_worker import POISON, STUBBORN
from support.images import png_header, scene
from support.jobs import ApiSession, follow, submit
from support.media import tone
from support.private import private_redis
from support.processes import Proc, start_api, start_worker
from support.wait import until
from support.web import Site

PREFIX = f"test-expiry-{RUN}:"


def test_every_key_the_platform_writes_expires_within_48_hours(site: Site) -> None:
    with private_redis() as server, shared_vhost() as broker_url:
        env = platform_env(PREFIX, broker_url, SHARED_MANAGEMENT, server.url, RATE_LIMIT="10000/minute",
                           SENTIMENT_MODEL="vader", DETECTION_MODEL=str(models.detection_weights()),
                           ALLOW_DOWNLOADS="0", AUDIO_LENGTH_TIME_LIMIT_S="2", FETCH_READ_TIMEOUT_S="60")
        api_proc, url = start_api(env)
        try:
            with ApiSession(url) as http:
                expected = {job_id: ("REVOKED", "revoked") for job_id in cancelled_while_pending(http)}
                with workers(env, http):
                    expected.update(every_end(http, site))
                    ended = {job_id: follow(http, job_id, 120) for job_id in expected}
        finally:
            api_proc.stop()
        with server.client() as r:
            ttls = key_ttls(r)
    assert {i: (rec["status"], (rec["error"] or {}).get("code")) for i, rec in ended.items()} == expected
    kinds = Counter(kind(key) for key in ttls)
    assert {"job", "source", "idem", "models", "stats", "ratelimit"} <= set(kinds), kinds
    assert {key: ttl for key, ttl in ttls.items() if not 0 < ttl <= HOURS_48} == {}
    print(f"\nKeys after {len(expected)} jobs: {dict(kinds)}; TTLs from {min(ttls.values())} s to "
          f"{max(ttls.values())} s")


def cancelled_while_pending(http: ApiSession) -> list[str]:
    """One job of each type, cancelled before any worker runs: a JSON type's declared example, or its upload."""
    bodies: dict[str, dict[str, Any]] = {
        "sentiment": {"json": {"text": "fine"}},
        "detection": {"files": {"image": ("a.png", scene(64, 48))}},
        "audio_length": {"files": {"audio": ("a.wav", tone(0.2))}},
        "scrape": {"json": {"url": "http://127.0.0.1:9/", "selectors": {"title": "title"}}},
    }
    ids = [submit(http, t.name, **bodies.get(t.name, {"json": t.example})) for t in CATALOG]
    for job_id in ids:
        assert http.delete(f"/v1/jobs/{job_id}").status_code == 200
    return ids


@contextmanager
def workers(env: dict[str, str], http: ApiSession) -> Iterator[None]:
    """The platform's pools: one for sentiment, detection, scrape and embedding, and audio_length on the test-only app
    whose task kills its process (`/poison`) or ignores its soft time limit (`/stubborn`) on demand."""
    procs: list[Proc] = [start_worker(env, "sentiment,detection,scrape,embedding", f"expiry-{RUN}", 1),
                         start_worker(env, "audio_length", f"expiry-audio-{RUN}", 2, app="support.fragile_worker")]
    try:
        until(lambda: all(q["consumers"] >= 1 for q in http.get("/ready").json()["queues"].values())
              and all(p.popen.poll() is None for p in procs), 120, "every queue consumed")
        yield
    finally:
        for proc in procs:
            proc.stop()


def every_end(http: ApiSession, site: Site) -> dict[str, tuple[str, str | None]]:
    """Submit a job for each end, and return what each must end as: (status, error code)."""
    slow = site.add("/expiry/slow.wav", tone(0.5), "audio/wav") + "?delay=20"
    running = submit(http, "audio_length", json={"url": slow})
    until(lambda: http.get(f"/v1/jobs/{running}").json()["status"] == "STARTED", 60, "a job running")
    assert http.delete(f"/v1/jobs/{running}").status_code == 200
    page = site.add("/expiry/page.html", "<html><title>kept</title></html>")
    stubborn = f"{site.url}{STUBBORN}/forever.wav"  # ignores its soft time limit: stopped by the hard one
    detected = submit(http, "detection", files={"image": ("a.png", scene(64, 48))})
    jobs = {
        submit(http, "sentiment", json={"text": "I love it"}, headers={"Idempotency-Key": "expiry"}): ("SUCCESS", None),
        detected: ("SUCCESS", None),
        submit(http, "detection", files={"image": ("b.png", png_header(64, 48))}): ("FAILURE", "undecodable_image"),
        submit(http, "scrape", json={"url": page, "selectors": {"title": "title"}}): ("SUCCESS", None),
        submit(http, "scrape", json={"url": "http://127.0.0.1:9/", "selectors": {"t": "title"}}):
            ("FAILURE", "fetch_failed"),
        submit(http, "audio_length", files={"audio": ("a.wav", tone(0.2))}): ("SUCCESS", None),
        submit(http, "embedding", json={"text": "kept for 48 h at most"}): ("SUCCESS", None),
        submit(http, "audio_length", json={"url": page}): ("FAILURE", "undecodable_audio"),
        submit(http, "audio_length", json={"url": slow}): ("FAILURE", "time_limit_exceeded"),
        submit(http, "audio_length", json={"url": stubborn}): ("FAILURE", "time_limit_exceeded"),
        submit(http, "audio_length", json={"url": f"{site.url}{POISON}/every-time.wav"}): ("FAILURE", "poison_job"),
        running: ("REVOKED", "revoked"),
    }
    assert follow(http, detected)["status"] == "SUCCESS"
    assert http.get(f"/v1/jobs/{detected}/annotated.png").status_code == 200
    return jobs


def key_ttls(r: redis.Redis) -> dict[str, int]:
    keys = [key.decode() for key in r.scan_iter(count=1000)]
    with r.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.ttl(key)
        return dict(zip(keys, pipe.execute(), strict=True))


def kind(key: str) -> str:
    """`job`, `blob`, `stats`...: the key's name after the platform's prefix, up to its first separator."""
    rest = key.split(PREFIX, 1)[-1]
    return next((word for word in ("ratelimit", "celery") if word in rest), rest.split(":", 1)[0])
