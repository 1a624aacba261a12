"""The demo's pages that `make up` serves: the fixed pages and nothing else, on 127.0.0.1 only."""

from __future__ import annotations

import io
import threading
import wave
from collections.abc import Iterator

import pytest
import requests

from launcher import demo_pages


@pytest.fixture
def served() -> Iterator[str]:
    server = demo_pages.server(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_fixed_pages_and_nothing_else(served: str) -> None:
    shop = requests.get(f"{served}/shop.html", timeout=5)
    assert shop.status_code == 200 and "Tea pot" in shop.text and shop.headers["Content-Type"].startswith("text/html")
    assert "Workers scale per type" in requests.get(f"{served}/news.html", timeout=5).text
    with wave.open(io.BytesIO(requests.get(f"{served}/tone.wav", timeout=5).content)) as wav:
        assert wav.getnframes() / wav.getframerate() == demo_pages.TONE_S
    for path in ("/", "/etc/passwd", "/../README.md", "/shop.html?x=1", "/%2e%2e/Makefile"):
        assert requests.get(f"{served}{path}", timeout=5).status_code == 404, path
    assert requests.post(f"{served}/shop.html", data=b"x", timeout=5).status_code == 501


def test_it_listens_on_loopback_only() -> None:
    server = demo_pages.server(0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
