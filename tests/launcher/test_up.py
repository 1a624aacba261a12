"""`python -m launcher up` runs the API, one worker pool per job type and Flower; Ctrl-C stops them all.

Self-contained: it makes the services ready itself, and runs the launcher against a vhost of its own
(so its workers never take another run's jobs) with its own ports and Redis key prefix.
"""

from __future__ import annotations

import signal
import subprocess

import pytest
import requests

from common.catalog import CATALOG
from common.settings import get_settings
from support.up import STOP_DEADLINE_S, Output, answers, process_groups, wait_for


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
    assert set(children) == {"api", "flower", "pages", "webhooks", *(t.name for t in CATALOG)}  # pages: the demo's

    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=STOP_DEADLINE_S) == 0, output.tail()
    except subprocess.TimeoutExpired:
        pytest.fail(f"the launcher did not stop within {STOP_DEADLINE_S} s of SIGINT:\n{output.tail()}")
    left = {name: pid for name, pid in children.items() if pid in process_groups()}
    assert not left, f"processes left behind in the groups of {sorted(left)}"
