"""Run a plan of jobs: a bounded ThreadPoolExecutor whose threads each submit one job and follow it to its end (its
event stream, for its progress; the long-poll when the stream fails), all sharing one rich Progress whose bar
counts a running job's progress (detection reports it). Ctrl-C sets `stop`: nothing new is submitted and waiting
threads let go."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from client.session import FINAL, WAIT_S, Api, ClientError, Stopped
from client.sources import Job, Plan

TICK_S = 0.2
PLAIN_EVERY_S = 5.0


@dataclass
class Options:
    concurrency: int = 16
    timeout_s: float | None = None
    quiet: bool = False


@dataclass
class Outcome:
    """What is known of one input. `status` is the API's word, or NOT_SUBMITTED, SUBMITTING, REJECTED, ERROR."""

    job: Job
    status: str = "NOT_SUBMITTED"
    job_id: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    began: float | None = None
    latency_s: float | None = None
    progress: int = 0  # percent, while it runs (its event stream)

    @property
    def phase(self) -> str:
        if self.status == "SUCCESS":
            return "done"
        if self.error is not None or self.status in FINAL:
            return "failed"
        return "queued" if self.job_id is None else "running"


def execute(api: Api, plan: Plan, options: Options, console: Console, stop: threading.Event) -> list[Outcome]:
    """Run every job of `plan` (at most `options.concurrency` at once) and return what became of each input."""
    outcomes: list[Outcome] = []
    jobs = iter(plan.jobs)
    with _progress(console) as progress, ThreadPoolExecutor(options.concurrency, "job") as pool:
        board = Board(progress, outcomes, plan.total, api)

        def start(outcome: Outcome) -> Future[None]:
            return pool.submit(run_one, api, outcome, options=options, stop=stop, console=progress.console)

        pending: set[Future[None]] = set()
        more = True
        while more or pending:
            if stop.is_set():
                more, pending = False, board.halt(pending)
            else:
                more = _feed(jobs, outcomes, pending, start, 2 * options.concurrency)
            done, pending = wait(pending, timeout=TICK_S, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()  # a bug in a thread surfaces here
            board.show(final=not (more or pending))
    if plan.total is not None:
        outcomes += [Outcome(job) for job in jobs]  # left unsubmitted by Ctrl-C
    return outcomes


def _feed(jobs: Iterator[Job], outcomes: list[Outcome], pending: set[Future[None]],
          start: Callable[[Outcome], Future[None]], limit: int) -> bool:
    """Start jobs until `limit` are pending; False once there are no more."""
    while len(pending) < limit:
        job = next(jobs, None)
        if job is None:
            return False
        outcomes.append(Outcome(job))
        pending.add(start(outcomes[-1]))
    return True


def run_one(api: Api, outcome: Outcome, *, options: Options, stop: threading.Event, console: Console) -> None:
    """Submit one job, then follow it until it is final, `stop` is set or the client's timeout passes."""
    if stop.is_set():
        return
    outcome.status, outcome.began = "SUBMITTING", time.monotonic()
    try:
        accepted = api.submit(outcome.job, stop)
        outcome.job_id, outcome.status = accepted["job_id"], accepted["status"]
        deadline = None if options.timeout_s is None else time.monotonic() + options.timeout_s
        record = api.follow(accepted["job_id"], stop, deadline, lambda percent: setattr(outcome, "progress", percent))
    except Stopped:
        outcome.status = "NOT_SUBMITTED" if outcome.job_id is None else outcome.status
        return
    except ClientError as exc:
        if outcome.job_id is None:
            outcome.status = "REJECTED" if exc.rejected else "ERROR"
        outcome.error = exc.as_dict()
    else:
        outcome.status, outcome.result, outcome.error = record["status"], record["result"], record["error"]
        if outcome.status not in FINAL and not stop.is_set():
            outcome.error = {"code": "client_timeout", "message": f"not final after {options.timeout_s:g} s "
                                                                  f"(still {outcome.status}); the job goes on"}
    if outcome.phase in ("done", "failed"):
        outcome.latency_s = time.monotonic() - outcome.began
        if not options.quiet or outcome.phase == "failed":
            say(console, line_of(outcome))


def say(console: Console, message: Text | str) -> None:
    """A log line: rich's log on a terminal (above the bar), else a plain line that is never wrapped."""
    text = Text(message) if isinstance(message, str) else message
    if console.is_terminal:
        console.log(text)
    else:
        console.print(Text.assemble(time.strftime("%H:%M:%S "), text), soft_wrap=True)


def line_of(outcome: Outcome) -> Text:
    ok = outcome.phase == "done"
    mark = Text("✓ " if ok else "✗ ", style="green" if ok else "red")
    head = Text.assemble(mark, (f"{outcome.job.type:<12} ", "bold"), _short(outcome.job.label, 48), " → ")
    if ok:
        result = outcome.result
        if isinstance(result, dict) and result.get("url") == outcome.job.label:
            result = {k: v for k, v in result.items() if k != "url"}  # the label says it already
        return head.append(_short(json.dumps(result, ensure_ascii=False), 100))
    error = outcome.error or {}
    return head.append(f"{outcome.status} {error.get('code', '')}: {error.get('message', '')}", style="red")


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _progress(console: Console) -> Progress:
    fields = ("submitted {task.fields[submitted]} · running {task.fields[running]} · [green]done {task.fields[done]}"
              "[/] · [red]failed {task.fields[failed]}[/] · {task.fields[rate]:.1f}/s")
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(fields),
                    TimeElapsedColumn(), console=console, disable=not console.is_terminal)


def _fields(outcomes: list[Outcome], started: float) -> dict[str, Any]:
    counts = Counter(o.phase for o in outcomes)
    finished = counts["done"] + counts["failed"]
    rate = finished / max(time.monotonic() - started, 1e-6)
    running = sum(o.progress for o in outcomes if o.phase == "running") / 100  # a share of a job each
    return {"submitted": sum(o.job_id is not None for o in outcomes), "running": counts["running"],
            "done": counts["done"], "failed": counts["failed"], "rate": rate, "completed": finished,
            "share": finished + running}


class Board:
    """Keeps the bar up to date; without a terminal, says the same in a plain line every few seconds."""

    def __init__(self, progress: Progress, outcomes: list[Outcome], total: int | None, api: Api) -> None:
        self.progress, self.outcomes, self.total, self.api = progress, outcomes, total, api
        self.started = self.last_plain = time.monotonic()
        fields = _fields(outcomes, self.started)
        del fields["share"]
        self.bar = progress.add_task("jobs", total=total, **fields)
        self.halted = False
        self.last_line, self.last_show = "", 0.0

    def halt(self, pending: set[Future[None]]) -> set[Future[None]]:
        """After Ctrl-C: drop the jobs not started yet, say so once, return those still running."""
        if not self.halted:
            self.halted = True
            say(self.progress.console, Text("Ctrl-C: submitting nothing more; collecting what is known "
                                            f"(within {WAIT_S} s)", style="yellow"))
        self.api.interrupt()  # event streams let go now (their threads end with one look at their job)
        return {f for f in pending if not f.cancel()}

    def show(self, final: bool = False) -> None:
        if not final and time.monotonic() - self.last_show < TICK_S:
            return
        self.last_show = time.monotonic()
        fields = _fields(self.outcomes, self.started)
        completed, share = fields.pop("completed"), fields.pop("share")
        total = self.total if self.total is not None or not final else len(self.outcomes)
        self.progress.update(self.bar, completed=share, total=total, **fields)
        if self.progress.disable and (final or time.monotonic() - self.last_plain >= PLAIN_EVERY_S):
            of = f"/{total}" if total is not None else ""
            line = (f"{completed}{of} finished: submitted {fields['submitted']}, running {fields['running']}, "
                    f"done {fields['done']}, failed {fields['failed']}")
            if line != self.last_line:
                say(self.progress.console, f"{line}, {fields['rate']:.1f}/s")
            self.last_plain, self.last_line = time.monotonic(), line
