"""Child processes, each in its own process group, stopped together and never left behind."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from launcher.commands import Spec
from launcher.output import Prefixed

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the parent dies, even by SIGKILL (Linux)."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, specs: list[Spec], out: Prefixed, cwd: Path) -> None:
        self.specs = specs
        self.out = out
        self.cwd = cwd
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pumps: list[threading.Thread] = []

    def start(self) -> None:
        """Start every child, then the threads copying their output (no thread runs during a fork)."""
        for spec in self.specs:
            self.procs[spec.name] = subprocess.Popen(
                spec.argv, cwd=self.cwd, env=spec.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        for name, proc in self.procs.items():
            self.out.say(f"started {name} (pid {proc.pid})")
        for name, proc in self.procs.items():
            assert proc.stdout is not None
            self._pumps.append(self.out.pump(name, proc.stdout))

    def exited(self) -> tuple[str, int] | None:
        """The first child found dead, with its exit code (negative: killed by that signal)."""
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self, grace_s: float, hurry: threading.Event) -> None:
        """SIGTERM to each child (Celery's warm shutdown lets running jobs finish), then wait up to
        `grace_s`, or until `hurry` is set; then SIGKILL whatever is left in each process group."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self._running() and time.monotonic() < deadline and not hurry.is_set():
            hurry.wait(0.2)
        for name, proc in self.procs.items():
            if proc.poll() is None:
                self.out.say(f"{name} still running: killed", "bold red")
            _kill_group(proc.pid)
            proc.wait()
        for pump in self._pumps:
            pump.join(timeout=2)

    def _running(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is None]


def _kill_group(pgid: int) -> None:
    """SIGKILL every process still in the group (a leftover pool child, a gunicorn worker)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
