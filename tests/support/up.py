"""`python -m launcher up` as a subprocess, started exactly as `make up` starts it: what the launcher tests share.

Each start gets a vhost of its own on the configured RabbitMQ (so its workers never take another run's jobs),
its own Redis key prefix and free ports.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests

from common.settings import get_settings
from launcher import ServiceError, ensure_services
from support.processes import ROOT, free_port
from support.wait import until

START_DEADLINE_S = 120
STOP_DEADLINE_S = 60
Launched = tuple[subprocess.Popen[str], "Output", dict[str, str]]


class Output:
    """The launcher's output, collected line by line in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.lines: list[str] = []
        self._stream = proc.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))

    def find(self, pattern: str) -> list[tuple[str, ...]]:
        return [m.groups() for line in list(self.lines) if (m := re.search(pattern, line))]

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])

    def close(self) -> None:
        self._thread.join(timeout=10)
        self._stream.close()


def wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen[str], output: Output) -> None:
    def launcher_alive_and_condition() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"the launcher exited with {proc.returncode} before {what}:\n{output.tail()}", pytrace=False)
        return condition()

    until(launcher_alive_and_condition, START_DEADLINE_S, f"{what}\n{output.tail()}", interval_s=0.2)


def answers(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=2)
    except requests.RequestException:
        return None


@contextlib.contextmanager
def private_vhost() -> Iterator[str]:
    """A fresh vhost on the configured RabbitMQ, deleted afterwards; its AMQP URL."""
    settings = get_settings()
    problem = None
    try:
        ensure_services(settings)
    except ServiceError as exc:
        problem = str(exc)
    if problem:
        pytest.fail(f"the services are not ready: {problem}", pytrace=False)
    api = urlsplit(settings.rabbitmq_management_url)
    base = api._replace(netloc=f"{api.hostname}:{api.port or 15672}").geturl()
    broker = urlsplit(settings.broker_url)
    vhost = f"test-launcher-{uuid.uuid4().hex[:8]}"
    auth = (api.username or "guest", api.password or "guest")
    requests.put(f"{base}vhosts/{vhost}", auth=auth, timeout=10).raise_for_status()
    requests.put(f"{base}permissions/{vhost}/{quote(broker.username or 'guest')}", auth=auth, timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    try:
        yield broker._replace(path=f"/{vhost}").geturl()
    finally:
        requests.delete(f"{base}vhosts/{vhost}", auth=auth, timeout=10)


def launcher_env(broker_url: str, **overrides: str) -> dict[str, str]:
    """The operator's environment plus a vhost, key prefix and free ports of its own; no Flower password and
    no FETCH_ALLOWLIST, so the launcher chooses them as `make up` does."""
    env = {**os.environ, "BROKER_URL": broker_url, "API_PORT": str(free_port()), "FLOWER_PORT": str(free_port()),
           "DEMO_PAGES_PORT": str(free_port()), "KEY_PREFIX": f"test-launcher-{uuid.uuid4().hex[:8]}:",
           "PYTHONPATH": str(ROOT / "src")}
    for name in ("FLOWER_PASSWORD", "FETCH_ALLOWLIST", "API_KEYS", "ALLOW_ANONYMOUS"):
        env.pop(name, None)
    return {**env, **overrides}


@contextlib.contextmanager
def launched(env: dict[str, str]) -> Iterator[Launched]:
    """`python -m launcher up` with `env`; stopped (the hard way if need be) with every child on the way out."""
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "up"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    output = Output(proc)
    try:
        yield proc, output, env
    finally:
        if proc.poll() is None:  # the test failed midway: stop it all, the hard way if need be
            proc.send_signal(signal.SIGINT)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for _, pid in output.find(r"started (\S+) \(pid (\d+)\)"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGKILL)
        output.close()


def process_groups() -> set[int]:
    """The process group of every process on this machine."""
    return set(_group_of_each_process().values())


def members_of(groups: set[int]) -> set[int]:
    """Every process in one of `groups` (a child the launcher started, with its own children)."""
    return {pid for pid, group in _group_of_each_process().items() if group in groups}


def _group_of_each_process() -> dict[int, int]:
    groups = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            groups[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[2])
    return groups


def command_lines(pids: set[int] | None = None) -> dict[int, str]:
    """pid → argv as `ps` shows it, of every process (or of `pids`)."""
    found = {}
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        pid = int(path.parent.name)
        if pids is None or pid in pids:
            with contextlib.suppress(OSError):
                found[pid] = path.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return found
