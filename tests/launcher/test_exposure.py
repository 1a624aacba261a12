"""`make up` with the API on a non-loopback address needs API keys, or ALLOW_ANONYMOUS=1 to run it open on purpose."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Callable

import pytest

from common.settings import Settings
from launcher import ServiceError
from launcher.guards import check_before_up
from support.up import STOP_DEADLINE_S, Launched, answers, wait_for

REFUSAL_DEADLINE_S = 30


def test_an_open_api_without_keys_is_refused_unless_allow_anonymous(
        start_launcher: Callable[..., Launched]) -> None:
    proc, output, env = start_launcher(API_HOST="0.0.0.0")
    try:
        code = proc.wait(timeout=REFUSAL_DEADLINE_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the launcher did not refuse within {REFUSAL_DEADLINE_S} s:\n{output.tail()}")
    output.close()
    assert code != 0
    (line,) = [line for line in output.lines if line.strip()]  # one sentence, before anything started
    assert "API_KEYS=" in line and "ALLOW_ANONYMOUS=1" in line, line
    assert answers(f"http://127.0.0.1:{env['API_PORT']}/health") is None

    proc, output, env = start_launcher(API_HOST="0.0.0.0", ALLOW_ANONYMOUS="1")
    wait_for(lambda: (r := answers(f"http://127.0.0.1:{env['API_PORT']}/health")) is not None and r.ok,
             "answer on /health", proc, output)
    assert output.find(rf"Listening at: http://0\.0\.0\.0:{env['API_PORT']}")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=STOP_DEADLINE_S) == 0, output.tail()


@pytest.mark.parametrize(("changes", "refused"), [
    ({}, False),
    ({"api_host": "localhost"}, False),
    ({"api_host": "127.0.0.2"}, False),
    ({"api_host": "::1"}, False),
    ({"api_host": "0.0.0.0"}, True),
    ({"api_host": "::"}, True),
    ({"api_host": "192.168.1.20"}, True),
    ({"api_host": "api.example.org"}, True),
    ({"api_host": "0.0.0.0", "api_keys": " , "}, True),
    ({"api_host": "0.0.0.0", "api_keys": "k1"}, False),
    ({"api_host": "0.0.0.0", "allow_anonymous": True}, False),
    ({"fetch_allowlist": "127.0.0.1:http"}, True),
    ({"demo_pages_port": 70000}, True),
])
def test_what_up_refuses(changes: dict[str, object], refused: bool) -> None:
    settings = Settings().model_copy(update={"demo_pages_port": 0, **changes})  # type: ignore[arg-type]
    if refused:
        with pytest.raises(ServiceError):
            check_before_up(settings)
    else:
        check_before_up(settings)


def test_a_taken_demo_pages_port_is_refused_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServiceError, match="DEMO_PAGES_PORT"):
            check_before_up(Settings().model_copy(update=dict(demo_pages_port=port)))
    check_before_up(Settings().model_copy(update=dict(demo_pages_port=port)))
