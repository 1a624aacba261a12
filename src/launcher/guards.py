"""What `up` checks before it starts anything: settings that would open the platform to anyone, that the
workers' fetch guard could not read, or a demo pages port already taken."""

from __future__ import annotations

import ipaddress

from common.addresses import Allowlist
from common.settings import Settings
from launcher.demo_pages import HOST as DEMO_PAGES_HOST
from launcher.probes import ServiceError, port_open


def check_before_up(settings: Settings) -> None:
    """Raise `ServiceError` with one sentence saying what to set, or return."""
    keys = [key for key in settings.api_keys.split(",") if key.strip()]  # as the API reads them
    if not keys and not settings.allow_anonymous and not is_loopback(settings.api_host):
        raise ServiceError(
            f"API_HOST={settings.api_host} would let anyone who can reach this machine use the API, which has no "
            "API_KEYS: set API_KEYS=key1,key2 (clients send `Authorization: Bearer key1`), or ALLOW_ANONYMOUS=1 "
            "to run it open on purpose.")
    try:
        Allowlist.parse(settings.fetch_allowlist)
    except ValueError as exc:
        raise ServiceError(f"{exc}.") from None
    _check_demo_pages_port(settings.demo_pages_port)


def _check_demo_pages_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ServiceError(f"DEMO_PAGES_PORT={port} is not a port: give one from 1 to 65535, or 0 to go without "
                           "the demo pages.")
    if port and port_open(DEMO_PAGES_HOST, port):
        raise ServiceError(f"Port {port} on {DEMO_PAGES_HOST}, where `make up` serves the demo pages, is taken: set "
                           "DEMO_PAGES_PORT to a free port, or 0 to go without them.")


def is_loopback(host: str) -> bool:
    """Only this machine can reach a server bound to `host`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
