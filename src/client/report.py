"""The end of a run: a summary table per job type, every failure with its reason, JSON and JSON Lines."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from client.runner import Outcome

SHOW_AT_MOST = 20


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (`q` in 0..100) of `values`, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(outcomes: Iterable[Outcome]) -> dict[str, dict[str, Any]]:
    """Per job type: count, succeeded, failed, unfinished (not submitted or not final), p50 and p95 seconds."""
    by_type: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_type.setdefault(outcome.job.type, []).append(outcome)
    summary = {}
    for job_type, group in by_type.items():
        latencies = [o.latency_s for o in group if o.latency_s is not None]
        phases = [o.phase for o in group]
        summary[job_type] = {"count": len(group), "succeeded": phases.count("done"), "failed": phases.count("failed"),
                             "unfinished": phases.count("queued") + phases.count("running"),
                             "p50_s": _round(percentile(latencies, 50)), "p95_s": _round(percentile(latencies, 95))}
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def record_of(outcome: Outcome) -> dict[str, Any]:
    """One line of `--output`: the input, its job and how it ended."""
    return {"input": outcome.job.label, "type": outcome.job.type, "job_id": outcome.job_id,
            "status": outcome.status, "result": outcome.result, "error": outcome.error,
            "latency_s": _round(outcome.latency_s), "idempotency_key": outcome.job.key}


def write_jsonl(path: Path, outcomes: Iterable[Outcome]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for outcome in outcomes:
            handle.write(json.dumps(record_of(outcome), ensure_ascii=False) + "\n")


def as_json(outcomes: list[Outcome], api_url: str, stopped: bool) -> str:
    body = {"api": api_url, "ok": all(o.phase == "done" for o in outcomes), "stopped": stopped,
            "summary": summarize(outcomes), "jobs": [record_of(o) for o in outcomes]}
    return json.dumps(body, ensure_ascii=False, indent=2)


def print_table(console: Console, outcomes: list[Outcome], elapsed_s: float) -> None:
    summary = summarize(outcomes)
    unfinished = any(row["unfinished"] for row in summary.values())
    table = Table(title=f"{len(outcomes)} jobs in {elapsed_s:.1f} s", title_justify="left")
    for name in ("type", "count", "succeeded", "failed", *(["unfinished"] if unfinished else []), "p50", "p95"):
        table.add_column(name, justify="left" if name == "type" else "right")
    for job_type, row in summary.items():
        cells = [job_type, str(row["count"]), f"[green]{row['succeeded']}", f"[red]{row['failed']}" if row["failed"]
                 else "0", *([str(row["unfinished"])] if unfinished else []), _seconds(row["p50_s"]),
                 _seconds(row["p95_s"])]
        table.add_row(Text(cells[0]), *cells[1:])
    console.print(table)


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def print_failures(console: Console, outcomes: list[Outcome]) -> None:
    failed = [o for o in outcomes if o.phase == "failed"]
    if failed:
        console.print(Text(f"{len(failed)} failed:", style="bold red"))
    for outcome in failed[:SHOW_AT_MOST]:
        error = outcome.error or {}
        job = f" (job {outcome.job_id})" if outcome.job_id else ""
        console.print(Text.assemble(f"  {outcome.job.type} {outcome.job.label}{job}: ",
                                    (f"{outcome.status} {error.get('code', '')}: {error.get('message', '')}", "red")))
    if len(failed) > SHOW_AT_MOST:
        console.print(f"  … and {len(failed) - SHOW_AT_MOST} more (all of them with --output FILE or --json)")


def print_stopped(console: Console, outcomes: list[Outcome], api_url: str, output: Path | None) -> None:
    """After Ctrl-C: which jobs run on without us, and how to look them up."""
    running = [o for o in outcomes if o.phase == "running"]
    never = sum(o.phase == "queued" for o in outcomes)
    console.print(Text(f"Stopped: {never} inputs were not submitted; {len(running)} submitted jobs were not "
                       f"final yet and go on running on the platform.", style="bold yellow"), soft_wrap=True)
    if not running:
        return
    where = f"all job ids are in {output}; " if output else ""
    console.print(f"  {where}look one up with: curl -s '{api_url}/v1/jobs/<job_id>?wait=30'", markup=False,
                  soft_wrap=True)
    for outcome in running[:SHOW_AT_MOST]:
        console.print(f"  {outcome.job_id}  {outcome.job.type}  {outcome.job.label}", markup=False, soft_wrap=True)
    if len(running) > SHOW_AT_MOST:
        console.print(f"  … and {len(running) - SHOW_AT_MOST} more", markup=False)
