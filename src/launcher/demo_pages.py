"""The demo's pages, served on 127.0.0.1 by `make up`: `python -m launcher.demo_pages PORT`.

`python -m client demo` sends scrape jobs for `/shop.html` and `/news.html` and an audio_length job for
`/tone.wav` here. These fixed pages are all this server answers (GET and HEAD; anything else is 404 or
501), so the launcher can give the workers this one `host:port` in their allowlist without opening any
other local service to jobs.
"""

from __future__ import annotations

import io
import math
import struct
import sys
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
TONE_S = 0.75
SHOP = """<html><head><title>Demo shop</title></head><body><h1>Today's offers</h1><ul>
<li class="product"><span class="name">Tea pot</span> <span class="price">12.50</span></li>
<li class="product"><span class="name">Mug</span> <span class="price">4.00</span></li>
<li class="product"><span class="name">Kettle</span> <span class="price">29.90</span></li></ul></body></html>"""
NEWS = """<html><head><title>Demo news</title></head><body>
<article><h2>Queues keep the platform calm</h2><p>Each job type has its own queue.</p></article>
<article><h2>Workers scale per type</h2><p>Add a pool where the work is.</p></article></body></html>"""


def tone_wav(seconds: float, rate: int = 16000, hz: float = 440.0) -> bytes:
    """A mono 16-bit WAV sine of `seconds`."""
    frames = b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * hz * i / rate)))
                      for i in range(int(seconds * rate)))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return out.getvalue()


def pages() -> dict[str, tuple[str, bytes]]:
    """Path → (content type, body)."""
    html = "text/html; charset=utf-8"
    return {"/shop.html": (html, SHOP.encode()), "/news.html": (html, NEWS.encode()),
            "/tone.wav": ("audio/wav", tone_wav(TONE_S))}


def server(port: int, host: str = HOST) -> ThreadingHTTPServer:
    """A server of `pages()` bound to `host:port` (0: any free port); call `serve_forever` on it."""
    served = pages()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def _answer(self, with_body: bool) -> None:
            content_type, body = served.get(self.path, ("text/plain; charset=utf-8", b"not found\n"))
            self.send_response(200 if self.path in served else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    return httpd


def main(argv: list[str]) -> int:
    port = int(argv[0])
    try:
        httpd = server(port)
    except OSError as exc:
        print(f"cannot serve the demo pages on {HOST}:{port} ({exc.strerror}): set DEMO_PAGES_PORT to a free port, "
              "or 0 to go without them", flush=True)
        return 1
    print(f"demo pages on http://{HOST}:{port}/ ({', '.join(pages())})", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
