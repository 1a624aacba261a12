"""Private RabbitMQ and Redis servers for the tests that stop, cut off or restart their services.

The shared services stay untouched (other tests keep running against them); a private one can also
listen on an address other than loopback, for workers in other network namespaces.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests
from kombu import Connection

from launcher.rabbitmq import PrivateNode
from support.processes import ROOT, Proc, spawn
from support.wait import until

BASE = ROOT / "run" / "test-services"


def free_port(host: str = "127.0.0.1", below: int = 45000) -> int:
    """A free port under `below`: RabbitMQ's Erlang distribution port is the AMQP port + 20000."""
    for _ in range(200):
        port = 20000 + secrets.randbelow(below - 20000)
        if not _taken(host, port) and not _taken(host, port + 20000):
            return port
    raise AssertionError(f"no free port pair found on {host}")


def _taken(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


@dataclass
class PrivateBroker:
    node: PrivateNode

    @property
    def url(self) -> str:
        n = self.node
        return f"amqp://{n.user}:{n.password}@{n.host}:{n.amqp_port}/{n.vhost}"

    @property
    def management_url(self) -> str:
        return f"http://{self.node.user}:{self.node.password}@{self.node.host}:{self.node.management_port}/api/"

    def stop_app(self) -> None:
        self.node.ctl("stop_app")

    def start_app(self) -> None:
        self.node.ctl("start_app")
        until(self.reachable, 60, f"the private RabbitMQ node {self.node.name} to accept connections again")

    def reachable(self) -> bool:
        try:
            with Connection(self.url, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception:
            return False
        return True


@contextmanager
def private_rabbitmq(host: str = "127.0.0.1", vhost: str = "jobs") -> Iterator[PrivateBroker]:
    """A RabbitMQ node of its own (management plugin on), stopped and deleted on exit."""
    if shutil.which("rabbitmq-server") is None and not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        raise AssertionError("rabbitmq-server is not installed: apt-get install rabbitmq-server")
    port = free_port(host)
    node = PrivateNode(base=BASE / f"rabbitmq-{port}", amqp_port=port, management_port=free_port(host),
                       user="platform", password=secrets.token_hex(8), vhost=vhost,
                       consumer_timeout_ms=3_600_000, host=host)
    broker = PrivateBroker(node)
    node.start()
    try:
        until(broker.reachable, 90, f"the private RabbitMQ node {node.name} on {host}:{port} (logs in {node.base})")

        def management() -> bool:
            try:
                return requests.get(f"http://{host}:{node.management_port}/api/overview",
                                    auth=(node.user, node.password), timeout=2).ok
            except requests.RequestException:
                return False

        until(management, 60, f"the management API of {node.name}")
        yield broker
    finally:
        try:
            node.stop()
        finally:
            shutil.rmtree(node.base, ignore_errors=True)


@dataclass
class PrivateRedis:
    host: str
    port: int
    proc: Proc | None = None
    # Redis refuses non-loopback clients of a server without a password ("protected mode")
    password: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    def start(self) -> None:
        folder = BASE / f"redis-{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = spawn(f"redis-{self.port}", [shutil.which("redis-server") or "redis-server", "--bind", self.host,
                                                 "--port", str(self.port), "--save", "", "--appendonly", "yes",
                                                 "--dir", str(folder), "--requirepass", self.password], {})
        until(self.reachable, 30, f"the private Redis on {self.host}:{self.port}")

    def stop(self) -> None:
        """Stop it (SIGTERM). Its append-only file keeps the data: `start` brings the same keys back."""
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def reachable(self) -> bool:
        try:
            with self.client() as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password, socket_connect_timeout=1)


@contextmanager
def full(server: PrivateRedis) -> Iterator[None]:
    """`maxmemory` set to the memory `server` uses, under `noeviction`: it refuses every write that needs
    memory (OOM) until the limit is lifted on exit. The limit is set 256 KiB under the memory in use: at the
    exact figure, the swings of client buffers (a few KiB a reply) let a write through now and then."""
    with server.client() as r:
        r.config_set("maxmemory-policy", "noeviction")
        try:
            r.config_set("maxmemory", int(r.info("memory")["used_memory"]) - 256 * 1024)
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                r.set("probe:maxmemory", b"x" * 1024, ex=60)
            yield
        finally:
            r.config_set("maxmemory", 0)


@contextmanager
def failed_over(server: PrivateRedis) -> Iterator[PrivateRedis]:
    """A failover and back: a second private Redis replicates `server`, then takes its place (FAILOVER), so
    `server` is a read-only replica of it (writes answer READONLY, reads go on) with its data kept (it
    resyncs from the copy it has just made). On exit `server` is promoted back (REPLICAOF NO ONE)."""
    with private_redis(server.host) as other, server.client() as r, other.client() as o:
        r.config_set("masterauth", other.password)
        o.config_set("masterauth", server.password)
        o.replicaof(server.host, server.port)
        until(lambda: r.info("replication").get("slave0", {}).get("state") == "online", 30,
              "the second Redis to replicate the first")
        r.execute_command("FAILOVER", "TIMEOUT", 10000)
        until(lambda: r.info("replication").get("master_link_status") == "up", 30,
              "the first Redis to be a replica of the second")
        try:
            yield other
        finally:
            r.replicaof("NO", "ONE")


@contextmanager
def private_redis(host: str = "127.0.0.1") -> Iterator[PrivateRedis]:
    # Below Linux's ephemeral range (32768-60999): a Redis stopped and started again must find its port free,
    # not taken meanwhile by some process's outgoing connection.
    server = PrivateRedis(host, free_port(host, below=32768))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(BASE / f"redis-{server.port}", ignore_errors=True)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)
