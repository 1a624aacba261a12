"""Request bodies are bounded per route, from the catalog, before they are read: through real HTTP to gunicorn."""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from api.limits import body_limit, json_max_bytes, largest_limit, submit_limit
from common.catalog import BY_NAME
from common.settings import get_settings
from support.raw_http import read_until_closed

MB = 1024 * 1024


def raw_exchange(api_url: str, request: bytes, timeout_s: float = 10) -> tuple[int, dict[str, str], bytes, float]:
    """Send `request` (a head and maybe part of a body) on a fresh connection and read until the server closes
    it; the answer's status, headers and body, and the seconds until the connection closed."""
    parts = urlsplit(api_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s) as sock:
        started = time.monotonic()
        sock.sendall(request)
        received = read_until_closed(sock)
        elapsed = time.monotonic() - started
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body, elapsed


def head(path: str, content_type: str, length: int | None, chunked: bool = False) -> bytes:
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    return f"POST {path} HTTP/1.1\r\nHost: api\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n".encode()


def error_code(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


def test_a_30_mb_image_is_413_from_its_content_length_without_reading_it(api_url: str) -> None:
    """The client keeps sending its declared 30 MB: the answer comes at once, and the server closes the
    connection instead of reading the rest (it takes no more than the sockets' buffers hold)."""
    declared = 30 * MB
    assert submit_limit(BY_NAME["detection"], get_settings()) < declared < largest_limit(get_settings())
    start = b'--b\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n\r\n\xff\xd8\xff'
    parts = urlsplit(api_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head("/v1/jobs/detection", "multipart/form-data; boundary=b", declared) + start)
        sender = BodySender(sock, declared - len(start))
        sender.start()
        received = read_until_closed(sock)
        sender.join(10)
    status_line, _, body = received.partition(b"\r\n\r\n")
    assert status_line.split()[1] == b"413" and error_code(body) == "too_large", received[:300]
    assert not sender.is_alive() and sender.sent < declared // 2, f"the server read {sender.sent} bytes"


class BodySender(threading.Thread):
    """Sends zeros until `size` bytes are sent or the server closes the connection."""

    def __init__(self, sock: socket.socket, size: int) -> None:
        super().__init__(daemon=True)
        self.sock, self.size, self.sent = sock, size, 0

    def run(self) -> None:
        block = b"\0" * 65536
        try:
            while self.sent < self.size:
                self.sent += self.sock.send(block[: self.size - self.sent])
        except OSError:
            pass


@pytest.mark.parametrize("job_type", ["sentiment", "scrape"])
def test_a_json_route_takes_only_what_its_schema_can_need(api_url: str, job_type: str) -> None:
    limit = submit_limit(BY_NAME[job_type], get_settings())
    if job_type == "sentiment":
        assert_the_largest_valid_sentiment_body_fits(limit)
    status, _, body, elapsed = raw_exchange(api_url, head(f"/v1/jobs/{job_type}", "application/json", limit + 1))
    assert status == 413 and error_code(body) == "too_large", body
    assert elapsed < 5


def oversized_scrape() -> bytes:
    """A scrape input its schema accepts (50 selectors; a selector has no length limit), larger than the route's
    limit, which counts 1024 characters for a string whose schema sets no limit."""
    selectors = {f"field{i}": "div > p" + " " * 14_000 for i in range(50)}
    body = json.dumps({"url": "http://127.0.0.1:9/", "selectors": selectors}).encode()
    assert body_limit("POST", "/v1/jobs/scrape", get_settings()) < len(body) < largest_limit(get_settings())
    return body


def test_a_chunked_body_past_the_routes_limit_is_413(api_url: str) -> None:
    body = oversized_scrape()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536])
                      for i in range(0, len(body), 65536)) + b"0\r\n\r\n"
    status, _, answer, _ = raw_exchange(api_url, head("/v1/jobs/scrape", "application/json", None, chunked=True)
                                        + chunks)
    assert status == 413 and error_code(answer) == "too_large", answer


def test_a_body_past_the_routes_limit_is_413_through_a_client(http) -> None:
    response = http.post("/v1/jobs/scrape", data=oversized_scrape(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large", response.text


@pytest.mark.parametrize("job_type", ["sentiment", "scrape"])
def test_deeply_nested_json_is_400_malformed_json(http, job_type: str) -> None:
    response = http.post(f"/v1/jobs/{job_type}", data="[" * 200_000, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"


def assert_the_largest_valid_sentiment_body_fits(limit: int) -> None:
    """256 texts of 10,000 characters, each escaped as \\uXXXX by the encoder (Python's, for non-ASCII), pretty
    printed, fit the route's limit, and the limit is not far above them."""
    own = get_settings().types["sentiment"]
    texts = ["é" * own.max_chars] * own.max_texts
    body = json.dumps({"texts": texts}, indent=4).encode()
    schema = BY_NAME["sentiment"].input_schema(get_settings())
    assert schema is not None
    assert len(body) <= limit == json_max_bytes(schema.model_json_schema()) < 1.05 * len(body)
