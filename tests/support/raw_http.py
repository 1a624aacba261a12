"""HTTP spoken on a bare socket, for tests of what the API does with clients that lie, dribble or stall."""

from __future__ import annotations

import socket

import pytest


def read_until_closed(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (a reset after it answered is a close too)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"no answer and no close in time: the server waits for the rest of the body "
                    f"(got {received[:200]!r})")
    return received
