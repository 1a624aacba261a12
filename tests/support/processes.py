"""Real platform processes for the tests: gunicorn and Celery worker pools."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from launcher.children import die_with_parent
from support.wait import until

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "run" / "test-logs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


def spawn(name: str, args: list[str], env: dict[str, str]) -> Proc:
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                 preexec_fn=die_with_parent)  # no orphans if the test run is killed
    return Proc(name, popen, log)


def start_api(env: dict[str, str]) -> tuple[Proc, str]:
    port = free_port()
    env = {**env, "API_PORT": str(port), "API_WORKERS": "2"}
    proc = spawn("api", [sys.executable, "-m", "gunicorn", "-c", "src/api/gunicorn_conf.py", "api.wsgi:app"], env)
    url = f"http://127.0.0.1:{port}"
    until(lambda: _alive(proc) and requests.get(f"{url}/health", timeout=1).ok, 60, f"the API at {url}\n{proc.tail()}")
    return proc, url


def start_worker(env: dict[str, str], queue: str, name: str, concurrency: int = 1, *extra: str,
                 app: str = "workers.celery_app") -> Proc:
    args = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue,
            "-n", f"{name}@%h", "-c", str(concurrency), "--loglevel", "INFO", *extra]
    env = {**env, "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0"}
    if app.startswith("support."):  # a test-only app (e.g. `support.fragile_worker`) lives under tests/
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT / "tests")]))
    return spawn(name, args, env)


def _alive(proc: Proc) -> bool:
    if proc.popen.poll() is not None:
        raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
    return True


@contextmanager
def settings_of(env: dict[str, str]) -> Iterator[None]:
    """This process talks to the same broker vhost, Redis and key prefix as the platform `env` describes."""
    from common.settings import get_settings
    from common.store import get_redis

    names = ("BROKER_URL", "REDIS_URL", "KEY_PREFIX")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: env[k] for k in names})
    get_settings.cache_clear()
    get_redis.cache_clear()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
        get_redis.cache_clear()


def env_for(vhost: str, prefix: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROKER_", "REDIS_", "KEY_PREFIX"))}
    env.update(BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}", REDIS_URL="redis://127.0.0.1:6379/0",
               KEY_PREFIX=prefix, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1", **overrides)
    return env
