"""What the operations tests share: the platform they run, and how to queue jobs that wait."""

from __future__ import annotations

import io
from dataclasses import dataclass

import requests
from PIL import Image

from support.processes import Proc

HELD = "detection"  # no worker consumes this queue: its jobs stay ready


@dataclass
class OpsPlatform:
    env: dict[str, str]
    api: str
    api_proc: Proc
    workers: dict[str, Proc]
    prefix: str


@dataclass
class Flower:
    url: str
    user: str
    password: str
    proc: Proc


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def submit_held(api: str, n: int) -> list[str]:
    """Queue `n` jobs on the queue nobody consumes."""
    ids = []
    for _ in range(n):
        r = requests.post(f"{api}/v1/jobs/{HELD}", files={"image": ("x.png", png(), "image/png")}, timeout=30)
        assert r.status_code == 202, r.text
        ids.append(r.json()["job_id"])
    return ids
