"""The launcher's private services: a secret never appears on a command line, where `ps` shows it to
every local user."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from common.settings import Settings
from launcher.rabbitmq import private_node
from launcher.services import ensure_redis, stop_private_services
from support.processes import free_port
from support.up import command_lines
from support.wait import until

PASSWORD = 'p@ss "word" \\ with spaces-7f3a9'


def test_a_private_redis_gets_its_password_off_the_command_line(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which("redis-server")
    if real is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server", pytrace=False)
    # A wrapper first on PATH records the argv redis-server is started with, as `ps` shows it at that moment,
    # then execs the real one: Redis later overwrites its own process title, which would hide a leak.
    shim, seen = tmp_path / "bin", tmp_path / "argv.txt"
    shim.mkdir()
    (shim / "redis-server").write_text(f'#!/bin/sh\ntr "\\0" " " < /proc/$$/cmdline >> {seen}\nexec {real} "$@"\n')
    (shim / "redis-server").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    port = free_port()
    url = f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0"
    settings = Settings().model_copy(update=dict(redis_url=url, run_dir=tmp_path / "run"))
    pid_file = tmp_path / "run" / "redis" / f"redis-{port}.pid"
    try:
        assert ensure_redis(settings).startswith("started")
        assert seen.read_text().strip(), "the wrapper did not run"
        assert PASSWORD not in seen.read_text() and "requirepass" not in seen.read_text()
        leaks = {pid: line for pid, line in command_lines().items() if PASSWORD in line}
        assert not leaks, leaks
        assert int(pid_file.read_text()) in command_lines()
        with redis.Redis.from_url(url) as client:
            assert client.ping()
        with redis.Redis.from_url(url.replace(quote(PASSWORD, safe=""), "wrong")) as client, \
                pytest.raises(redis.AuthenticationError):
            client.ping()
    finally:
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        stop_private_services(settings)
        until(lambda: pid not in command_lines(), 30, "the private Redis to stop")


def test_the_private_rabbitmq_config_with_its_password_is_private(tmp_path: Path) -> None:
    settings = Settings().model_copy(update=dict(broker_url=f"amqp://jobs:{quote(PASSWORD, safe='')}@127.0.0.1:5999//",
                                                 run_dir=tmp_path))
    node = private_node(settings)
    (tmp_path / "rabbitmq").mkdir()
    (tmp_path / "rabbitmq" / "rabbitmq.conf").write_text("left by an older run\n")
    node._write_files()
    config = tmp_path / "rabbitmq" / "rabbitmq.conf"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "default_pass" in config.read_text()
