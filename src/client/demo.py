"""`demo`: a few jobs of every type the API lists, from inputs made here, so the whole platform can be seen
working offline.

The types come from `GET /v1/job-types`. Sentences are written below, tones are generated with the stdlib
`wave` module, and photos are the two that ship with ultralytics (read from its folder, never imported) or
drawn with Pillow. The pages to scrape, and one tone fetched by URL, are the demo pages `make up` serves
(`launcher.demo_pages`, on 127.0.0.1 at `DEMO_PAGES_PORT`, the one local address its workers may fetch): this
client only names their URL. A type the demo has no inputs of its own for runs the `example` input the API
lists for it. A type whose model `/ready` reports unavailable on every worker is skipped, with one line saying
why and how to install it.
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
import struct
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
DEFAULT_PAGES_URL = "http://127.0.0.1:8099"  # `make up`'s demo pages at the default DEMO_PAGES_PORT


def pages_url() -> str:
    """Where `make up` serves the demo's pages: DEMO_PAGES_URL, else 127.0.0.1 at DEMO_PAGES_PORT (8099)."""
    port = os.environ.get("DEMO_PAGES_PORT", "").strip()
    return os.environ.get("DEMO_PAGES_URL") or (f"http://127.0.0.1:{port}" if port not in ("", "0")
                                                else DEFAULT_PAGES_URL)


@dataclass
class DemoPlan:
    """The demo's jobs, and each type it leaves out with why (and what to do about it)."""

    jobs: list[Job] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def plan(types: dict[str, dict[str, Any]], wanted: Iterable[str], ready: dict[str, Any] | None,
         url: str = DEFAULT_PAGES_URL) -> DemoPlan:
    """Jobs for each of `wanted` (types the API lists), less those whose model no worker has."""
    out = DemoPlan()
    missing = models_unavailable(types, ready)
    for job_type in wanted:
        made = demo_jobs([job_type], url) or example_jobs(job_type, types[job_type])
        if job_type in missing:
            out.skipped[job_type] = f"its model is unavailable on every worker: {missing[job_type]}"
        elif not made:
            out.skipped[job_type] = "the demo has no input for it and the API lists no JSON `example` for it"
        else:
            out.jobs += made
    return out


def example_jobs(job_type: str, listing: dict[str, Any]) -> list[Job]:
    """The type's `example` input from `GET /v1/job-types`, as a JSON job, when it takes JSON."""
    example = listing.get("example")
    if not isinstance(example, dict) or not example or "json" not in listing.get("inputs", {}):
        return []
    return [Job(job_type, f"{job_type} example", body=dict(example))]


def models_unavailable(types: dict[str, dict[str, Any]], ready: dict[str, Any] | None) -> dict[str, str]:
    """Type → why, and how to install it, for each type whose queue `/ready` reports with the model
    "unavailable" (the API says "loaded" as soon as one live worker has it; no report: not skipped)."""
    queues = (ready or {}).get("queues") or {}
    found = {}
    for job_type, listing in types.items():
        model = (queues.get(listing.get("queue", job_type)) or {}).get("model")
        if isinstance(model, dict) and model.get("status") == "unavailable":
            found[job_type] = _reason(model, listing)
    return found


def _reason(model: dict[str, Any], listing: dict[str, Any]) -> str:
    """The workers' reason, followed by the type's install hint from `/v1/job-types` unless it says it already."""
    message = str(model.get("message") or "the model did not load")
    hint = listing.get("model_hint")
    return message if not hint or str(hint) in message else f"{message} {hint}"


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


def demo_jobs(types: list[str], pages_url: str = DEFAULT_PAGES_URL) -> list[Job]:
    """The demo's jobs for each of `types` it has inputs for; scrape and audio URLs point under `pages_url`."""
    makers = {"sentiment": _sentiment, "detection": _detection, "audio_length": _audio, "scrape": _scrape}
    return [job for t in types if t in makers for job in makers[t](pages_url.rstrip("/"))]


def hint(error_codes: Iterable[str], pages_url: str = DEFAULT_PAGES_URL) -> str | None:
    """What to do when the workers could not fetch the demo's pages."""
    codes = set(error_codes)
    if "address_refused" in codes:
        return (f"The workers refused to fetch the demo's pages at {pages_url}: `make up` lets jobs fetch exactly "
                "127.0.0.1:<DEMO_PAGES_PORT> unless FETCH_ALLOWLIST is set; leave FETCH_ALLOWLIST unset, or add "
                "that host:port to it.")
    if "fetch_failed" in codes:
        return (f"Nothing answered for the demo's pages at {pages_url}: `make up` serves them on 127.0.0.1 at "
                "DEMO_PAGES_PORT (8099 unless set; 0 turns them off); point --pages or DEMO_PAGES_URL at them.")
    return None


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
