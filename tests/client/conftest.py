"""Fixtures of the client tests: run `python -m client` in this process, and a fault proxy in front of the API."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from client.cli import main


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def run_client(api_url: str, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """`run_client("audio_length", "a.wav", api=...)`: the client's exit code, stdout and stderr."""

    def run(*argv: str, api: str | None = None) -> Run:
        capsys.readouterr()
        code = main([*argv, "--api", api or api_url])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class FaultProxy:
    """Forwards to the API, except that the first `faults` POSTs answer `status` (with Retry-After: 0).

    `lose=False`: those POSTs never reach the API. `lose=True`: they reach it (the job is created) and only
    the answer is lost. `created` and `replayed` count the API's own 202 and 200 answers to POSTs.
    """

    api_url: str
    faults: int
    status: int = 503
    lose: bool = False
    code: str = "fault_proxy"  # the error code of its refusals
    refused: int = 0
    created: int = 0
    replayed: int = 0
    job_ids: dict[str, set[str]] = field(default_factory=dict)  # Idempotency-Key → job ids the API answered
    authorizations: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "idempotency-key", "authorization")}
        with self.lock:
            self.authorizations.add(headers.get("Authorization", ""))
            fault = method == "POST" and self.refused < self.faults
            if fault:
                self.refused += 1
        if fault and not self.lose:
            return self.fault()
        response = requests.request(method, self.api_url + path, headers=keep, data=body, timeout=60)
        if method == "POST":
            self.count(response, headers.get("Idempotency-Key", ""))
        if fault:
            return self.fault()
        return response.status_code, {"Content-Type": response.headers.get("Content-Type", "")}, response.content

    def count(self, response: requests.Response, key: str) -> None:
        with self.lock:
            if response.status_code == 202:
                self.created += 1
            elif response.status_code == 200:
                self.replayed += 1
            if response.status_code in (200, 202):
                self.job_ids.setdefault(key, set()).add(response.json()["job_id"])

    def fault(self) -> Answer:
        body = json.dumps({"error": {"code": self.code, "message": "the fault proxy said no"}}).encode()
        return self.status, {"Content-Type": "application/json", "Retry-After": "0"}, body


def serve(proxy: FaultProxy) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, content = proxy.forward(self.command, self.path, dict(self.headers), body)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(content))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_DELETE = relay

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def fault_proxy(api_url: str) -> Iterator[Callable[..., tuple[FaultProxy, str]]]:
    """`proxy, url = fault_proxy(faults=10, status=503, lose=False)`; the client is pointed at `url`."""
    servers: list[ThreadingHTTPServer] = []

    def start(**kwargs: Any) -> tuple[FaultProxy, str]:
        proxy = FaultProxy(api_url, **kwargs)
        servers.append(serve(proxy))
        return proxy, f"http://127.0.0.1:{servers[-1].server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
