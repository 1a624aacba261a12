"""A benchmark's figures: its arguments and repetitions, each row next to its baseline as ratios (median of
the repetitions, with min and max), and the JSON result each script writes into `bench/results/` for
`bench.report`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform as pyplatform
import statistics
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def arguments(doc: str | None, repeat: int = 3) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("small", "full"), default="full",
                        help="full: the figures of docs/benchmarks.md; small: seconds, to prove the script works")
    parser.add_argument("--repeat", type=int, default=None, help=f"repetitions (default: {repeat}; small: 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON result (default: bench/results)")
    parser.set_defaults(default_repeat=repeat)
    return parser


def repeats(args: argparse.Namespace) -> int:
    return int(args.repeat or (1 if args.size == "small" else args.default_repeat))


def spread(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": list(values)}


def row(name: str, unit: str, ours: list[float], base: list[float] | None = None, *, target: tuple[str, float] | None
        = None, platform_label: str = "", baseline_label: str = "") -> dict[str, Any]:
    """One line of a figure: the platform's runs, the baseline's runs of the same repetitions, the ratios."""
    out: dict[str, Any] = {"name": name, "unit": unit, "platform": spread(ours), "platform_label": platform_label,
                           "baseline": None, "baseline_label": baseline_label, "ratio": None, "target": None,
                           "met": None}
    if base:
        ratios = [a / b for a, b in zip(ours, base, strict=True)]
        out.update(baseline=spread(base), ratio=spread(ratios))
    if target is not None and out["ratio"] is not None:
        op, value = target
        median = out["ratio"]["median"]
        out.update(target={"op": op, "value": value}, met=median >= value if op == ">=" else median <= value)
    return out


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), pyplatform.processor())
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "memory_gib": round(mem_kb / 2**20, 1),
            "os": pyplatform.platform(), "python": pyplatform.python_version(), "load_avg": os.getloadavg()}


def write_result(args: argparse.Namespace, figure: str, title: str, rows: list[dict[str, Any]],
                 method: str, extra: dict[str, Any] | None = None) -> Path:
    """`<out>/<figure>.json`, and each row printed as one line."""
    result = {"figure": figure, "title": title, "size": args.size, "repeat": repeats(args), "method": method,
              "rows": rows, "machine": machine(), "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              **(extra or {})}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{figure}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"\n{title} ({args.size}, {repeats(args)} repetitions)")
    for r in rows:
        print("  " + describe(r))
    print(f"  → {path}")
    return path


def describe(r: dict[str, Any]) -> str:
    p = r["platform"]
    text = f"{r['name']:<36} platform {fmt(p['median'])} {r['unit']} ({fmt(p['min'])}–{fmt(p['max'])})"
    if r["baseline"] is not None:
        b, q = r["baseline"], r["ratio"]
        text += f"   baseline {fmt(b['median'])} ({fmt(b['min'])}–{fmt(b['max'])})"
        text += f"   ratio {q['median']:.2f} ({q['min']:.2f}–{q['max']:.2f})"
    if r["target"] is not None:
        text += f"   target {r['target']['op']} {r['target']['value']}: {'met' if r['met'] else 'MISSED'}"
    return text


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def summary(name: str, samples_ms: list[float]) -> str:
    return f"{name:<34} p50 {statistics.median(samples_ms):7.2f} ms   p99 {percentile(samples_ms, 99):7.2f} ms   " \
           f"n={len(samples_ms)}"


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else samples[0]


__all__ = ["RESULTS", "ROOT", "arguments", "describe", "machine", "percentile", "repeats", "row", "spread", "summary",
           "write_result"]
