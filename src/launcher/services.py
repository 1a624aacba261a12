"""Make RabbitMQ, its management API and Redis ready: reach them, or start private ones under `run/`.

Nothing is declared here (the workers and the API declare their queues); this only gets the services
answering, and prints one line per service: reachable, started or enabled.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

from rich.console import Console

from common.settings import Settings
from launcher.probes import (
    LOCAL_HOSTS,
    ServiceError,
    amqp_reachable,
    management_reachable,
    port_open,
    redis_reachable,
    safe_url,
    wait_until,
)
from launcher.rabbitmq import private_node

START_TIMEOUT_S = 60
PLUGIN_TIMEOUT_S = 30
REDIS_INSTALL_HINT = "install it with `apt-get install redis-server`, or point REDIS_URL at a running Redis"


def ensure_services(settings: Settings, console: Console | None = None) -> None:
    console = console or Console(highlight=False, soft_wrap=True)
    for name, check in (("rabbitmq", ensure_rabbitmq), ("redis", ensure_redis),
                        ("rabbitmq management", ensure_management)):
        console.print(f"{name:<20} {check(settings)}", markup=False)


def ensure_rabbitmq(settings: Settings) -> str:
    url = settings.broker_url
    if amqp_reachable(url):
        return f"reachable at {safe_url(url)}"
    host, port = urlsplit(url).hostname or "", urlsplit(url).port or 5672
    _check_startable("RabbitMQ", "BROKER_URL", host, port)
    node = private_node(settings)
    node.start()
    if not wait_until(lambda: amqp_reachable(url), START_TIMEOUT_S):
        raise ServiceError(f"The private RabbitMQ node {node.name} did not answer within {START_TIMEOUT_S} s; "
                           f"see {node.base / 'log'}.")
    return f"started {node.name} at {safe_url(url)} (data in {node.base})"


def ensure_management(settings: Settings) -> str:
    url = settings.rabbitmq_management_url
    if management_reachable(url):
        return f"reachable at {safe_url(url)}"
    node = private_node(settings)
    if node.running():
        node.enable_management()
        done = f"enabled its management plugin on the private node {node.name}"
    elif _system_management_enabled():
        done = "the system broker's management plugin is enabled"
    else:  # a change to the machine's own broker: say so
        _enable_system_management()
        done = ("enabled the management plugin on the system broker (`rabbitmq-plugins enable rabbitmq_management`; "
                "it stays enabled)")
    if not wait_until(lambda: management_reachable(url), PLUGIN_TIMEOUT_S):
        raise ServiceError(f"RabbitMQ's management API did not answer at {safe_url(url)} within "
                           f"{PLUGIN_TIMEOUT_S} s ({done}); check RABBITMQ_MANAGEMENT_URL.")
    return f"{done}; answers at {safe_url(url)}"


def ensure_redis(settings: Settings) -> str:
    url = settings.redis_url
    if redis_reachable(url):
        return f"reachable at {safe_url(url)}"
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 6379
    _check_startable("Redis", "REDIS_URL", host, port)
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError(f"Redis is not reachable at {host}:{port} and not installed: {REDIS_INSTALL_HINT}.")
    folder = settings.run_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    config = {"daemonize": "yes", "bind": "127.0.0.1", "port": str(port), "dir": str(folder), "save": "",
              "appendonly": "no", "pidfile": str(_redis_pid_file(settings, port)),
              "logfile": str(folder / f"redis-{port}.log")}
    if parts.password:
        config["requirepass"] = unquote(parts.password)  # as redis-py reads it from the URL
    try:  # the configuration, password included, goes in on stdin: argv is visible to every local user in `ps`
        subprocess.run([binary, "-"], input=redis_config(config).encode(), check=True, capture_output=True,
                       timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServiceError(f"redis-server did not start on port {port} ({exc}); see {folder}.") from exc
    if not wait_until(lambda: redis_reachable(url), START_TIMEOUT_S):
        raise ServiceError(f"The private Redis did not answer at {host}:{port}; see {folder}.")
    return f"started at {safe_url(url)} (private, in {folder}, nothing kept on disk)"


def redis_config(options: dict[str, str]) -> str:
    """redis.conf lines, each value double-quoted: `\\` and `"` escaped, control characters as `\\xHH`."""
    def quoted(value: str) -> str:
        return '"' + "".join(_redis_char(c) for c in value) + '"'

    return "".join(f"{name} {quoted(value)}\n" for name, value in options.items())


def _redis_char(c: str) -> str:
    if c in '\\"':
        return "\\" + c
    return f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c


def stop_private_services(settings: Settings) -> None:
    """Stop the private RabbitMQ node and Redis that `ensure_services` started, if they run."""
    node = private_node(settings)
    if node.running():
        node.stop()
        print(f"rabbitmq             stopped {node.name}")
    pid_file = _redis_pid_file(settings, urlsplit(settings.redis_url).port or 6379)
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            print(f"redis                stopped (pid file {pid_file})")
        except (OSError, ValueError):
            pass


def _check_startable(service: str, variable: str, host: str, port: int) -> None:
    """A private service can only take the place of one on this machine, on a free port."""
    if host not in LOCAL_HOSTS:
        raise ServiceError(f"{service} is not reachable at {host}:{port}; start it there, or point {variable} "
                           "at a running one.")
    if port_open(host, port):
        raise ServiceError(f"Port {port} is taken by something that is not a {service} accepting the configured "
                           f"credentials; free it, or change the URL's port.")


def _system_management_enabled() -> bool:
    """Whether the system broker's enabled plugins include the management plugin (False when unknown)."""
    try:
        done = subprocess.run([_plugins_tool(), "-q", "list", "-e", "-m", "^rabbitmq_management$"],
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "rabbitmq_management" in done.stdout.split()


def _plugins_tool() -> str:
    return shutil.which("rabbitmq-plugins") or "/usr/sbin/rabbitmq-plugins"


def _enable_system_management() -> None:
    tool = _plugins_tool()
    try:
        done = subprocess.run([tool, "enable", "rabbitmq_management"], capture_output=True, text=True,
                              timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"RabbitMQ's management API is off and `rabbitmq-plugins` failed ({exc}); run "
                           "`sudo rabbitmq-plugins enable rabbitmq_management`.") from exc
    if done.returncode != 0:
        raise ServiceError("RabbitMQ's management API is off and enabling it failed; run "
                           "`sudo rabbitmq-plugins enable rabbitmq_management`.")


def _redis_pid_file(settings: Settings, port: int) -> Path:
    return settings.run_dir / "redis" / f"redis-{port}.pid"
