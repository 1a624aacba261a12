"""Issue 6, "Load held": 10,000 audio_length jobs of a tiny file through the real client (`python -m client`),
on a platform of their own so that its job records can be counted exactly and its API's memory is its own.

Every job ends SUCCESS, none is lost or run twice, none is created twice, and the API's memory after the
run is within 20 % of what it was before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from support.load import dedicated_platform, job_records, rss_bytes
from support.media import tone
from support.processes import ROOT

JOBS = 10_000
WARM_UP = 200
CLIP_S = 0.05


def linked_copies(folder: Path, data: bytes, n: int) -> list[str]:
    """`n` names for one file (hard links): as many inputs as the client needs, for the cost of one file."""
    folder.mkdir()
    (folder / "clip.wav").write_bytes(data)
    names = [f"{i:05d}.wav" for i in range(n)]
    for name in names:
        os.link(folder / "clip.wav", folder / name)
    (folder / "clip.wav").unlink()
    return names


def run_client(api: str, folder: Path, out: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """The client as a user runs it (its defaults: 16 jobs in flight, long-poll), quiet: failures only."""
    done = subprocess.run([sys.executable, "-m", "client", "audio_length", str(folder), "-q", "-o", str(out),
                           "--api", api], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                          capture_output=True, text=True, timeout=1200)
    lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return done, lines


@pytest.mark.timeout(1500)
def test_ten_thousand_jobs_through_the_client_all_succeed_once_and_the_api_keeps_its_memory(tmp_path: Path) -> None:
    clip = tone(CLIP_S)
    names = linked_copies(tmp_path / "clips", clip, JOBS)
    linked_copies(tmp_path / "warm", clip, WARM_UP)
    with dedicated_platform("audio_length", concurrency=2, api_workers=2, api_threads=16) as platform:
        warm, warm_lines = run_client(platform.url, tmp_path / "warm", tmp_path / "warm.jsonl")
        assert warm.returncode == 0, warm.stdout[-3000:] + warm.stderr[-3000:]
        # "Before" is taken after a warm-up: each gunicorn worker's first requests import modules, build
        # schemas and open its Redis and RabbitMQ connections, a one-off growth that is not a leak.
        before, load_before, started = rss_bytes(platform.api_pid), os.getloadavg()[0], time.monotonic()
        done, lines = run_client(platform.url, tmp_path / "clips", tmp_path / "out.jsonl")
        wall_s, load_after, after = time.monotonic() - started, os.getloadavg()[0], rss_bytes(platform.api_pid)
        records = job_records(platform.prefix)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(lines) == JOBS
    assert sorted(Path(line["input"]).name for line in lines) == names  # each input once
    ids = {line["job_id"] for line in lines}
    assert len(ids) == JOBS and None not in ids
    assert Counter(line["status"] for line in lines) == {"SUCCESS": JOBS}
    assert {line["result"]["duration_seconds"] for line in lines} == {CLIP_S}

    warm_ids = {line["job_id"] for line in warm_lines}
    run_records = {job_id: record for job_id, record in records.items() if job_id not in warm_ids}
    assert len(records) == WARM_UP + JOBS and set(run_records) == ids  # none created twice, none lost
    assert Counter((r["type"], r["status"], r["attempts"]) for r in run_records.values()) == \
        {("audio_length", "SUCCESS", "1"): JOBS}  # nobody ran twice
    print(f"\n{JOBS} jobs through the client in {wall_s:.1f} s ({JOBS / wall_s:.0f} jobs/s); API RSS "
          f"{before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB after; load {load_before:.1f} → {load_after:.1f}")
    assert abs(after - before) <= 0.2 * before, (before, after)
