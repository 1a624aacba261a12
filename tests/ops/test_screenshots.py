"""Checked as a person would: headless Chromium (Debian's) opens Flower's Broker page and the API docs while
jobs wait on a queue nobody consumes; the page text must show every queue with its depth. The PNGs go
to docs/img/ for the README."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from kombu import Connection

from common.catalog import CATALOG
from ops.stack import HELD, Flower, OpsPlatform, submit_held
from support.wait import until

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--window-size=1400,900"]


def chromium(url: str, *args: str, budget_ms: int = 3000) -> str:
    """Run Chromium headless on `url`; its stdout (the DOM, with `--dump-dom`)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: `apt-get install chromium` (.ci/run does it)", pytrace=False)
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                               *args, url], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Rows(HTMLParser):
    """The text of each table row: [[cell, ...], ...]."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag == "td" and self.rows:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def broker_table(dom: str) -> dict[str, dict[str, str]]:
    parser = Rows()
    parser.feed(dom)
    columns = ("messages", "unacked", "ready", "consumers")
    return {row[0]: dict(zip(columns, row[1:5], strict=True)) for row in parser.rows if len(row) >= 6}


def test_flower_broker_page_and_api_docs(ops: OpsPlatform, flower: Flower) -> None:
    submit_held(ops.api, 4)

    def held_depth() -> int | None:
        queues = {q["name"]: q for q in requests.get(f"{ops.api}/v1/queues", timeout=5).json()["queues"]}
        return queues[HELD]["ready"] if (queues[HELD]["ready"] or 0) >= 4 else None

    until(held_depth, 30, f"at least 4 jobs waiting on {HELD} in /v1/queues", interval_s=0.5)
    # The exact depth from the broker: /v1/queues, like Flower, reads the management API, whose figures lag up
    # to 5 s, so the first figure above 4 there may be an older one (other tests' held jobs wait there too).
    with Connection(ops.env["BROKER_URL"]) as conn:
        depth = int(conn.default_channel.queue_declare(queue=HELD, passive=True)[1])
    host = flower.url.removeprefix("http://")
    page = f"http://{flower.user}:{flower.password}@{host}/broker"

    def table() -> dict[str, dict[str, str]] | None:
        rows = broker_table(chromium(page, "--dump-dom"))
        return rows if rows.get(HELD, {}).get("ready") == str(depth) else None

    rows = until(table, 60, f"Flower's Broker page showing {depth} ready on {HELD} (figures lag up to 5 s)",
                 interval_s=1)
    for job_type in CATALOG:
        assert job_type.queue in rows, f"{job_type.queue} missing from Flower's Broker page: {rows}"
        assert rows[job_type.queue]["consumers"] == ("0" if job_type.queue == HELD else "1"), rows
    assert rows[HELD]["messages"] == str(depth)

    IMAGES.mkdir(parents=True, exist_ok=True)
    chromium(page, f"--screenshot={IMAGES / 'flower-broker.png'}")
    docs = f"{ops.api}/docs"
    text = chromium(docs, "--dump-dom", budget_ms=8000)
    assert "/v1/queues" in text and "/metrics" in text and "/v1/jobs/detection" in text
    chromium(docs, f"--screenshot={IMAGES / 'api-docs.png'}", "--window-size=1400,1400", budget_ms=8000)
    for name in ("flower-broker.png", "api-docs.png"):
        assert (IMAGES / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
