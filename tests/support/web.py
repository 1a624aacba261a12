"""A small web server (on 127.0.0.1 unless told) that the tests' jobs fetch from (no internet needed)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Site:
    """Pages by path; `?delay=S` makes the answer come S seconds late (a slow upstream for job tests)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}
        self.hits: dict[str, int] = {}
        self.redirects: dict[str, str] = {}
        self.headers: dict[str, dict[str, str]] = {}  # extra response headers by path (e.g. Content-Encoding)
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def add(self, path: str, body: bytes | str, content_type: str = "text/html; charset=utf-8",
            headers: dict[str, str] | None = None) -> str:
        self.pages[path] = (content_type, body.encode() if isinstance(body, str) else body)
        self.headers[path] = headers or {}
        return self.url + path

    def redirect(self, path: str, location: str) -> str:
        self.redirects[path] = location
        return self.url + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                site.hits[parts.path] = site.hits.get(parts.path, 0) + 1
                delay = float(parse_qs(parts.query).get("delay", ["0"])[0])
                if delay:
                    time.sleep(delay)  # the slow upstream itself, not test synchronisation
                if parts.path in site.redirects:
                    self.send_response(302)
                    self.send_header("Location", site.redirects[parts.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                content_type, body = site.pages.get(parts.path, ("text/plain", b""))
                self.send_response(200 if parts.path in site.pages else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in site.headers.get(parts.path, {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
