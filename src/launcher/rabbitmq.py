"""A private RabbitMQ node under `run/rabbitmq/`, listening on the ports named in the settings' URLs.

It runs beside any system node: its own node name (`jobs<port>@localhost`), data, logs, plugins file
and Erlang distribution port (AMQP port + 20000, RabbitMQ's own convention).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from kombu.utils.url import parse_url

from common.catalog import longest_hard_limit_s
from common.settings import Settings
from launcher.probes import ServiceError

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
INSTALL_HINT = "install it with `apt-get install rabbitmq-server`, or point BROKER_URL at a running broker"


@dataclass(frozen=True)
class PrivateNode:
    base: Path
    amqp_port: int
    management_port: int
    user: str
    password: str
    vhost: str
    consumer_timeout_ms: int
    host: str = "127.0.0.1"

    @property
    def name(self) -> str:
        return f"jobs{self.amqp_port}@localhost"

    @property
    def pid_file(self) -> Path:
        return self.base / f"jobs{self.amqp_port}.pid"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_DIST_PORT": str(self.amqp_port + 20000),
        }

    def running(self) -> bool:
        try:
            os.kill(int(self.pid_file.read_text().strip()), 0)
        except (OSError, ValueError):
            return False
        return True

    def start(self) -> None:
        if not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise ServiceError(f"RabbitMQ is not reachable at 127.0.0.1:{self.amqp_port} and not installed: "
                               f"{INSTALL_HINT}.")
        self._write_files()
        self._run("rabbitmq-server", "-detached")

    def enable_management(self) -> None:
        self._run("rabbitmq-plugins", "-n", self.name, "enable", "rabbitmq_management")

    def stop(self) -> None:
        self._run("rabbitmqctl", "-n", self.name, "stop")

    def ctl(self, *args: str) -> None:
        """`rabbitmqctl` on this node (`stop_app`, `start_app`, ...)."""
        self._run("rabbitmqctl", "-n", self.name, *args)

    def _write_files(self) -> None:
        for folder in (self.base, self.base / "mnesia", self.base / "log"):
            folder.mkdir(parents=True, exist_ok=True)
        config = self.base / "rabbitmq.conf"  # holds the password: readable by this user only
        config.touch(mode=0o600)
        config.chmod(0o600)
        config.write_text(self._config())
        plugins = self.base / "enabled_plugins"
        if not plugins.exists():
            plugins.write_text("[rabbitmq_management].\n")

    def _config(self) -> str:
        return "\n".join([
            f"listeners.tcp.1 = {self.host}:{self.amqp_port}",
            f"management.tcp.ip = {self.host}",
            f"management.tcp.port = {self.management_port}",
            f"default_user = {self.user}",
            f"default_pass = {self.password}",
            f"default_vhost = {self.vhost}",
            "# above the longest job's hard time limit: an older unacked delivery would be redelivered",
            f"consumer_timeout = {self.consumer_timeout_ms}",
            "",
        ])

    def _run(self, tool: str, *args: str) -> None:
        try:
            done = subprocess.run([str(RABBITMQ_BIN / tool), *args], env=self.env(), capture_output=True,
                                  text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"`{tool} {' '.join(args)}` for the private node {self.name} failed: {exc}") from exc
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ServiceError(f"`{tool} {' '.join(args)}` for the private node {self.name} exited with "
                               f"{done.returncode}: {last[0]} (logs in {self.base / 'log'})")


def private_node(settings: Settings) -> PrivateNode:
    broker = parse_url(settings.broker_url)
    longest_s = longest_hard_limit_s(settings)
    return PrivateNode(
        base=settings.run_dir / "rabbitmq",
        amqp_port=broker["port"] or 5672,
        management_port=urlsplit(settings.rabbitmq_management_url).port or 15672,
        user=broker["userid"] or "guest",
        password=broker["password"] or "guest",
        vhost=broker["virtual_host"] or "/",
        consumer_timeout_ms=max(3600, 2 * (longest_s + settings.max_wait_s)) * 1000,
    )
