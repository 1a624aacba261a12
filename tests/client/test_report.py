"""The end of a run: percentiles, the per-type summary and the JSON Lines of every input."""

from __future__ import annotations

import io
import json

from rich.console import Console

from client import report
from client.runner import Outcome
from client.sources import Job


def outcome(job_type: str, status: str, latency: float | None, job_id: str | None = "j") -> Outcome:
    error = None if status == "SUCCESS" else {"code": "x", "message": "why"}
    return Outcome(Job(job_type, "in"), status, job_id, {"ok": 1} if status == "SUCCESS" else None, error,
                   latency_s=latency)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (report.percentile(values, 50), report.percentile(values, 95)) == (50.0, 95.0)
    assert report.percentile([3.0], 95) == 3.0
    assert report.percentile([], 50) is None


def test_summary_per_type() -> None:
    outcomes = [outcome("a", "SUCCESS", 1.0), outcome("a", "SUCCESS", 3.0), outcome("a", "FAILURE", 2.0),
                outcome("b", "REJECTED", None, None), Outcome(Job("b", "later"))]
    summary = report.summarize(outcomes)
    assert summary["a"] == {"count": 3, "succeeded": 2, "failed": 1, "unfinished": 0, "p50_s": 2.0, "p95_s": 3.0}
    assert summary["b"] == {"count": 2, "succeeded": 0, "failed": 1, "unfinished": 1, "p50_s": None, "p95_s": None}


def test_output_lines_and_json(tmp_path) -> None:
    outcomes = [outcome("a", "SUCCESS", 0.5), outcome("a", "FAILURE", 0.7)]
    report.write_jsonl(tmp_path / "o.jsonl", outcomes)
    first, second = (json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines())
    assert first == {"input": "in", "type": "a", "job_id": "j", "status": "SUCCESS", "result": {"ok": 1},
                     "error": None, "latency_s": 0.5, "idempotency_key": outcomes[0].job.key}
    assert second["error"] == {"code": "x", "message": "why"}
    body = json.loads(report.as_json(outcomes, "http://api", stopped=False))
    assert (body["ok"], body["summary"]["a"]["failed"], len(body["jobs"])) == (False, 1, 2)


def test_failures_are_listed_with_their_reason() -> None:
    console = Console(file=io.StringIO(), width=200)
    report.print_failures(console, [outcome("a", "SUCCESS", 0.1), outcome("a", "FAILURE", 0.2)])
    assert console.file.getvalue().splitlines() == ["1 failed:", "  a in (job j): FAILURE x: why"]
