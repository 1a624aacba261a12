"""Real platforms for the tests and the benchmarks, started from the launcher's own commands
(`launcher.commands`), so they run exactly what `make up` runs: the API under gunicorn, Celery worker
pools, Flower. Each process logs to `run/test-logs/<name>.log`, dies with its parent, and is stopped
with SIGTERM (Celery's warm shutdown).

`build` starts an API and pools on an environment and yields once every pool consumes; `isolated`
does the same in a vhost and key prefix of its own on the local services (`launcher.sandbox`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import requests
from kombu import Connection

from common.settings import PROJECT_ROOT
from launcher import sandbox
from launcher.children import die_with_parent
from launcher.commands import API_APP, CELERY_APP, OFFLINE, api_argv, worker_argv

LOGS = PROJECT_ROOT / "run" / "test-logs"
FLOWER = [sys.executable, "-m", "launcher", "flower"]  # what Compose runs: it execs `commands.flower_spec`
T = TypeVar("T")


class Exited(AssertionError):
    """A platform process is gone: waiting on it any longer would only hide why."""


def until(condition: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.05) -> T:
    """Return the first truthy value of `condition()`; fail with `what` after `timeout_s`, or at once when a
    process the condition checks has exited (`Exited`)."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exited:
            raise
        except Exception as exc:  # the condition may fail while a service comes up
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}{detail}")
        time.sleep(interval_s)


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

    def alive(self) -> bool:
        """True while it runs; an AssertionError with its last lines once it has exited."""
        if self.popen.poll() is not None:
            raise Exited(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
        return True

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


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], wrap: Sequence[str] = ()) -> Proc:
    """`argv` from the checkout's root, its output in `run/test-logs/<name>.log`; `wrap` goes in front (e.g.
    `ip netns exec <ns>`, which execs it: the pid stays the process's own)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        popen = subprocess.Popen([*wrap, *argv], cwd=PROJECT_ROOT, env=dict(env), stdout=handle,
                                 stderr=subprocess.STDOUT, preexec_fn=die_with_parent)  # no orphans if we die
    return Proc(name, popen, log)


def platform_env(broker_url: str, prefix: str, redis_url: str = sandbox.REDIS_URL, **overrides: str) -> dict[str, str]:
    """This process's environment without its broker, Redis and key prefix settings, on these instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROKER_", "REDIS_", "KEY_PREFIX"))}
    env.update(BROKER_URL=broker_url, REDIS_URL=redis_url, KEY_PREFIX=prefix, PYTHONPATH=str(PROJECT_ROOT / "src"),
               PYTHONUNBUFFERED="1")
    env.setdefault("YOLO_CONFIG_DIR", str(PROJECT_ROOT / "run"))  # as `make up` does
    return {**env, **overrides}


def start_api(env: Mapping[str, str], name: str = "api", app: str = API_APP, wrap: Sequence[str] = (),
              wait: bool = True) -> tuple[Proc, str]:
    """`app` (the API, or a benchmark's baseline) under the platform's gunicorn settings, on a free port;
    with `wait`, once `/health` answers."""
    port = free_port()
    proc = spawn(name, api_argv(app), {**env, "API_PORT": str(port)}, wrap)
    url = f"http://127.0.0.1:{port}"
    if wait:
        until(lambda: proc.alive() and requests.get(f"{url}/health", timeout=1).ok, 60,
              f"{name} at {url}\n{proc.tail()}")
    return proc, url


def start_worker(env: Mapping[str, str], queue: str, name: str, concurrency: int = 1, *flags: str,
                 app: str = CELERY_APP, events: bool = False, wrap: Sequence[str] = ()) -> Proc:
    """A pool of Celery app `app` consuming `queue`, node `<name>@<host>`; model libraries offline."""
    argv = worker_argv(queue, name, concurrency, env.get("LOG_LEVEL") or "INFO", events, app)
    return spawn(name, [*argv, *flags], {**env, **OFFLINE}, wrap)


def start_flower(env: Mapping[str, str], name: str) -> Proc:
    return spawn(name, FLOWER, env)


def consumers(broker_url: str, queue: str) -> int:
    """Consumers of `queue` right now, from a passive declare (the management API lags by seconds)."""
    with Connection(broker_url, connect_timeout=5) as conn:
        _, _, count = conn.default_channel.queue_declare(queue=queue, passive=True)
    return int(count)


def wait_consuming(env: Mapping[str, str], queues: Sequence[str], procs: Sequence[Proc], url: str | None = None,
                   timeout_s: float = 120) -> None:
    """Until each queue has a consumer, as the API at `url` reports it in `/ready` (the figures users see,
    which lag the broker) where it lists the queue, else from the broker; fail at once with its log when
    one of `procs` exits."""
    def ready() -> bool:
        for proc in procs:
            proc.alive()
        listed = requests.get(f"{url}/ready", timeout=5).json()["queues"] if url else {}
        counts = [(listed[q]["consumers"] or 0) if q in listed else consumers(env["BROKER_URL"], q) for q in queues]
        return all(count >= 1 for count in counts)

    until(ready, timeout_s, f"a consumer on {', '.join(queues)}", interval_s=0.25)


@dataclass
class Platform:
    """A running platform: its API's `url` (None without one), the environment of its processes, and the
    processes by role (`api`, then each pool by its queue)."""

    url: str | None
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return self.env["KEY_PREFIX"]

    @property
    def vhost(self) -> str:
        return self.env["BROKER_URL"].rsplit("/", 1)[1]


@contextmanager
def build(env: dict[str, str], pools: Mapping[str, int], *, name: str = "test", api: bool = True,
          apps: Mapping[str, str] | None = None, flags: Sequence[str] = ()) -> Iterator[Platform]:
    """The API (with `api`) and one pool per entry of `pools` (queue → concurrency; a comma-separated key
    is one pool on several queues), yielded once every queue has a consumer; all stopped on the way out.
    A pool runs the platform's Celery app, or the one `apps` names for its queue (a test's, a baseline's)."""
    run = uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        platform = Platform(None, env)
        if api:
            proc, platform.url = start_api(env, f"{name}-api-{run}")
            stack.callback(proc.stop)
            platform.procs["api"] = proc
        for queue, concurrency in pools.items():
            node = f"{name}-{queue.replace(',', '+')}-{run}"
            worker = start_worker(env, queue, node, concurrency, *flags, app=(apps or {}).get(queue, CELERY_APP))
            stack.callback(worker.stop)
            platform.procs[queue] = worker
        wait_consuming(env, [q for key in pools for q in key.split(",")], list(platform.procs.values()),
                       platform.url)
        yield platform


@contextmanager
def isolated(pools: Mapping[str, int], *, name: str = "test", api: bool = True, apps: Mapping[str, str] | None = None,
             flags: Sequence[str] = (), **overrides: str) -> Iterator[Platform]:
    """`build` in a vhost and key prefix of its own on the local RabbitMQ and Redis, both removed after."""
    vhost = sandbox.create_vhost(name)
    prefix = f"{name}-{uuid.uuid4().hex[:8]}:"
    try:
        env = platform_env(f"{sandbox.AMQP_ROOT}/{vhost}", prefix, **overrides)
        with build(env, pools, name=name, api=api, apps=apps, flags=flags) as platform:
            yield platform
    finally:
        sandbox.delete_vhost(vhost)
        sandbox.delete_keys(prefix)


@contextmanager
def settings_of(env: Mapping[str, str]) -> Iterator[None]:
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


__all__ = ["FLOWER", "LOGS", "Exited", "Platform", "Proc", "build", "consumers", "free_port", "isolated",
           "platform_env", "settings_of", "spawn", "start_api", "start_flower", "start_worker", "until",
           "wait_consuming"]
