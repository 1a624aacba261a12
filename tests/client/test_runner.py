"""Ctrl-C: the client stops submitting, says what it knows and how to look up the jobs already submitted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from support.processes import ROOT
from support.wait import until

pytestmark = pytest.mark.usefixtures("workers")


def test_ctrl_c_stops_submitting_and_lists_the_submitted_jobs(api_url, http, site, tmp_path) -> None:
    site.add("/client/slow.html", "<html><title>slow</title></html>")
    urls = [f"{site.url}/client/slow.html?delay=8&n={i}" for i in range(6)]
    out = tmp_path / "out.jsonl"
    argv = [sys.executable, "-m", "client", "scrape", *urls, "-s", "t=title", "-c", "2", "-o", str(out),
            "--api", api_url]
    proc = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        until(lambda: site.hits.get("/client/slow.html", 0) >= 2, 30, "two scrape jobs fetching their page")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)  # the waits let go within 5 s
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    submitted = [line for line in lines if line["job_id"]]
    assert len(lines) == 6 and len(submitted) == 2
    assert "6 jobs" in stdout and "unfinished" in stdout
    assert all(line["status"] == "NOT_SUBMITTED" for line in lines if not line["job_id"])
    assert "Stopped: 4 inputs were not submitted; 2 submitted jobs were not final yet" in stderr
    assert f"curl -s '{api_url}/v1/jobs/<job_id>?wait=30'" in stderr
    for line in submitted:
        assert line["job_id"] in stderr
        assert http.get(f"/v1/jobs/{line['job_id']}").json()["status"] in ("PENDING", "STARTED")
        http.delete(f"/v1/jobs/{line['job_id']}")  # free the scrape workers for the other tests
