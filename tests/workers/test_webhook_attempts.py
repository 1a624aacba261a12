"""One webhook attempt against hostile or broken receivers and settings: each attempt is counted, bounded by
`WEBHOOK_TIMEOUT_S`, and made once per claim. Run in this process against the real Redis and a raw receiver on
loopback (allowlisted by `host:port`)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from common import records
from common.records import JobStatus
from common.settings import get_settings
from common.store import get_redis
from launcher.platform import free_port

SECRET = "whsec_" + "c2VjcmV0LWtleS1vZi10aGUtdGVzdHMtMzItYnl0ZXM="
TIMEOUT_S = 1.0


class RawReceiver:
    """Accepts connections on 127.0.0.1 and hands each to `answer(conn)` in a thread."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self.port, self.answer = free_port(), answer
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.posts = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.posts += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            with contextlib.suppress(OSError):
                self.answer(conn)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def hook_env(platform_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("WEBHOOK_TIMEOUT_S", str(TIMEOUT_S))
    monkeypatch.setenv("WEBHOOK_ALLOWLIST", "127.0.0.1")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def ended_job(url: str) -> str:
    r, job_id = get_redis(), str(uuid.uuid4())
    records.create(r, job_id, "sentiment")
    r.hset(records.job_key(job_id), mapping={"webhook_url": url, "webhook_state": "pending"})
    assert records.finish(r, job_id, JobStatus.SUCCESS, result={"label": "POSITIVE"})
    # no webhooks pool here: the test claims the entry as the dispatcher would, then runs the attempt itself
    from common import webhooks

    claimed: list[str] = []
    while job_id not in claimed:
        claimed = webhooks.claim_due(r, lease_s=120, limit=1000)
        assert claimed, "the job's end did not schedule its webhook"
    return job_id


def webhook(job_id: str) -> dict[str, object]:
    record = records.load(get_redis(), job_id)
    assert record is not None
    return dict(record["webhook"])


def test_a_superscript_retry_after_still_counts_the_attempt(hook_env: None) -> None:
    """'²'.isdigit() is True but float('²') raises: the attempt dies before its outcome is stored, so the
    webhook stays pending with 0 attempts and is claimed again after every lease, forever."""
    from workers.webhook_delivery import deliver

    receiver = RawReceiver(lambda c: c.sendall("HTTP/1.1 503 Busy\r\nRetry-After: \u00b2\r\n"
                                               "Content-Length: 0\r\n\r\n".encode("latin-1")))
    try:
        job_id = ended_job(f"http://127.0.0.1:{receiver.port}/hook")
        outcome = deliver.run(job_id)
        assert outcome == "retry"
        state = webhook(job_id)
        assert state["attempts"] == 1 and state["last_status"] == 503
    finally:
        receiver.close()


def test_a_receiver_dripping_its_headers_is_cut_at_webhook_timeout_s(hook_env: None) -> None:
    """urllib3's `total` timeout bounds each read, not the answer: a byte every 0.4 s keeps it going. In a
    worker the task's soft limit (WEBHOOK_TIMEOUT_S + 30) then kills it with no outcome stored: redone after
    each lease, attempts stay 0, forever, and each holds a webhooks process 40 s."""
    from workers.webhook_delivery import deliver

    def drip(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(25):  # 10 s of a header that never ends
            conn.sendall(b"X")
            time.sleep(0.4)  # the receiver's pace (a hostile slow sender), not a wait on a condition

    receiver = RawReceiver(drip)
    try:
        job_id = ended_job(f"http://127.0.0.1:{receiver.port}/hook")
        started = time.monotonic()
        outcome = deliver.run(job_id)
        took = time.monotonic() - started
        assert took < 3 * TIMEOUT_S, f"one attempt took {took:.1f} s, WEBHOOK_TIMEOUT_S is {TIMEOUT_S:g}"
        assert outcome == "retry"
    finally:
        receiver.close()


def test_a_2xx_answer_whose_body_never_ends_is_delivered_not_retried(hook_env: None) -> None:
    """A 200 with no Content-Length over a connection the receiver keeps open: the job was accepted, but the
    post reads up to MAX_READ of the body, times out and counts a retry: the receiver gets it again."""
    from workers.webhook_delivery import deliver

    def hold(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok")
        time.sleep(3 * TIMEOUT_S)  # the receiver holds its connection open: its behaviour, not a wait

    receiver = RawReceiver(hold)
    try:
        job_id = ended_job(f"http://127.0.0.1:{receiver.port}/hook")
        assert deliver.run(job_id) == "delivered"
        assert webhook(job_id)["state"] == "delivered"
    finally:
        receiver.close()


def test_a_secret_that_is_not_base64_is_refused_or_reported_not_crashing_every_attempt(
        hook_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """`WEBHOOK_SECRET=whsec_` (a template's empty key) passes the submit check (only emptiness is checked), then
    every attempt raises in signing: no outcome, no `last_error`, pending with 0 attempts, claimed again forever."""
    from common import webhooks
    from common.errors import InputError
    from workers.webhook_delivery import deliver

    monkeypatch.setenv("WEBHOOK_SECRET", "whsec_")
    get_settings.cache_clear()
    receiver = RawReceiver(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    try:
        url = f"http://127.0.0.1:{receiver.port}/hook"
        try:
            webhooks.check_url(url, get_settings())
        except InputError:
            return  # refused at submit: fine
        job_id = ended_job(url)
        deliver.run(job_id)
        state = webhook(job_id)
        assert state["attempts"] == 1 and "WEBHOOK_SECRET" in str(state["last_error"])
    finally:
        receiver.close()


def test_an_entry_whose_lease_ends_while_queued_ignores_retry_after(hook_env: None) -> None:
    """The lease (120 s by default) starts at the claim, not when a webhooks process takes the task: with a
    backlog (4 processes, receivers taking WEBHOOK_TIMEOUT_S = 10 s, more than 48 entries) the dispatcher claims
    the still-queued entries again and publishes a second task for each. `begin` does not check which claim a
    task belongs to nor whether the entry is due: the second task posts again at once, whatever the backoff or
    the receiver's `Retry-After` said. Here: two claims of one entry, their two tasks, a 503 Retry-After 3600."""
    from common import webhooks
    from workers.webhook_delivery import deliver

    r = get_redis()
    receiver = RawReceiver(lambda c: c.sendall(b"HTTP/1.1 503 Busy\r\nRetry-After: 3600\r\nContent-Length: 0\r\n\r\n"))
    try:
        job_id = ended_job(f"http://127.0.0.1:{receiver.port}/hook")
        r.zadd(records.webhook_schedule_key(), {job_id: 0})
        tasks = [i for i in webhooks.claim_due(r, lease_s=0.2, limit=1000) if i == job_id]
        deadline = time.monotonic() + 5
        while len(tasks) < 2 and time.monotonic() < deadline:  # the first task still waits in the queue
            tasks += [i for i in webhooks.claim_due(r, lease_s=0.2, limit=1000) if i == job_id]
        assert len(tasks) == 2
        for queued in tasks:
            deliver.run(queued)
        assert receiver.posts == 1, f"{receiver.posts} posts within a second of a Retry-After of an hour"
    finally:
        r.zrem(records.webhook_schedule_key(), job_id)
        receiver.close()
