"""HTTP load on 127.0.0.1 for a fixed time: wrk when it is installed, else a Python generator.

Both keep their connections alive and send the same request again and again; both count answers by
status, so a figure counts only what the server accepted (2xx).
"""

from __future__ import annotations

import http.client
import multiprocessing
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "{content_type}"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d\\n", summary.requests, summary.duration, e.status,
                         e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    tool: str
    seconds: float
    answered: int
    failed: int  # non-2xx answers and socket errors

    @property
    def ok_per_s(self) -> float:
        return (self.answered - self.failed) / self.seconds


def post_load(url: str, body: bytes, content_type: str, seconds: float, connections: int,
              tool: str = "auto") -> Load:
    """POST `body` to `url` from `connections` kept-alive connections for `seconds`."""
    if tool == "wrk" or (tool == "auto" and shutil.which("wrk")):
        return _wrk(url, body.decode(), content_type, seconds, connections)
    return _python(url, body, content_type, seconds, connections)


def _wrk(url: str, body: str, content_type: str, seconds: float, connections: int) -> Load:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=body, content_type=content_type))
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), url],
                             capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    requests_, duration_us, status_errors, socket_errors = (int(x) for x in line.split()[1:])
    return Load("wrk", duration_us / 1e6, requests_, status_errors + socket_errors)


def _python(url: str, body: bytes, content_type: str, seconds: float, connections: int) -> Load:
    """Two processes (one per core), each with its share of the connections as threads."""
    procs = 2
    per_proc = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        parts = pool.starmap(_python_part, [(url, body, content_type, seconds, n) for n in per_proc])
    answered, failed, elapsed = (sum(p[0] for p in parts), sum(p[1] for p in parts), max(p[2] for p in parts))
    return Load("python", elapsed, answered, failed)


def _python_part(url: str, body: bytes, content_type: str, seconds: float, threads: int) -> tuple[int, int, float]:
    parts = urlsplit(url)
    counts = [[0, 0] for _ in range(threads)]
    started = time.perf_counter()
    deadline = started + seconds

    def client(slot: list[int]) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        while time.perf_counter() < deadline:
            try:
                conn.request("POST", parts.path, body, headers)
                response = conn.getresponse()
                response.read()
                slot[0] += 1
                slot[1] += not 200 <= response.status < 300
            except (OSError, http.client.HTTPException):
                slot[0], slot[1] = slot[0] + 1, slot[1] + 1
                conn.close()
        conn.close()

    workers = [threading.Thread(target=client, args=(slot,)) for slot in counts]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sum(c[0] for c in counts), sum(c[1] for c in counts), time.perf_counter() - started


__all__ = ["Load", "post_load"]
