"""Admission control in front of the store, against a private Redis, the API under gunicorn and a real worker:
new jobs stop at the headroom threshold while running jobs still write their ends; uploads in flight are
capped per API key and freed when their jobs end."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import redis
import requests

from support.media import tone
from support.platforms import final, platform_env, shared_vhost, worker_pool
from support.private import PrivateRedis, private_redis
from support.processes import start_api
from support.wait import until
from support.web import Site

MB = 1024 * 1024


@contextmanager
def api_on(store: PrivateRedis, broker_url: str, **settings: str) -> Iterator[tuple[str, dict[str, str]]]:
    env = platform_env(broker_url, store.url, **settings)
    proc, url = start_api(env)
    try:
        yield url, env
    finally:
        proc.stop()


def client(store: PrivateRedis) -> redis.Redis:
    return redis.Redis(host=store.host, port=store.port, password=store.password)


def fill(r: redis.Redis, share: float) -> None:
    """Write filler values until Redis uses `share` of its maxmemory."""
    limit = int(r.config_get("maxmemory")["maxmemory"])
    n = 0
    while int(r.info("memory")["used_memory"]) < share * limit:
        r.set(f"filler:{n}", secrets.token_bytes(256 * 1024))
        n += 1


def submit_upload(api: str, seconds: float, key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{api}/v1/jobs/audio_length", files={"audio": ("a.wav", tone(seconds))}, headers=headers,
                         timeout=60)


def assert_refused(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    assert int(response.headers["Retry-After"]) > 0


def test_submits_stop_at_the_headroom_while_a_running_job_still_stores_its_end(site: Site) -> None:
    """Redis with maxmemory 16 MB, filled to 88 % while a job runs: submits answer 503 `store_full` (the default
    threshold is 80 %), the running job ends SUCCESS, and once memory is freed submits are accepted again."""
    url = site.add("/admission/slow.wav", tone(0.5), "audio/wav") + "?delay=4"
    with private_redis() as store, shared_vhost() as broker_url, api_on(store, broker_url) as (api, env):
        r = client(store)
        r.config_set("maxmemory", 16 * MB)
        with worker_pool(env, api):
            running = requests.post(f"{api}/v1/jobs/audio_length", json={"url": url}, timeout=30).json()["job_id"]
            until(lambda: requests.get(f"{api}/v1/jobs/{running}", timeout=10).json()["status"] == "STARTED", 30,
                  "the job to start")
            fill(r, 0.88)
            # each API process reads Redis's memory at most once a second
            (refused,) = until(lambda: (a := submit_upload(api, 0.2)).status_code == 503 and (a,), 10,
                               "an upload refused")
            assert_refused(refused, 503, "store_full")
            assert "80 %" in refused.json()["error"]["message"]
            (refused,) = until(lambda: (a := requests.post(f"{api}/v1/jobs/audio_length", json={"url": url},
                                                           timeout=30)).status_code == 503 and (a,), 10,
                               "a JSON job refused")
            assert_refused(refused, 503, "store_full")
            assert final(api, running)["status"] == "SUCCESS"
            r.delete(*r.keys("filler:*"))
            until(lambda: submit_upload(api, 0.2).status_code == 202, 10, "submits accepted again")


def test_without_maxmemory_the_byte_budget_applies(site: Site) -> None:
    with private_redis() as store, shared_vhost() as broker_url:
        budget = int(client(store).info("memory")["used_memory"]) + 3 * MB
        with api_on(store, broker_url, STORE_BUDGET_BYTES=str(budget)) as (api, _):
            assert submit_upload(api, 1).status_code == 202
            big = submit_upload(api, 120)  # 3.7 MB
            assert_refused(big, 503, "store_full")
            assert "STORE_BUDGET_BYTES" in big.json()["error"]["message"]


def test_uploads_in_flight_are_capped_per_api_key_and_freed_when_their_jobs_end() -> None:
    """With UPLOAD_BYTES_IN_FLIGHT=300000: three uploads of 96 kB are accepted, a fourth of the same key answers
    429 while another key's is accepted; once a worker has run them, the first key may upload again. Every
    counter has a TTL no longer than an upload's."""
    with private_redis() as store, shared_vhost() as broker_url, \
            api_on(store, broker_url, UPLOAD_BYTES_IN_FLIGHT="300000", API_KEYS="alpha,beta") as (api, env):
        first = [submit_upload(api, 3, "alpha") for _ in range(3)]
        assert [a.status_code for a in first] == [202] * 3, [a.text for a in first]
        over = submit_upload(api, 3, "alpha")
        assert_refused(over, 429, "uploads_in_flight")
        assert submit_upload(api, 3, "beta").status_code == 202
        assert requests.post(f"{api}/v1/jobs/audio_length", json={"url": "http://127.0.0.1:9/a.wav"},
                             headers={"Authorization": "Bearer alpha"}, timeout=30).status_code == 202
        with worker_pool(env, api):
            for answer in first:
                assert final(api, answer.json()["job_id"], Authorization="Bearer alpha")["status"] == "SUCCESS"
            assert submit_upload(api, 3, "alpha").status_code == 202
        r = client(store)
        counters = r.keys(f"{env['KEY_PREFIX']}uploads:*")
        assert counters and all(0 < r.ttl(k) <= 48 * 3600 for k in counters)
