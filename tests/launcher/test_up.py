"""`python -m launcher up` runs the API, one worker pool per job type and Flower; Ctrl-C stops them all.

Self-contained: it makes the services ready itself, and runs the launcher against a vhost of its own
(so its workers never take another run's jobs) with its own ports and Redis key prefix.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests

from common.catalog import CATALOG
from common.settings import get_settings
from launcher import ServiceError, ensure_services
from support.wait import until

ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 120
STOP_DEADLINE_S = 60


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@pytest.fixture
def broker_url() -> Iterator[str]:
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
    yield broker._replace(path=f"/{vhost}").geturl()
    requests.delete(f"{base}vhosts/{vhost}", auth=auth, timeout=10)


@pytest.fixture
def launcher(broker_url: str) -> Iterator[tuple[subprocess.Popen[str], Output, dict[str, str]]]:
    env = {**os.environ, "BROKER_URL": broker_url, "API_PORT": str(free_port()), "FLOWER_PORT": str(free_port()),
           "KEY_PREFIX": f"test-launcher-{uuid.uuid4().hex[:8]}:", "PYTHONPATH": str(ROOT / "src")}
    env.pop("FLOWER_PASSWORD", None)
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "up"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    output = Output(proc)
    yield proc, output, env
    if proc.poll() is None:  # the test failed midway: stop it all, the hard way if need be
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for _, pid in output.find(r"started (\S+) \(pid (\d+)\)"):
        with suppress(ProcessLookupError):
            os.killpg(int(pid), signal.SIGKILL)
    output.close()


def process_groups() -> set[int]:
    """The process group of every process on this machine."""
    groups = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            groups.add(int(stat.read_text().rsplit(")", 1)[1].split()[2]))
    return groups


def test_up_serves_everything_and_ctrl_c_stops_every_child(
        launcher: tuple[subprocess.Popen[str], Output, dict[str, str]]) -> None:
    proc, output, env = launcher
    api, flower = f"http://127.0.0.1:{env['API_PORT']}", f"http://127.0.0.1:{env['FLOWER_PORT']}"

    wait_for(lambda: bool(output.find(r"^launcher\s+\| ready in")), "the ready line", proc, output)
    ready = requests.get(f"{api}/ready", timeout=10)  # said only once a worker consumes every job queue
    assert ready.status_code == 200, ready.text
    queues = ready.json()["queues"]
    assert all(queues[t.queue]["consumers"] >= 1 for t in CATALOG), queues
    wait_for(lambda: bool(output.find(r"^launcher\s+\| API docs")), "URLs printed", proc, output)

    passwords = output.find(r"Flower password for this run: (\S+)")
    assert passwords, output.tail()
    user = get_settings().flower_user or "admin"
    wait_for(lambda: answers(flower) is not None, "answer from Flower", proc, output)
    assert requests.get(flower, timeout=5).status_code == 401
    assert requests.get(flower, auth=(user, passwords[0][0]), timeout=5).status_code == 200

    children = {name: int(pid) for name, pid in output.find(r"started (\S+) \(pid (\d+)\)")}
    assert set(children) == {"api", "flower", *(t.name for t in CATALOG)}

    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=STOP_DEADLINE_S) == 0, output.tail()
    except subprocess.TimeoutExpired:
        pytest.fail(f"the launcher did not stop within {STOP_DEADLINE_S} s of SIGINT:\n{output.tail()}")
    left = {name: pid for name, pid in children.items() if pid in process_groups()}
    assert not left, f"processes left behind in the groups of {sorted(left)}"
