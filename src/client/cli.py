"""`python -m client`: submit many jobs at once, watch them, collect every result.

`submit TYPE key=value … [FILE …]` for any job type the API lists; friendlier subcommands (files, folders,
globs, CSV) for the types that gain from them; `run` for a JSON Lines file of mixed jobs; and `demo`.
Exit status: 0 when every job succeeded, 1 when any failed (or `demo --strict` skipped a type), 2 for a
usage error or an unreachable API, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.text import Text

from client import demo, generic, report, sources
from client.runner import Options, Outcome, execute
from client.session import Api, ClientError, Retry
from client.sources import Plan, UsageError

DEFAULT_API = "http://127.0.0.1:8000"
EXAMPLES = """examples:
  python -m client demo                                  (--strict: a type skipped for want of its model fails it)
  python -m client submit sentiment text="I love it"     (any type the API lists; values are JSON when they parse)
  python -m client submit sentiment 'texts=["Great.", "Awful."]'
  python -m client submit detection confidence=0.4 a.jpg (a file goes in the type's upload field)
  python -m client sentiment "I love it" "I hate it"        (or --file reviews.txt, --csv reviews.csv --column text)
  python -m client detection photos/ 'shots/**/*.jpg' --confidence 0.4
  python -m client audio_length song.mp3 recordings/ https://example.com/clip.ogg
  python -m client scrape https://example.com --select title=h1 --select links=a
  python -m client scrape --euromillions 2024-01-02 2024-01-05
  python -m client run jobs.jsonl --output results.jsonl     (one {"type": ..., ...} per line)

`python -m client COMMAND --help` lists the options of a command (--api, --concurrency, --output, --json, ...)."""


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    add = group.add_argument
    add("--api", default=os.environ.get("API_URL", DEFAULT_API), metavar="URL",
        help="the API's base URL (env API_URL; default %(default)s)")
    add("--api-key", default=os.environ.get("API_KEY"), metavar="KEY", help="sent as a bearer token (env API_KEY)")
    add("--concurrency", "-c", type=_positive, default=16, metavar="N", help="jobs in flight at once (16)")
    add("--output", "-o", type=Path, metavar="FILE", help="write one JSON line per input: job id, status, result")
    add("--json", action="store_true", help="print JSON on stdout instead of the table")
    add("--timeout", type=float, metavar="S", help="stop waiting for a job S seconds after submitting it")
    add("--retries", type=int, default=8, metavar="N", help="retries of a 503, 429 or lost connection (8)")
    add("--quiet", "-q", action="store_true", help="log failures only, not every finished job")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [common_options()]
    p = sub.add_parser("submit", parents=common, help="any job type the API lists: TYPE key=value … [FILE …]",
                       description=generic.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("type", metavar="TYPE", help="a job type the API lists (GET /v1/job-types)")
    p.add_argument("words", nargs="*", metavar="KEY=VALUE|FILE",
                   help="fields (JSON when they parse, else text; key=@file reads the value from a file) and files")
    p = sub.add_parser("sentiment", parents=common, help="texts → sentiment")
    p.add_argument("texts", nargs="*", help="texts to classify")
    p.add_argument("--file", "-f", action="append", default=[], help="a text file, one text per line (- is stdin)")
    p.add_argument("--csv", help="a CSV file; the texts are in --column")
    p.add_argument("--column", default="text", help="the CSV column of texts (default %(default)s)")
    p.add_argument("--batch", type=_positive, default=1, help="texts per job (sent as 'texts'; default 1)")
    p = sub.add_parser("detection", parents=common, help="images → labelled boxes")
    p.add_argument("images", nargs="+", help="image files, folders or quoted globs")
    p.add_argument("--confidence", type=float, help="minimum confidence of a box")
    p.add_argument("--max-detections", type=int, help="most boxes per image")
    p = sub.add_parser("audio_length", parents=common, help="audio files or URLs → duration")
    p.add_argument("sources", nargs="+", help="audio files, folders, quoted globs or http(s) URLs")
    p = sub.add_parser("scrape", parents=common, help="pages → fields by CSS selector, or EuroMillions draws")
    p.add_argument("urls", nargs="*", help="pages to scrape")
    p.add_argument("--select", "-s", action="append", default=[], metavar="NAME=CSS", help="a field to extract")
    p.add_argument("--euromillions", nargs="+", default=[], type=dt.date.fromisoformat, metavar="DATE",
                   help="draw dates, YYYY-MM-DD")
    p = sub.add_parser("run", parents=common, help="a JSON Lines file of mixed jobs")
    p.add_argument("file", help='one job per line: {"type": ..., <JSON body>} or {"type": ..., "file": PATH}')
    p = sub.add_parser("demo", parents=common, help="a few jobs of every type, from inputs made here (offline)")
    p.add_argument("--only", type=lambda s: [t for t in s.split(",") if t], help="comma-separated job types")
    p.add_argument("--strict", action="store_true",
                   help="a type skipped because no worker has its model makes the demo fail (exit 1)")
    p.add_argument("--pages", default=demo.pages_url(), metavar="URL",
                   help="where the workers fetch the demo's pages, which `make up` serves on 127.0.0.1 at "
                        "DEMO_PAGES_PORT (env DEMO_PAGES_URL, else http://127.0.0.1:$DEMO_PAGES_PORT; default "
                        f"{demo.DEFAULT_PAGES_URL})")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


@contextmanager
def plan_of(args: argparse.Namespace, api: Api, log: Console) -> Iterator[Plan]:
    """The jobs the command line asks for, checked against the job types the API has."""
    types = api.load_types()
    if args.command == "demo":
        yield demo_plan(args, types, api.readiness(), log)
        return
    if args.command == "submit":
        _known(args.type, types)
        yield sources.listed(generic.jobs(args.type, args.words, types[args.type]))
        return
    if args.command == "sentiment" and "-" in args.file:
        _known("sentiment", types)
        yield Plan(sources.sentiment(_texts(args), args.batch), None)
        return
    jobs = BUILDERS[args.command](args)
    for job_type in sorted({job.type for job in jobs}):
        _known(job_type, types)
    yield sources.listed(jobs)


def demo_plan(args: argparse.Namespace, types: dict[str, dict[str, Any]], ready: dict[str, Any] | None,
              log: Console) -> Plan:
    """The demo's jobs; one line per type it skips (why, and how to install what is missing)."""
    wanted = args.only or list(types)
    planned = demo.plan(types, [t for t in wanted if _known(t, types)], ready, args.pages)
    for job_type, why in planned.skipped.items():
        log.print(Text.assemble((f"skipped {job_type}: ", "bold yellow"), (why, "yellow")), soft_wrap=True)
    if not planned.jobs and not planned.skipped:
        raise UsageError("nothing to run: the API lists none of the job types asked for")
    return Plan(planned.jobs, len(planned.jobs), list(planned.skipped))


def _known(job_type: str, types: dict[str, dict[str, Any]]) -> bool:
    if job_type not in types:
        raise UsageError(f"the API has no job type {job_type!r} (it has: {', '.join(types)})")
    return True


def _texts(args: argparse.Namespace) -> Iterator[str]:
    yield from args.texts
    for name in args.file:
        yield from sources.read_lines(name)
    if args.csv:
        yield from sources.read_column(args.csv, args.column)


def _detection_options(args: argparse.Namespace) -> dict[str, str]:
    options = {"confidence": args.confidence, "max_detections": args.max_detections}
    return {k: str(v) for k, v in options.items() if v is not None}


BUILDERS: dict[str, Callable[[argparse.Namespace], list[sources.Job]]] = {
    "sentiment": lambda a: list(sources.sentiment(_texts(a), a.batch)),
    "detection": lambda a: sources.detection(a.images, _detection_options(a)),
    "audio_length": lambda a: sources.audio_length(a.sources),
    "scrape": lambda a: sources.scrape(a.urls, a.select, a.euromillions),
    "run": lambda a: list(sources.jsonl(a.file)),
}


@contextmanager
def ctrl_c() -> Iterator[threading.Event]:
    """An Event that Ctrl-C sets (in the main thread; elsewhere, just an Event)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = Console(stderr=True, highlight=False, log_path=False)
    started = time.monotonic()
    try:
        outcomes, stopped, skipped = run(args, log)
    except (UsageError, ClientError) as exc:
        log.print(Text.assemble(("error: ", "bold red"), (str(exc), "red")), soft_wrap=True)
        return 2
    except KeyboardInterrupt:  # before the jobs started: nothing was submitted
        return 130
    finish(args, outcomes, stopped, time.monotonic() - started, log)
    if stopped:
        return 130
    if skipped and args.strict:
        log.print(Text(f"--strict: job types skipped: {', '.join(skipped)}", style="red"), soft_wrap=True)
        return 1
    return 0 if all(o.phase == "done" for o in outcomes) else 1


def run(args: argparse.Namespace, log: Console) -> tuple[list[Outcome], bool, list[str]]:
    """Every job's outcome, whether Ctrl-C stopped the run, and the job types the demo skipped."""
    options = Options(args.concurrency, args.timeout, args.quiet)
    with Api(args.api, args.api_key, args.concurrency, Retry(attempts=max(0, args.retries))) as api, \
            ctrl_c() as stop, plan_of(args, api, log) as plan:
        return execute(api, plan, options, log, stop), stop.is_set(), plan.skipped


def finish(args: argparse.Namespace, outcomes: list[Outcome], stopped: bool, elapsed_s: float, log: Console) -> None:
    if args.output:
        report.write_jsonl(args.output, outcomes)
    out = Console(highlight=False, soft_wrap=True)
    if args.json:
        sys.stdout.write(report.as_json(outcomes, args.api, stopped) + "\n")
    else:
        report.print_table(out, outcomes, elapsed_s)
        report.print_failures(out, outcomes)
    if stopped:
        report.print_stopped(log, outcomes, args.api.rstrip("/"), args.output)
    advice = demo.hint((o.error["code"] for o in outcomes if o.error), args.pages) if args.command == "demo" else None
    if advice:
        log.print(Text(advice, style="yellow"), soft_wrap=True)
