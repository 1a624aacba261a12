"""Every benchmark one after the other, then `docs/benchmarks.md` and its plots: what `make bench` runs.

    .venv/bin/python -m bench.run [--size small|full] [--only submit,latency] [--out bench/results] [--no-report]

Each script writes its figure to `<out>/<figure>.json`; a figure whose script fails is left out of the
page (its previous result is removed first), and the exit status is 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("submit", "latency", "throughput", "detection", "sentiment", "batching", "scale")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("small", "full"), default="full")
    parser.add_argument("--only", default=",".join(FIGURES), help=f"comma-separated, of: {', '.join(FIGURES)}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--img", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--no-report", action="store_true", help="leave docs/benchmarks.md as it is")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    started, failed = time.monotonic(), []
    for name in chosen:
        (args.out / f"{name}.json").unlink(missing_ok=True)
        began = time.monotonic()
        print(f"== {name}", flush=True)
        code = subprocess.call([sys.executable, "-m", f"bench.{name}", "--size", args.size, "--out", str(args.out)],
                               cwd=ROOT)
        print(f"== {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {time.monotonic() - began:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if not args.no_report:
        subprocess.check_call([sys.executable, "-m", "bench.report", "--results", str(args.out),
                               "--doc", str(args.doc), "--img", str(args.img), "--readme", str(ROOT / "README.md")],
                              cwd=ROOT)
    print(f"{len(chosen) - len(failed)} of {len(chosen)} figures in {time.monotonic() - started:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
