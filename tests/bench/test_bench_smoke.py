"""Each benchmark script runs at its smallest size and writes its figure, and the report renders figures
into a page and plots. Nothing here asserts a timing: the machines are shared, and `make bench` is
where the figures come from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import services

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # the benchmarks run as `make bench` runs them
FIGURES = ("submit", "latency", "throughput", "detection", "sentiment", "batching", "scale")


@pytest.mark.parametrize("figure", FIGURES)
def test_the_script_runs_and_writes_its_figure(figure: str, tmp_path: Path) -> None:
    services.require_services()
    done = subprocess.run([sys.executable, "-m", f"bench.{figure}", "--size", "small", "--out", str(tmp_path)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result = json.loads((tmp_path / f"{figure}.json").read_text())
    assert result["figure"] == figure and result["size"] == "small"
    assert result["title"] in done.stdout
    assert result["rows"] or result["table"]["rows"]
    for row in result["rows"]:
        assert row["platform"]["runs"] and all(v > 0 for v in row["platform"]["runs"]), row
        if row["baseline"] is not None:
            assert len(row["ratio"]["runs"]) == len(row["platform"]["runs"]), row


def test_the_report_renders_a_page_and_a_plot_per_figure(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    for figure in ("submit", "latency", "scale"):
        (results / f"{figure}.json").write_text(json.dumps(_result(figure)))
    doc, img, readme = tmp_path / "docs" / "benchmarks.md", tmp_path / "docs" / "img", tmp_path / "README.md"
    readme.write_text("# x\n\n## Performance\n\n<!-- performance -->\nold\n<!-- /performance -->\n\n## Next\n")
    subprocess.run([sys.executable, "-m", "bench.report", "--results", str(results), "--doc", str(doc), "--img",
                    str(img), "--readme", str(readme)], cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=120)
    page = doc.read_text()
    performance = readme.read_text()
    assert "old" not in performance and performance.endswith("<!-- /performance -->\n\n## Next\n")
    assert "| Submit throughput | **0.15** (0.10–0.20) | ≥ 0.5 | **no** |" in performance
    assert "[docs/benchmarks.md](docs/benchmarks.md)" in performance
    for figure in ("submit", "latency", "scale"):
        assert (img / f"bench-{figure}.png").read_bytes().startswith(b"\x89PNG")
        assert f"img/bench-{figure}.png" in page
    assert "| Submit throughput | 300 (200–400) jobs/s | 2,000 (2,000–2,000) jobs/s | **0.15** (0.10–0.20) | ≥ 0.5 " \
           "| **no** |" in page
    assert "RabbitMQ 2,700 B and Redis 216 B per queued job" in page


def _result(figure: str) -> dict:
    from bench.figures import row

    machine = {"cpu": "test", "cores": 2, "memory_gib": 1.0, "os": "test", "python": "3", "load_avg": [1.0, 1.0, 1.0]}
    common = {"figure": figure, "size": "small", "repeat": 3, "method": f"{figure} method.", "machine": machine,
              "at": "2026-01-01T00:00:00+00:00"}
    if figure == "scale":
        table = {"columns": ["idle", "queued", "draining (peak)", "drained"],
                 "rows": [["API (gunicorn, RSS)", 100.0, 101.0, 102.0, 102.0],
                          ["workers (Celery pool, RSS)", 200.0, 200.0, 201.0, 201.0],
                          ["keys in Redis", 1.0, 10001.0, 10001.0, 10001.0]]}
        per_job = {"RabbitMQ bytes per queued job": 2700.0, "Redis bytes per queued job": 216.0,
                   "Redis bytes per finished job": 424.0}
        return {**common, "title": "Scale: 10,000 queued jobs", "rows": [], "table": table, "per_job": per_job}
    if figure == "submit":
        rows = [row("submit throughput", "jobs/s", [200.0, 300.0, 400.0], [2000.0] * 3, target=(">=", 0.5))]
        return {**common, "title": "Submit throughput", "rows": rows}
    rows = [row("latency p50", "ms", [10.0, 11.0, 12.0], [6.0, 6.0, 6.0], target=("<=", 2.0))]
    return {**common, "title": "Latency of one small job", "rows": rows}
