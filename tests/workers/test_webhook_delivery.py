"""Completion webhooks (`workers.webhook_delivery`) against the real broker, store and HTTP: a receiver on
loopback, allowlisted by `host:port`, checks each post with the `standardwebhooks` package's verifier."""

from __future__ import annotations

import datetime as dt
import json
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from launcher.platform import Platform, free_port, isolated, start_worker, wait_consuming
from support.jobs import ApiSession, follow, submit
from support.media import tone
from support.wait import until

SECRET = "whsec_" + "c2VjcmV0LWtleS1vZi10aGUtdGVzdHMtMzItYnl0ZXM="
PREVIOUS = "whsec_" + "b2xkLXNlY3JldC1rZXktb2YtdGhlLXRlc3RzLTMyYg=="
MAX_ATTEMPTS = 4


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival
    path: str


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers each post with the next of `answers` (status, headers), then 200."""

    port: int
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    got: dict[str, list[Received]] = field(default_factory=dict)  # by job id
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    arrived = Received(dict(self.headers.items()), body, time.time(), self.path)
                    receiver.got.setdefault(json.loads(body)["data"]["job_id"], []).append(arrived)
                    status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def of(self, job_id: str) -> list[Received]:
        with self.lock:
            return list(self.got.get(job_id, []))


@dataclass
class Hooks:
    platform: Platform
    http: ApiSession
    receiver: Receiver
    down: Receiver  # allowlisted, never listening


@pytest.fixture(scope="module")
def hooks(platform_env: dict[str, str]) -> Iterator[Hooks]:
    """Sentiment and audio_length pools and a webhooks pool of 2, retries shortened: 0.3 s first delay, 4 attempts."""
    receiver, down = Receiver(free_port()), Receiver(free_port())
    receiver.start()
    allow = f"127.0.0.1:{receiver.port},127.0.0.1:{down.port}"
    settings = {"SENTIMENT_MODEL": "vader", "API_WORKERS": "1", "WEBHOOK_SECRET": SECRET,
                "WEBHOOK_SECRET_PREVIOUS": PREVIOUS, "WEBHOOK_ALLOWLIST": allow, "WEBHOOK_BACKOFF_S": "0.3",
                "WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS), "WEBHOOK_TIMEOUT_S": "3"}
    try:
        with (isolated({"sentiment": 1, "audio_length": 1, "webhooks": 2}, name="hooks", **settings) as platform,
              ApiSession(str(platform.url)) as http):
            try:
                yield Hooks(platform, http, receiver, down)
            finally:
                platform.procs["webhooks"].stop()  # the one a test started again, if it did
    finally:
        receiver.stop()


def job(hooks: Hooks, url: str, text: str = "What a wonderful day!") -> str:
    return submit(hooks.http, "sentiment", json={"text": text, "webhook": url})


def webhook_settles(hooks: Hooks, job_id: str, state: str, timeout_s: float = 60) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        record: dict[str, Any] = hooks.http.get(f"/v1/jobs/{job_id}").json()
        return record if record["webhook"]["state"] == state else None

    return until(settled, timeout_s, f"job {job_id}'s webhook {state}")


def test_a_signed_delivery_verifies_with_the_standard_webhooks_package(hooks: Hooks) -> None:
    job_id = job(hooks, hooks.receiver.url())
    record = webhook_settles(hooks, job_id, "delivered")
    [post] = hooks.receiver.of(job_id)
    for secret in (SECRET, PREVIOUS):  # two signatures while the secret rotates
        Webhook(secret).verify(post.body, post.headers)
    assert len(post.headers["webhook-signature"].split(" ")) == 2
    assert post.headers["webhook-id"] and post.headers["webhook-signature"].startswith("v1,")
    payload = json.loads(post.body)
    assert payload["type"] == "job.finished" and payload["timestamp"].endswith("Z")
    sent, now = payload["data"], record
    assert {k: v for k, v in sent.items() if k != "webhook"} == {k: v for k, v in now.items() if k != "webhook"}
    assert sent["status"] == "SUCCESS" and sent["result"]["label"] == "POSITIVE"
    assert now["webhook"] == {"url": hooks.receiver.url(), "state": "delivered", "attempts": 1, "last_status": 200,
                              "last_error": None, "next_attempt_at": None}
    with pytest.raises(Exception, match="No matching signature"):
        Webhook("whsec_" + "d3JvbmctZG9lcy1ub3QtbWF0Y2gtYW55dGhpbmctMzI=").verify(post.body, post.headers)
    metrics = hooks.http.get("/metrics").text
    assert 'webhook_deliveries_total{outcome="delivered"}' in metrics


def test_a_multipart_submit_takes_its_webhook_as_a_form_field(hooks: Hooks) -> None:
    files = {"audio": ("tone.wav", tone(1.5), "audio/wav")}
    job_id = submit(hooks.http, "audio_length", files=files, data={"webhook": hooks.receiver.url("/form")})
    webhook_settles(hooks, job_id, "delivered")
    [post] = hooks.receiver.of(job_id)
    Webhook(SECRET).verify(post.body, post.headers)
    assert json.loads(post.body)["data"]["result"]["duration_seconds"] == pytest.approx(1.5, abs=0.01)
    refused = hooks.http.post("/v1/jobs/audio_length", files=files, data={"webhook": "http://10.0.0.8/"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "webhook_refused"


def test_a_receiver_failing_twice_gets_the_same_webhook_id_three_times(hooks: Hooks) -> None:
    hooks.receiver.answers[:] = [(500, {}), (503, {"Retry-After": "1"})]
    job_id = job(hooks, hooks.receiver.url("/flaky"))
    record = webhook_settles(hooks, job_id, "delivered")
    posts = hooks.receiver.of(job_id)
    assert len(posts) == 3 and len({p.headers["webhook-id"] for p in posts}) == 1
    for post in posts:
        Webhook(SECRET).verify(post.body, post.headers)
    assert posts[2].at - posts[1].at >= 0.9  # Retry-After: 1 honoured
    assert record["webhook"]["attempts"] == 3 and record["webhook"]["last_status"] == 200


def test_a_receiver_down_for_the_whole_schedule_ends_failed_and_the_result_stays(hooks: Hooks) -> None:
    job_id = job(hooks, hooks.down.url())
    pending = webhook_settles(hooks, job_id, "pending")
    record = webhook_settles(hooks, job_id, "failed")
    assert pending["webhook"]["url"] == hooks.down.url()
    assert record["webhook"]["attempts"] == MAX_ATTEMPTS and record["webhook"]["next_attempt_at"] is None
    assert "could not connect" in record["webhook"]["last_error"] and record["webhook"]["last_status"] is None
    assert record["status"] == "SUCCESS" and record["result"]["label"] == "POSITIVE"
    assert 'webhook_deliveries_total{outcome="failed"}' in hooks.http.get("/metrics").text


def test_a_redirect_is_not_followed_but_retried(hooks: Hooks) -> None:
    hooks.receiver.answers[:] = [(307, {"Location": hooks.receiver.url("/elsewhere")})]
    job_id = job(hooks, hooks.receiver.url("/moved"))
    record = webhook_settles(hooks, job_id, "delivered")
    assert [p.path for p in hooks.receiver.of(job_id)] == ["/moved", "/moved"]
    assert record["webhook"]["attempts"] == 2


def test_a_cancelled_job_sends_its_webhook_too(hooks: Hooks) -> None:
    job_id = submit(hooks.http, "embedding", json={"texts": ["never runs"], "webhook": hooks.receiver.url()})
    assert hooks.http.get(f"/v1/jobs/{job_id}").json()["webhook"]["state"] == "pending"  # no embedding pool here
    assert hooks.http.delete(f"/v1/jobs/{job_id}").status_code == 200
    webhook_settles(hooks, job_id, "delivered")
    [post] = hooks.receiver.of(job_id)
    assert json.loads(post.body)["data"]["status"] == "REVOKED"


def test_410_stops_at_once(hooks: Hooks) -> None:
    hooks.receiver.answers[:] = [(410, {})]
    job_id = job(hooks, hooks.receiver.url("/gone"))
    record = webhook_settles(hooks, job_id, "failed")
    assert record["webhook"]["attempts"] == 1 and record["webhook"]["last_status"] == 410
    assert len(hooks.receiver.of(job_id)) == 1


def test_redeliver_sends_it_again_with_the_same_id(hooks: Hooks) -> None:
    job_id = job(hooks, hooks.receiver.url())
    webhook_settles(hooks, job_id, "delivered")
    answer = hooks.http.post(f"/v1/jobs/{job_id}/webhook/redeliver")
    assert answer.status_code == 202, answer.text
    until(lambda: len(hooks.receiver.of(job_id)) == 2, 30, "the redelivery")
    first, second = hooks.receiver.of(job_id)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert webhook_settles(hooks, job_id, "delivered")["webhook"]["attempts"] == 1
    plain = submit(hooks.http, "sentiment", json={"text": "no hook"})
    follow(hooks.http, plain)
    refused = hooks.http.post(f"/v1/jobs/{plain}/webhook/redeliver")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_webhook"
    assert "webhook" not in hooks.http.get(f"/v1/jobs/{plain}").json()
    assert hooks.http.post("/v1/jobs/nope/webhook/redeliver").status_code == 404


def test_a_webhooks_worker_killed_mid_schedule_still_delivers(hooks: Hooks) -> None:
    platform = hooks.platform
    hooks.receiver.answers[:] = [(500, {"Retry-After": "3"})]
    job_id = job(hooks, hooks.receiver.url("/restart"))
    until(lambda: len(hooks.receiver.of(job_id)) == 1, 30, "the first attempt")
    platform.procs["webhooks"].stop(signal.SIGKILL)
    record = webhook_settles(hooks, job_id, "pending")
    ended_meanwhile = job(hooks, hooks.receiver.url("/restart"))  # its end is stored while no webhooks worker runs
    follow(hooks.http, ended_meanwhile)
    due = dt.datetime.fromisoformat(record["webhook"]["next_attempt_at"]).timestamp()
    until(lambda: time.time() > due + 0.5, 10, "the retry falling due while no webhooks worker runs")
    assert len(hooks.receiver.of(job_id)) == 1 and not hooks.receiver.of(ended_meanwhile)
    worker = start_worker(platform.env, "webhooks", "hooks-webhooks-again", 2)
    platform.procs["webhooks"] = worker
    wait_consuming(platform.env, ["webhooks"], [worker])
    record = webhook_settles(hooks, job_id, "delivered")
    posts = hooks.receiver.of(job_id)
    assert len(posts) == 2 and posts[0].headers["webhook-id"] == posts[1].headers["webhook-id"]
    assert record["webhook"]["attempts"] == 2
    assert webhook_settles(hooks, ended_meanwhile, "delivered")["webhook"]["attempts"] == 1


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/hook",
                                 "http://127.0.0.1:1/hook", "http://[::1]:8080/", "ftp://example.com/x", 42])
def test_refused_webhooks_answer_400_at_submit(hooks: Hooks, url: Any) -> None:
    answer = hooks.http.post("/v1/jobs/sentiment", json={"text": "hi", "webhook": url})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "webhook_refused"


def test_the_default_refuses_loopback_and_unsigned_webhooks() -> None:
    from common.errors import InputError
    from common.settings import Settings
    from common.webhooks import check_url

    with pytest.raises(InputError, match="loopback") as refused:
        check_url("http://127.0.0.1:8080/hook", Settings(webhook_secret=SECRET))
    assert refused.value.code == "webhook_refused"
    with pytest.raises(InputError, match="WEBHOOK_SECRET") as unsigned:
        check_url("https://example.com/hook", Settings(webhook_secret=""))
    assert unsigned.value.code == "webhook_refused"
    assert check_url("http://127.0.0.1:8080/h", Settings(webhook_secret=SECRET, webhook_allowlist="127.0.0.1:8080"))


@pytest.mark.parametrize("clients", [1, 8])
def test_time_from_a_jobs_end_to_its_webhook(hooks: Hooks, clients: int) -> None:
    """p50 of (arrival − `finished_at`) over 200 small jobs submitted by 1 or 8 clients, printed for the notes."""
    with ThreadPoolExecutor(clients) as pool:
        ids = list(pool.map(lambda i: job(hooks, hooks.receiver.url("/timed"), f"Great day #{i}"), range(200)))
    until(lambda: all(hooks.receiver.of(i) for i in ids), 180, "200 webhooks")
    delays = []
    for job_id in ids:
        post = hooks.receiver.of(job_id)[0]
        finished = dt.datetime.fromisoformat(json.loads(post.body)["data"]["finished_at"]).timestamp()
        delays.append(post.at - finished)
    p50, p95 = statistics.median(delays), statistics.quantiles(delays, n=20)[18]
    print(f"\nwebhook arrival after the job's end over {len(delays)} jobs, {clients} clients: p50 {p50 * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms")
    assert p50 < 2.0
