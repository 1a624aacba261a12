"""Slow clients (slowloris) against a real API under gunicorn: clients that dribble their request head or body one
byte at a time hold none of the threads `/health` needs, and each is cut off (408, or closed) by
`CLIENT_READ_TIMEOUT_S`; kept-alive connections, 431 for an oversized head and large uploads still work."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from support.processes import start_api
from support.raw_http import read_until_closed
from support.wait import until

WORKERS, THREADS = 2, 4
READ_TIMEOUT_S = 3.0
MARGIN_S = 2.0  # the worker's loop checks deadlines at least once a second; the dribbler notices within 0.5 s
DRIBBLE_S = 0.5
HEALTH_BUDGET_S = 1.0


@pytest.fixture(scope="module")
def slow_api(platform_env: dict[str, str]) -> Iterator[str]:
    proc, url = start_api({**platform_env, "API_WORKERS": str(WORKERS), "API_THREADS": str(THREADS),
                           "CLIENT_READ_TIMEOUT_S": str(READ_TIMEOUT_S)})
    yield url
    proc.stop()


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@dataclass
class Dribbler:
    """One connection that sends its request one byte every `DRIBBLE_S`, and what the server did to it."""

    sock: socket.socket
    data: bytes
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    answer: bytes = b""
    cut_after_s: float | None = None  # seconds from connecting to the server's answer or close


class Dribblers(threading.Thread):
    def __init__(self, url: str, count: int, prologue: bytes, dribble: bytes) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.all: list[Dribbler] = []
        for _ in range(count):
            sock = socket.create_connection(address(url), timeout=5)
            sock.sendall(prologue)
            sock.setblocking(False)
            self.all.append(Dribbler(sock, dribble))

    def run(self) -> None:
        while not self.stop.is_set() and any(d.cut_after_s is None for d in self.all):
            for d in self.all:
                if d.cut_after_s is None:
                    self.step(d)
            self.stop.wait(DRIBBLE_S)

    @staticmethod
    def step(d: Dribbler) -> None:
        readable, _, _ = select.select([d.sock], [], [], 0)
        try:
            if readable:
                chunk = d.sock.recv(65536)
                d.answer += chunk
                if chunk:
                    return
                raise ConnectionResetError  # closed
            d.sock.send(d.data[d.sent:d.sent + 1])
            d.sent += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            d.cut_after_s = time.monotonic() - d.started
            d.sock.close()

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        for d in self.all:
            d.sock.close()


def health_latencies(url: str, count: int = 5) -> list[float]:
    """Seconds each of `count` fresh `/health` requests took (the timeout's length when it did not answer)."""
    took = []
    for _ in range(count):
        start = time.monotonic()
        with contextlib.suppress(requests.Timeout):
            assert requests.get(f"{url}/health", timeout=5).ok
        took.append(time.monotonic() - start)
    return took


HEAD = b"GET /health HTTP/1.1\r\nHost: api\r\nX-Slow: " + b"a" * 10_000
BODY_HEAD = (b"POST /v1/jobs/sentiment HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
             b"Content-Length: 10000\r\n\r\n")
ATTACKS = {  # name → (what is sent at once, what is then dribbled)
    "head": (b"", HEAD),
    "body": (BODY_HEAD, b'{"text": "' + b"a" * 9_000),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_dribblers_hold_no_thread_health_needs_and_are_cut_by_the_deadline(slow_api: str, attack: str) -> None:
    prologue, dribble = ATTACKS[attack]
    count = 2 * WORKERS * THREADS + 2  # more than all the threads, however the two workers share them
    dribblers = Dribblers(slow_api, count, prologue, dribble)
    dribblers.start()
    try:
        until(lambda: all(d.sent >= 2 for d in dribblers.all), 10, "every dribbler to send a few bytes")
        took = health_latencies(slow_api)
        print(f"{attack} dribblers ×{count}: /health took {', '.join(f'{t * 1000:.0f}' for t in took)} ms")
        until(lambda: all(d.cut_after_s is not None for d in dribblers.all), READ_TIMEOUT_S + MARGIN_S + 5,
              "every dribbler to be cut off")
    finally:
        dribblers.close()
    cut = sorted(d.cut_after_s or 0.0 for d in dribblers.all)
    print(f"{attack} dribblers ×{count}: cut after {cut[0]:.1f}–{cut[-1]:.1f} s")
    assert max(took) < HEALTH_BUDGET_S
    assert cut[-1] <= READ_TIMEOUT_S + MARGIN_S
    for d in dribblers.all:
        assert d.answer == b"" or d.answer.startswith(b"HTTP/1.1 408 "), d.answer[:200]
        if d.answer:
            assert json.loads(d.answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"


def test_a_kept_alive_connection_serves_several_requests_then_is_cut_when_it_dribbles(slow_api: str) -> None:
    host, port = address(slow_api)
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.connect()
    sock = conn.sock
    for i in range(6):
        if i % 2:
            conn.request("POST", "/v1/jobs/sentiment", body=b'{"no": "text"}',
                         headers={"Content-Type": "application/json"})
            expected = 400
        else:
            conn.request("GET", "/health")
            expected = 200
        response = conn.getresponse()
        response.read()
        assert response.status == expected and conn.sock is sock, f"request {i}: {response.status}"
    sock.sendall(b"GET /health HTTP/1.1\r\n")  # the next head, never finished
    started = time.monotonic()
    sock.settimeout(READ_TIMEOUT_S + MARGIN_S)
    answer = read_until_closed(sock)
    took = time.monotonic() - started
    conn.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and took <= READ_TIMEOUT_S + MARGIN_S, (answer[:200], took)


def test_a_head_over_64_kib_is_431(slow_api: str) -> None:
    with socket.create_connection(address(slow_api), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: api\r\nX-Big: " + b"a" * 70 * 1024 + b"\r\n\r\n")
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert json.loads(body)["error"]["code"] == "headers_too_large"


def test_a_multi_mb_upload_still_goes_through_with_the_default_deadline(api_url: str) -> None:
    noise = Image.frombytes("RGB", (1200, 1000), os.urandom(1200 * 1000 * 3))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    assert len(out.getvalue()) > 3 * 1024 * 1024
    response = requests.post(f"{api_url}/v1/jobs/detection", files={"image": ("noise.png", out.getvalue())},
                             timeout=30)
    assert response.status_code == 202, response.text


def test_clients_that_never_read_their_answers_are_closed_by_the_write_deadline(slow_api: str) -> None:
    """Clients with a tiny receive buffer ask again and again for /openapi.json on kept-alive connections and
    never read: each answer's write waits at most CLIENT_READ_TIMEOUT_S, then the connection is closed, so the
    threads come back and /health answers."""
    count = 3 * WORKERS * THREADS  # enough for each worker's 4 threads, however the workers share them
    request = b"GET /openapi.json HTTP/1.1\r\nHost: api\r\n\r\n"
    readers = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect(address(slow_api))
        sock.setblocking(False)
        readers.append(sock)
    try:
        alive = set(readers)

        def ask_again() -> bool:
            """One more request on each connection still open; whether the server has closed them all."""
            for sock in list(alive):
                try:
                    sock.send(request)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:  # reset: the server closed it with requests unread
                    alive.discard(sock)
            time.sleep(0.02)  # pacing the attack, not synchronisation
            return not alive

        started = time.monotonic()
        # each slow reader holds a thread READ_TIMEOUT_S: a few rounds of 2 × 4 threads
        until(ask_again, 10 * READ_TIMEOUT_S + 15, "the server to close every connection that does not read")
        closed_after = time.monotonic() - started
        took = health_latencies(slow_api)
        print(f"slow readers ×{count}: all closed after {closed_after:.1f} s; /health then took "
              f"{', '.join(f'{t * 1000:.0f}' for t in took)} ms")
        assert max(took) < HEALTH_BUDGET_S
    finally:
        for sock in readers:
            sock.close()


class BodyHogger(threading.Thread):
    """One client (127.0.0.1) opening ~50 connections a second, each sending a POST head and never its body."""

    HEAD = (b"POST /v1/jobs/sentiment HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n")

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.opened = url, threading.Event(), 0
        self.held: list[socket.socket] = []

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                sock = socket.create_connection(address(self.url), timeout=5)
                sock.sendall(self.HEAD)
                self.held.append(sock)
                self.opened += 1
            for old in self.held[:-200]:  # the newest stay open (the server cuts the others at their deadline)
                old.close()
            self.held = self.held[-200:]
            self.stop.wait(0.02)

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        for sock in self.held:
            sock.close()


def paced_upload(url: str, source: str) -> bytes:
    """A 1 MB upload from `source` on a 4 Mbit/s link (25 kB pieces, 0.05 s apart: about 2 s, two thirds of the
    read timeout), its send buffer small so that the server has to read it as it comes: the answer's status line."""
    body = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
            + b"x" * 1_000_000 + b"\r\n--b--\r\n")
    with socket.socket() as sock:
        sock.bind((source, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.settimeout(10)
        sock.connect(address(url))
        sock.sendall(b"POST /v1/jobs/detection HTTP/1.1\r\nHost: api\r\nContent-Type: multipart/form-data; boundary=b"
                     b"\r\nContent-Length: %d\r\n\r\n" % len(body))
        with contextlib.suppress(OSError):  # a server that gave up answers anyway: read it below
            for i in range(0, len(body), 25_000):
                sock.sendall(body[i:i + 25_000])
                time.sleep(0.05)  # the link's pace, not synchronisation
        return read_until_closed(sock).partition(b"\r\n")[0]


def test_one_client_holding_every_body_slot_does_not_starve_an_upload_from_another(slow_api: str) -> None:
    """Bodies on threads are capped per client address: an attacker's endless bodiless POSTs keep at most a
    share of the slots, and an honest upload from another address is read (415: its bytes are no image), not
    408."""
    hogger = BodyHogger(slow_api)
    hogger.start()
    try:
        until(lambda: hogger.opened >= 4 * WORKERS * THREADS, 10, "the attacker to open its connections")
        answers = [paced_upload(slow_api, "127.0.0.2") for _ in range(3)]
        opened = hogger.opened
    finally:
        hogger.close()
    print(f"honest uploads under a body-slot attack ({opened} connections): {answers}")
    assert all(a.startswith(b"HTTP/1.1 415 ") for a in answers), answers


def test_a_request_half_sent_when_the_api_is_told_to_stop_is_still_answered(platform_env: dict[str, str]) -> None:
    """SIGTERM (a deploy): the workers stop accepting, but a request whose head is half read goes on being read
    and is answered, as stock gthread's threads would, before the worker exits."""
    proc, url = start_api({**platform_env, "API_WORKERS": str(WORKERS), "API_THREADS": str(THREADS),
                           "CLIENT_READ_TIMEOUT_S": "5"})
    try:
        conn = http.client.HTTPConnection(*address(url), timeout=10)
        conn.request("GET", "/health")  # the connection is the worker's, kept alive
        first = conn.getresponse()
        first.read()
        assert first.status == 200
        sock = conn.sock
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: api\r\n")  # the next head, half sent
        proc.popen.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection(address(url), timeout=1).close()
            except ConnectionRefusedError:
                return True
            return False

        until(refused, 10, "the API to stop accepting connections")
        sock.sendall(b"Connection: close\r\n\r\n")
        answer = read_until_closed(sock)
        conn.close()
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert proc.popen.wait(30) == 0
    finally:
        proc.stop()


def bound_connection(url: str, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(address(url))
    return sock


def test_a_body_refused_unread_holds_no_body_slot(slow_api: str) -> None:
    """Requests refused before their body is read (here 405) leave their body to the loop: the next upload from
    the same address (whose body slot they would hold) is read at once, not after their read deadline."""
    refused = [bound_connection(slow_api, "127.0.0.3") for _ in range(4 * WORKERS)]
    try:
        for sock in refused:
            sock.sendall(b"POST /health HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n")
        for sock in refused:
            assert sock.recv(200).startswith(b"HTTP/1.1 405 ")
        body = b'{"no": "text"}'
        started = time.monotonic()
        with bound_connection(slow_api, "127.0.0.3") as sock:
            sock.sendall(b"POST /v1/jobs/sentiment HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            answer = read_until_closed(sock)
        took = time.monotonic() - started
    finally:
        for sock in refused:
            sock.close()
    print(f"an upload after {len(refused)} refused bodies from its address: answered in {took:.2f} s")
    assert answer.startswith(b"HTTP/1.1 400 ") and took < 1.5, (answer[:100], took)
