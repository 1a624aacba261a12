"""Two "hosts" on one machine: network namespaces joined to the host by veth pairs on a bridge.

    host: bridge br<tag> = <subnet>.1/24 ── veth v<tag>a ── namespace <tag>-a: eth0 = <subnet>.2
                                        └── veth v<tag>b ── namespace <tag>-b: eth0 = <subnet>.3

Every name carries the pid of the test process that made it (`<tag>` = `xh<pid>`), so the next run
removes what a killed run left behind without touching a run still going.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil

TAG = "xh"
_OURS = re.compile(rf"^(?:br|v)?{TAG}(\d+)")


@dataclass(frozen=True)
class Host:
    ns: str  # the network namespace
    address: str  # its address on the bridge
    link: str  # the host's end of its veth pair: down, and the namespace is cut off without a word (no FIN)

    def cut(self) -> None:
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        ip("link", "set", self.link, "up")

    @property
    def wrap(self) -> list[str]:
        """Put in front of a command, it runs inside the namespace (`ip netns exec` execs it: the pid stays
        the process's own)."""
        return ["ip", "netns", "exec", self.ns]


@dataclass(frozen=True)
class Network:
    bridge: str
    gateway: str  # the host's address on the bridge, where the services listen
    hosts: tuple[Host, Host]


def ip(*args: str) -> str:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise AssertionError("iproute2's `ip` is not installed: apt-get install iproute2") from None
    if done.returncode != 0:
        raise AssertionError(f"`ip {' '.join(args)}` failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


@contextmanager
def two_hosts() -> Iterator[Network]:
    """Yield a bridge and two namespaces on it; everything is deleted on exit, even after a failure."""
    remove_leftovers()
    tag, pid = f"{TAG}{os.getpid()}", os.getpid()
    subnet = f"10.201.{pid % 250 + 1}"
    net = Network(f"br{tag}", f"{subnet}.1",
                  (Host(f"{tag}-a", f"{subnet}.2", f"v{tag}a"), Host(f"{tag}-b", f"{subnet}.3", f"v{tag}b")))
    try:
        try:
            _create(net)
        except AssertionError as exc:
            raise AssertionError(f"This machine cannot build the test network of namespaces, veth pairs and a bridge "
                                 f"({exc}): the test needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).") from None
        yield net
    finally:
        _delete([h.link for h in net.hosts] + [net.bridge], [h.ns for h in net.hosts])


def _create(net: Network) -> None:
    for host in net.hosts:
        ip("netns", "add", host.ns)
    ip("link", "add", net.bridge, "type", "bridge")
    ip("addr", "add", f"{net.gateway}/24", "dev", net.bridge)
    ip("link", "set", net.bridge, "up")
    for host in net.hosts:
        ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.ns)
        ip("link", "set", host.link, "master", net.bridge, "up")
        ip("-n", host.ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.ns, "link", "set", "eth0", "up")
        ip("-n", host.ns, "link", "set", "lo", "up")


def _delete(links: list[str], namespaces: list[str]) -> None:
    """Best effort, each step on its own: deleting one end of a veth pair deletes both."""
    for args in [("link", "del", link) for link in links] + [("netns", "del", ns) for ns in namespaces]:
        subprocess.run(["ip", *args], capture_output=True, timeout=30, check=False)


def remove_leftovers() -> None:
    """Links and namespaces of earlier runs whose test process is gone."""
    links = re.findall(r"^\d+: ([^:@\s]+)", ip("-o", "link", "show"), flags=re.M)
    namespaces = [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]

    def dead(name: str) -> bool:
        found = _OURS.match(name)
        return found is not None and not psutil.pid_exists(int(found.group(1)))

    _delete([n for n in links if dead(n)], [n for n in namespaces if dead(n)])

