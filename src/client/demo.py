"""`demo`: a few jobs of every type from inputs made here, so the whole platform can be seen working offline.

Sentences are written below, tones are generated with the stdlib `wave` module, photos are the two that
ship with ultralytics (read from its folder, never imported) or drawn with Pillow, and the pages to scrape
(plus one tone, fetched by URL) are served from this process on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import io
import math
import struct
import threading
import wave
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from client.sources import Job

SENTENCES = (
    "I love this product, it works perfectly!",
    "This is the worst service I have ever used.",
    "The package arrived on Tuesday.",
    "Absolutely wonderful experience, thank you so much.",
    "I am very disappointed and angry about the delay.",
)
BATCH = ("Great value.", "Terrible battery life.", "It is a phone.")
TONES_S = (0.5, 1.25, 2.0)
SHOP = """<html><head><title>Demo shop</title></head><body><h1>Today's offers</h1><ul>
<li class="product"><span class="name">Tea pot</span> <span class="price">12.50</span></li>
<li class="product"><span class="name">Mug</span> <span class="price">4.00</span></li>
<li class="product"><span class="name">Kettle</span> <span class="price">29.90</span></li></ul></body></html>"""
NEWS = """<html><head><title>Demo news</title></head><body>
<article><h2>Queues keep the platform calm</h2><p>Each job type has its own queue.</p></article>
<article><h2>Workers scale per type</h2><p>Add a pool where the work is.</p></article></body></html>"""


def tone(seconds: float, rate: int = 16000, hz: float = 440.0) -> bytes:
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


def photos() -> list[tuple[str, bytes]]:
    """ultralytics' sample photos (bus.jpg, zidane.jpg) when it is installed, else one drawn with Pillow."""
    spec = importlib.util.find_spec("ultralytics")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(folder, "assets").glob("*.jpg"))
        if found:
            return [(p.name, p.read_bytes()) for p in found]
    return [("drawn.jpg", drawn_photo())]


def drawn_photo() -> bytes:
    from PIL import Image, ImageDraw  # only when ultralytics' photos are not there

    image = Image.new("RGB", (640, 480), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 360, 640, 480), fill=(90, 150, 80))
    draw.rectangle((180, 200, 460, 340), fill=(200, 40, 40))
    for x in (220, 420):
        draw.ellipse((x - 30, 310, x + 30, 370), fill=(30, 30, 30))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


class PageServer:
    """Serves `pages` (path → (content type, body)) on `host`, in a daemon thread."""

    def __init__(self, host: str, pages: dict[str, tuple[str, bytes]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                content_type, body = pages.get(self.path, ("text/plain", b"not found"))
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="demo-pages", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def demo_jobs(types: list[str], host: str = "127.0.0.1") -> Iterator[list[Job]]:
    """The demo's jobs for each of `types` it has inputs for, with its pages served while they run."""
    pages = {"/shop.html": ("text/html; charset=utf-8", SHOP.encode()),
             "/news.html": ("text/html; charset=utf-8", NEWS.encode()), "/tone.wav": ("audio/wav", tone(0.75))}
    server = PageServer(host, pages)
    try:
        makers = {"sentiment": _sentiment, "detection": _detection, "audio_length": _audio, "scrape": _scrape}
        yield [job for t in types if t in makers for job in makers[t](server.url)]
    finally:
        server.close()


def hint(error_codes: Iterable[str]) -> str | None:
    """What to do when the workers refused the demo's own pages (their guard against fetching private addresses)."""
    if "address_refused" not in set(error_codes):
        return None
    return ("The workers refuse to fetch private addresses, so they could not read the demo's own pages: start the "
            "platform with FETCH_ALLOWLIST=127.0.0.1 (for example `FETCH_ALLOWLIST=127.0.0.1 make up`) and run the "
            "demo again.")


def _sentiment(url: str) -> list[Job]:
    singles = [Job("sentiment", s, body={"text": s}) for s in SENTENCES]
    return [*singles, Job("sentiment", f"{len(BATCH)} short reviews in one job", body={"texts": list(BATCH)})]


def _detection(url: str) -> list[Job]:
    return [Job("detection", name, content=data, filename=name) for name, data in photos()]


def _audio(url: str) -> list[Job]:
    tones = [Job("audio_length", f"tone-{s}s.wav", content=tone(s), filename=f"tone-{s}s.wav") for s in TONES_S]
    return [*tones, Job("audio_length", f"{url}/tone.wav", body={"url": f"{url}/tone.wav"})]


def _scrape(url: str) -> list[Job]:
    shop = {"products": "li.product .name", "prices": "li.product .price"}
    return [Job("scrape", f"{url}/shop.html", body={"url": f"{url}/shop.html", "selectors": shop}),
            Job("scrape", f"{url}/news.html", body={"url": f"{url}/news.html", "selectors": {"headlines": "h2"}})]
