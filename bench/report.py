"""Render the benchmarks' JSON results as `docs/benchmarks.md` and one PNG plot per figure.

    .venv/bin/python -m bench.report [--results bench/results] [--doc docs/benchmarks.md] [--img docs/img]

The numbers come from the JSON files the scripts wrote in the same `make bench`; the prose that
explains them (what was changed in the platform and why) lives in `bench/notes.md`, kept by hand.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("submit", "latency", "throughput", "detection", "sentiment", "batching", "scale")
COMMANDS = """```bash
make bench                                          # every figure at full size, then this page (< 10 min)
.venv/bin/python -m bench.run --only latency,submit  # some figures, then this page
.venv/bin/python -m bench.submit --size small       # one script, seconds: proves it works (what CI runs)
.venv/bin/python -m bench.report                    # this page again from bench/results/*.json
```"""


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def spread(s: dict[str, Any]) -> str:
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def ratio(r: dict[str, Any]) -> str:
    q = r["ratio"]
    return f"**{q['median']:.2f}** ({q['min']:.2f}–{q['max']:.2f})" if q else "–"


def target(r: dict[str, Any]) -> tuple[str, str]:
    if r["target"] is None:
        return "reported", "–"
    op = "≥" if r["target"]["op"] == ">=" else "≤"
    return f"{op} {r['target']['value']}", "yes" if r["met"] else "**no**"


def row_name(result: dict[str, Any], r: dict[str, Any]) -> str:
    return result["title"] if r["name"].lower() == result["title"].lower() else f"{result['title']}: {r['name']}"


def summary_rows(result: dict[str, Any]) -> list[str]:
    lines = []
    for r in result["rows"]:
        goal, met = target(r)
        base = f"{spread(r['baseline'])} {r['unit']}" if r["baseline"] else "–"
        lines.append(f"| {row_name(result, r)} | {spread(r['platform'])} {r['unit']} | {base} | {ratio(r)} "
                     f"| {goal} | {met} |")
    if result["figure"] == "scale":
        per_job = result["per_job"]
        growth = {row[0]: row[3] - row[1] for row in result["table"]["rows"]}
        text = (f"API +{growth['API (gunicorn, RSS)']:.1f} MB, workers +{growth['workers (Celery pool, RSS)']:.1f} MB "
                f"at the peak; RabbitMQ {per_job['RabbitMQ bytes per queued job']:,.0f} B and Redis "
                f"{per_job['Redis bytes per queued job']:,.0f} B per queued job")
        lines.append(f"| {result['title']} | {text} | – | – | bounded, reported | – |")
    return lines


def figure_section(result: dict[str, Any], img: Path, doc: Path) -> list[str]:
    lines = [f"## {result['title']}", "", result["method"], ""]
    if result["figure"] == "scale":
        lines += scale_table(result)
    else:
        lines += ["| measure | platform | baseline | runs: platform / baseline | ratio (min–max) | target |",
                  "|---|---|---|---|---|---|"]
        for r in result["rows"]:
            runs = " · ".join(f"{fmt(a)} / {fmt(b)}" for a, b in zip(r["platform"]["runs"],
                              (r["baseline"] or {"runs": [None] * len(r["platform"]["runs"])})["runs"], strict=True)
                              if b is not None)
            goal, met = target(r)
            lines.append(f"| {r['name']} ({r['unit']}) | {r['platform_label']} | {r['baseline_label']} | {runs} | "
                         f"{ratio(r)} | {goal}{'' if met == '–' else f': {met}'} |")
    if result.get("cpu_us_per_request"):
        lines += cpu_table(result["cpu_us_per_request"])
    picture = img / f"bench-{result['figure']}.png"
    lines += ["", f"![{result['title']}]({relative(picture, doc)})", "",
              f"<sub>{result['size']} size, {result['repeat']} repetition(s), measured {result['at']}, load average "
              f"{', '.join(f'{x:.1f}' for x in result['machine']['load_avg'])} when it ended.</sub>", ""]
    return lines


def cpu_table(cpu: dict[str, dict[str, float]]) -> list[str]:
    """CPU per request by process, medians of the runs (from `bench/submit.py`'s meter)."""
    names = list(next(iter(cpu.values())))
    lines = ["", "CPU time per request, median of the runs (µs):", "",
             "| server | " + " | ".join(names) + " | total |", "|---" * (len(names) + 2) + "|"]
    for server, figures in cpu.items():
        lines.append(f"| {server} | " + " | ".join(f"{figures[n]:,.0f}" for n in names)
                     + f" | {sum(figures.values()):,.0f} |")
    return lines


def scale_table(result: dict[str, Any]) -> list[str]:
    table = result["table"]
    lines = ["| | " + " | ".join(table["columns"]) + " |", "|---" * (len(table["columns"]) + 1) + "|"]
    for name, *values in table["rows"]:
        unit = "" if name in ("messages in the queue", "keys in Redis") else " MB"
        lines.append(f"| {name} | " + " | ".join(f"{v:,.1f}{unit}" if unit else f"{v:,.0f}" for v in values) + " |")
    lines += ["", " · ".join(f"{name}: **{value:,.0f}**" for name, value in result["per_job"].items())]
    return lines


def relative(path: Path, doc: Path) -> str:
    try:
        return str(path.resolve().relative_to(doc.resolve().parent))
    except ValueError:
        return str(path.resolve())


def plot(result: dict[str, Any], path: Path) -> None:
    if result["figure"] == "scale":
        plot_scale(result, path)
        return
    rows = result["rows"]
    columns = min(4, len(rows))
    lines = -(-len(rows) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(3.4 * columns + 0.6, 3.6 * lines), squeeze=False)
    for ax in axes.flat[len(rows):]:
        ax.set_visible(False)
    for ax, r in zip(axes.flat, rows, strict=False):
        bars = [("baseline", r["baseline"], "#9aa5b1"), ("platform", r["platform"], "#2c7fb8")]
        bars = [b for b in bars if b[1] is not None]
        for i, (_, s, color) in enumerate(bars):
            ax.bar(i, s["median"], color=color, yerr=[[s["median"] - s["min"]], [s["max"] - s["median"]]], capsize=4)
            ax.text(i, s["median"], fmt(s["median"]), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(bars)), [b[0] for b in bars])
        ax.set_ylabel(r["unit"])
        title = r["name"]
        if r["ratio"]:
            goal = target(r)[0]
            title += f"\nratio {r['ratio']['median']:.2f} ({r['ratio']['min']:.2f}–{r['ratio']['max']:.2f})"
            title += f", target {goal}" if r["target"] else ""
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"{result['title']} (median of {result['repeat']}, bars: min–max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scale(result: dict[str, Any], path: Path) -> None:
    table = result["table"]
    rows = [row for row in table["rows"] if row[0] not in ("messages in the queue", "keys in Redis")]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(table["columns"])
    for j, phase in enumerate(table["columns"]):
        ax.bar([i + j * width for i in range(len(rows))], [row[j + 1] for row in rows], width, label=phase)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], [row[0].replace(" (", "\n(") for row in rows],
                  fontsize=7)
    ax.set_ylabel("MB")
    ax.legend(fontsize=8)
    ax.set_title(result["title"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine_line(results: list[dict[str, Any]]) -> str:
    m = results[0]["machine"]
    loads = [x for r in results for x in r["machine"]["load_avg"][:1]]
    return (f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Python {m['python']}; "
            f"1-minute load average when each figure ended: {min(loads):.1f}–{max(loads):.1f} "
            f"(median {statistics.median(loads):.1f}).")


def render(results: list[dict[str, Any]], doc: Path, img: Path) -> str:
    notes_file = ROOT / "bench" / "notes.md"
    notes = notes_file.read_text().strip() if notes_file.is_file() else ""
    lines = ["# Benchmarks", "",
             "<!-- Generated by bench/report.py from bench/results/*.json (make bench); edit bench/notes.md for "
             "the prose. -->", "",
             "What the platform costs over the tools it is built on. Each figure is measured next to its "
             "baseline **in the same run on the same machine**, and reported as the ratio platform / baseline: "
             "the median of the repetitions, with the min and max. Absolute numbers move with whatever else "
             "the machine runs; the ratios are what to read.", "",
             f"Machine: {machine_line(results)}", "",
             "| figure | platform | baseline | ratio (min–max) | target | met |", "|---|---|---|---|---|---|"]
    for result in results:
        lines += summary_rows(result)
    lines += ["", notes, ""] if notes else [""]
    for result in results:
        lines += figure_section(result, img, doc)
    lines += ["## Running them", "", COMMANDS, ""]
    return "\n".join(lines)


def performance_section(results: list[dict[str, Any]], doc: Path, readme: Path) -> str:
    """The README's "Performance" table: each ratio with its target, and the machine it was measured on."""
    lines = ["| figure | ratio platform / baseline, median (min–max) | target | met |", "|---|---|---|---|"]
    for result in results:
        for r in result["rows"]:
            if r["ratio"] is None:
                continue
            goal, met = target(r)
            lines.append(f"| {row_name(result, r)} | {ratio(r)} | {goal} | {met} |")
    return "\n".join([*lines, "", f"Measured on {machine_line(results)} Method, baselines and plots: "
                      f"[{relative(doc, readme)}]({relative(doc, readme)}).", ""])


def update_readme(readme: Path, section: str) -> None:
    start, end = "<!-- performance -->", "<!-- /performance -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no {start} ... {end} markers for the performance table")
    head, rest = text.split(start, 1)
    readme.write_text(f"{head}{start}\n{section}{end}{rest.split(end, 1)[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--img", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--readme", type=Path, default=None, help="also rewrite this README's performance table")
    args = parser.parse_args()
    found = {p.stem: json.loads(p.read_text()) for p in args.results.glob("*.json")}
    results = [found[name] for name in ORDER if name in found]
    if not results:
        raise SystemExit(f"no results in {args.results}: run the benchmarks first (make bench)")
    args.img.mkdir(parents=True, exist_ok=True)
    for result in results:
        plot(result, args.img / f"bench-{result['figure']}.png")
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(render(results, args.doc, args.img))
    if args.readme is not None:
        update_readme(args.readme, performance_section(results, args.doc, args.readme))
    print(f"{args.doc} and {len(results)} plots in {args.img}")


if __name__ == "__main__":
    main()
