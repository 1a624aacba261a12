"""The pieces `api.read_deadline` reads requests with: a socket whose reads end at a deadline, the answers the
worker's loop gives by itself (408, 431), and whether a request head announces a body still to come."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from gunicorn.workers.gthread import TConn
from werkzeug.exceptions import RequestTimeout

MAX_HEAD_BYTES = 64 * 1024
HEAD_END = b"\r\n\r\n"


class ClientTooSlow(RequestTimeout):
    """The client had not sent its whole request by its deadline."""

    description = "The request was not received in time; send the whole request within the server's read timeout."


class DeadlineSocket:
    """A blocking socket whose `recv` waits no longer than what is left until `deadline` (monotonic),
    for gunicorn's body readers; past it `on_expiry` runs and `ClientTooSlow` is raised."""

    def __init__(self, sock: socket.socket, deadline: float, conn: TConn, write_timeout_s: float) -> None:
        self.sock, self.deadline, self.conn = sock, deadline, conn
        self.write_timeout_s = write_timeout_s

    def recv(self, size: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._expire()
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(size)
        except TimeoutError:
            self._expire()
        finally:
            self.sock.settimeout(self.write_timeout_s)  # each write of the answer has its own deadline
        raise AssertionError("unreachable")

    def _expire(self) -> None:
        self.conn.expired = True
        request = getattr(self.conn, "request", None)
        if request is not None:
            request.force_close()  # the answer says `Connection: close`; the rest of the body is never read
        raise ClientTooSlow()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def refusal(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


TOO_SLOW = refusal(408, "Request Timeout", "request_timeout", ClientTooSlow.description)
HEAD_TOO_LARGE = refusal(431, "Request Header Fields Too Large", "headers_too_large",
                         f"The request head is larger than {MAX_HEAD_BYTES} bytes.")


def body_follows(buffered: bytes, end: int) -> bool:
    """Whether a body is still to come after the head that ends at `end` in `buffered`."""
    length = None
    for line in buffered[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
    return length is not None and length > len(buffered) - end - len(HEAD_END)


__all__ = ["HEAD_END", "HEAD_TOO_LARGE", "MAX_HEAD_BYTES", "TOO_SLOW", "ClientTooSlow", "DeadlineSocket",
           "body_follows", "refusal"]
