"""A hostile run against a real platform of its own (API under gunicorn, a private Redis, its own vhost):
every route with generated valid and invalid requests (schemathesis, positive and negative), then bodies
that are malformed, oversized or deeply nested, and raw requests whose headers lie about their length.

- No answer is a 5xx.
- No job is lost: every job answered 202 (or 200, an idempotent repeat) has a record, and that record is
  final, or PENDING with its message still in its type's queue (the queue's exact depth, from a passive
  declare, equals the number of such jobs). Only a sentiment worker runs: scrape and audio URLs generated
  here may name any host, and no job of this run may fetch from outside this machine.
- Redis is back under its budget afterwards: the run's keys take at most a record's worth per job plus
  the uploads of jobs still queued, and Redis's own memory no more than that over where it started.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from kombu import Connection

from launcher.platform import build
from support import services
from support.private import private_redis
from support.processes import env_for
from support.wait import until

RECORD_BUDGET = 4096  # bytes of Redis memory a job's record, its counters and its keys may take
SLACK = 2 * 1024 * 1024  # Redis's own bookkeeping (clients, scripts, pub/sub) between two readings
EXAMPLES = 60  # per operation and mode
FINAL = {"SUCCESS", "FAILURE", "REVOKED"}
RUN_TYPES = ("sentiment",)  # the one pool that runs; the others' jobs wait in their queues


@dataclass
class Hostile:
    url: str
    env: dict[str, str]
    store: redis.Redis
    used_before: int
    accepted: dict[str, str] = field(default_factory=dict)  # job id → type
    statuses: list[tuple[str, int]] = field(default_factory=list)  # (what was sent, status)

    def saw(self, what: str, response: requests.Response) -> None:
        self.statuses.append((what, response.status_code))
        if response.status_code in (200, 202) and what.startswith("POST /v1/jobs/"):
            body = response.json()
            self.accepted[body["job_id"]] = body["type"]


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    with private_redis() as store:
        vhost = services.create_vhost()
        env = env_for(vhost, f"hostile-{uuid.uuid4().hex[:8]}:", API_WORKERS="2", SENTIMENT_MODEL="vader")
        env["REDIS_URL"] = store.url
        try:
            with build(env, {",".join(RUN_TYPES): 1}, name="hostile") as platform:
                assert platform.url is not None
                client = redis.Redis.from_url(store.url)
                yield Hostile(platform.url, env, client, int(client.info("memory")["used_memory"]))
        finally:
            services.delete_vhost(vhost)


def test_generated_requests_to_every_route(hostile: Hostile) -> None:
    schema = schemathesis.openapi.from_url(f"{hostile.url}/openapi.json")
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                          database=None)
                def answers(case: schemathesis.Case) -> None:
                    response = case.call(base_url=hostile.url, session=session, timeout=60)
                    hostile.saw(f"{case.method} {case.formatted_path}", response)
                    # /ready's 503 is its answer, not a failure: only sentiment has a worker in this run
                    readiness = case.path == "/ready" and response.status_code == 503
                    assert response.status_code < 500 or readiness, \
                        f"{case.method} {case.formatted_path}: {response.text[:300]}"

                try:
                    answers()
                except Unsatisfiable:  # nothing in this operation to make invalid (e.g. /health)
                    assert mode is schemathesis.GenerationMode.NEGATIVE


JSON_ROUTES = ("/v1/jobs/sentiment", "/v1/jobs/scrape", "/v1/jobs/audio_length")
HOSTILE_JSON: dict[str, bytes] = {
    "deep array": b"[" * 200_000,
    "deep object": b'{"text":' * 100_000,
    "deep, closed": b"[" * 50_000 + b"]" * 50_000,
    "deep inside a field": b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "12 MB of text": json.dumps({"text": "a" * 12_000_000}).encode(),
    "300,000 texts": json.dumps({"texts": ["a"] * 300_000}).encode(),
    "not UTF-8": b'{"text": "\xff\xfe\xfd"}',
    "NaN": b'{"text": NaN}',
    "duplicate keys": b'{"text": "a", "text": "b"}',
    "a number 100,000 digits long": b'{"text": ' + b"9" * 100_000 + b"}",
    "truncated": b'{"text": "unterminated',
}


@pytest.mark.parametrize("name", list(HOSTILE_JSON))
def test_hostile_json_bodies(hostile: Hostile, name: str) -> None:
    for route in JSON_ROUTES:
        response = requests.post(f"{hostile.url}{route}", data=HOSTILE_JSON[name],
                                 headers={"Content-Type": "application/json"}, timeout=60)
        hostile.saw(f"POST {route} ({name})", response)
        assert response.status_code < 500, f"{route} with {name}: {response.status_code} {response.text[:300]}"
        assert response.headers["Content-Type"].startswith("application/json")


HOSTILE_UPLOADS: dict[str, dict[str, Any]] = {
    "random bytes named a photo": {"files": {"image": ("a.jpg", b"\x00" * 2_000_000)}},
    "20,000 form fields": {"files": {"image": ("a.png", b"\x89PNG\r\n\x1a\n")},
                           "data": {f"f{i}": "x" for i in range(20_000)}},
    "the field twice": {"files": [("image", ("a.png", b"x")), ("image", ("b.png", b"y"))]},
    "no file": {"data": {"confidence": "0.5"}},
}


@pytest.mark.parametrize("name", list(HOSTILE_UPLOADS))
def test_hostile_uploads(hostile: Hostile, name: str) -> None:
    for route in ("/v1/jobs/detection", "/v1/jobs/audio_length", "/v1/jobs/sentiment"):
        response = requests.post(f"{hostile.url}{route}", timeout=60, **HOSTILE_UPLOADS[name])
        hostile.saw(f"POST {route} ({name})", response)
        assert response.status_code < 500, f"{route} with {name}: {response.status_code} {response.text[:300]}"


def raw_exchange(port: int, request: bytes, timeout_s: float = 20) -> bytes:
    """Send `request` as is, close the sending side, and return all the server answered until it closed
    (several answers when a body shorter than announced leaves bytes that read as a next request)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn:
        try:
            conn.sendall(request)
            conn.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):  # refused before we finished: fine, if it answered
            pass
        received = b""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return received


def _request(headers: str, body: bytes = b"", path: str = "/v1/jobs/sentiment") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}\r\n"
    return head.encode() + body


BODY = b'{"text": "lying headers"}'
LYING: dict[str, bytes] = {
    "length larger than the body": _request("Content-Length: 100000\r\n", BODY),
    "length smaller than the body": _request("Content-Length: 5\r\n", BODY),
    "length of 1 GB, no body": _request("Content-Length: 1000000000\r\n"),
    "length of 1 GB, expecting 100-continue": _request("Content-Length: 1000000000\r\nExpect: 100-continue\r\n"),
    "negative length": _request("Content-Length: -1\r\n", BODY),
    "length not a number": _request("Content-Length: lots\r\n", BODY),
    "length of 30 digits": _request("Content-Length: 999999999999999999999999999999\r\n", BODY),
    "two different lengths": _request("Content-Length: 5\r\nContent-Length: 26\r\n", BODY),
    "length and chunked": _request("Content-Length: 26\r\nTransfer-Encoding: chunked\r\n", b"1a\r\n" + BODY),
    "a chunk larger than sent": _request("Transfer-Encoding: chunked\r\n", b"ffffffff\r\n" + BODY),
    "a chunk size not hex": _request("Transfer-Encoding: chunked\r\n", b"zz\r\n" + BODY + b"\r\n0\r\n\r\n"),
    "multipart shorter than announced": _request(
        "Content-Length: 5000\r\nContent-Type: multipart/form-data; boundary=xx\r\n",
        b'--xx\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG', "/v1/jobs/detection"),
}


@pytest.mark.parametrize("name", list(LYING))
def test_headers_that_lie_about_lengths(hostile: Hostile, name: str) -> None:
    received = raw_exchange(int(hostile.url.rsplit(":", 1)[1]), LYING[name])
    statuses = [int(status) for status in re.findall(rb"^HTTP/1\.[01] (\d{3})", received, re.MULTILINE)]
    hostile.statuses.extend((f"raw: {name}", status) for status in statuses)
    for job_id, job_type in re.findall(rb'"job_id":\s*"([^"]+)",\s*"type":\s*"(\w+)"', received):
        hostile.accepted[job_id.decode()] = job_type.decode()
    assert all(status < 500 for status in statuses), f"{name}: {received[:600]!r}"
    assert requests.get(f"{hostile.url}/health", timeout=5).ok  # the API is still up


def queue_depth(env: dict[str, str], queue: str) -> int:
    with Connection(env["BROKER_URL"]) as conn, conn.channel() as channel:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)


def test_no_job_is_lost_and_redis_is_back_under_budget(hostile: Hostile) -> None:
    """Runs last in this module (pytest keeps the file's order): it judges what the tests above left."""
    prefix = hostile.env["KEY_PREFIX"]
    assert len(hostile.statuses) > 300 and hostile.accepted  # the run above took place
    running = [job for job, job_type in hostile.accepted.items() if job_type in RUN_TYPES]

    def status_of(job_id: str) -> str | None:
        raw = hostile.store.hget(f"{prefix}job:{job_id}", "status")
        return raw.decode() if raw is not None else None

    until(lambda: all(status_of(job) in FINAL for job in running), 60, f"{len(running)} jobs to end")
    for job_type in {"detection", "audio_length", "scrape"}:
        waiting = [job for job, t in hostile.accepted.items() if t == job_type]
        assert all(status_of(job) == "PENDING" for job in waiting), job_type
        assert queue_depth(hostile.env, job_type) == len(waiting), job_type

    keys = list(hostile.store.scan_iter(match=f"{prefix}*", count=1000))
    uploads = sum(hostile.store.strlen(key) for key in keys if key.startswith(f"{prefix}blob:".encode()))
    held = sum(hostile.store.memory_usage(key) or 0 for key in keys)
    budget = RECORD_BUDGET * len(hostile.accepted) + int(uploads * 1.1) + 64 * 1024
    used_after = int(hostile.store.info("memory")["used_memory"])
    print(f"hostile run: {len(hostile.statuses)} requests, {len(hostile.accepted)} jobs accepted; Redis used "
          f"{hostile.used_before / 2**20:.1f} MiB before, {used_after / 2**20:.1f} MiB after; the run's "
          f"{len(keys)} keys hold {held / 1024:.0f} KiB (budget {budget / 1024:.0f} KiB)")
    assert held <= budget
    assert used_after <= hostile.used_before + budget + SLACK
