"""Client addresses as rate-limit and upload-cap keys: `X-Forwarded-For` only from `TRUSTED_PROXIES`, IPv6
clients by their /64 (`api.access.client_address`). Real HTTP: the API under gunicorn, on 127.0.0.1 or ::1."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from api.access import address_key
from launcher import platform
from support.processes import Proc
from support.wait import until

LIMIT = "1/minute"  # the second request in a bucket is refused


@contextmanager
def limited_api(env: dict[str, str], host: str = "127.0.0.1", **settings: str) -> Iterator[str]:
    """The API rate-limited to `LIMIT` per client (no API keys), with buckets of its own; its URL."""
    env = {**env, "RATE_LIMIT": LIMIT, "KEY_PREFIX": f"{env['KEY_PREFIX']}addr-{uuid.uuid4().hex[:6]}:",
           "API_HOST": f"[{host}]" if ":" in host else host, "API_WORKERS": "2", **settings}
    proc, loopback_url = platform.start_api(env, name="api-addr", wait=False)
    url = loopback_url.replace("127.0.0.1", f"[{host}]" if ":" in host else host)
    try:
        until(lambda: healthy(proc, url), 60, f"the API at {url}\n{proc.tail()}")
        yield url
    finally:
        proc.stop()


def healthy(proc: Proc, url: str) -> bool:
    try:
        return proc.alive() and requests.get(f"{url}/health", timeout=1).ok
    except requests.RequestException:
        return False


def status_from(url: str, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    return requests.get(f"{url}/v1/job-types", headers=headers, timeout=10).status_code


@pytest.mark.parametrize(("address", "key"), [
    ("203.0.113.5", "203.0.113.5"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("::1", "::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::ffff:203.0.113.5", "203.0.113.5"),
    ("64:ff9b::cb00:7105", "203.0.113.5"),  # NAT64: each IPv4 client behind the gateway is its own
    ("64:ff9b::cb00:7106", "203.0.113.6"),
    ("2002:cb00:7105:1::1", "203.0.113.5"),  # 6to4: the whole /48 belongs to one IPv4 site
    ("2002:cb00:7105:ffff::1", "203.0.113.5"),
    ("", "unknown"),
])
def test_an_address_is_keyed_by_its_ipv4_or_its_ipv6_64(address: str, key: str) -> None:
    assert address_key(address) == key


def test_the_upload_cap_counts_against_the_same_key(app) -> None:
    from api.jobs import uploader

    with app.test_request_context(environ_base={"REMOTE_ADDR": "2001:db8:1:2::99"}):
        assert uploader() == "addr:2001:db8:1:2::/64"
    with app.test_request_context(environ_base={"REMOTE_ADDR": "::ffff:198.51.100.7"}):
        assert uploader() == "addr:198.51.100.7"


def test_by_default_a_forged_forwarded_for_is_ignored(platform_env) -> None:
    with limited_api(platform_env) as url:
        assert status_from(url, "198.51.100.1") == 200
        assert status_from(url, "198.51.100.2") == 429  # the same client (127.0.0.1), whatever it claims


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_bucket(platform_env) -> None:
    with limited_api(platform_env, TRUSTED_PROXIES="1") as url:
        assert status_from(url, "198.51.100.1") == 200
        assert status_from(url, "198.51.100.2") == 200
        assert status_from(url, "198.51.100.1") == 429
        # two proxies' addresses, of which one is trusted: the client is the last one's peer
        assert status_from(url, "192.0.2.1, 198.51.100.3") == 200
        assert status_from(url, "192.0.2.2, 198.51.100.3") == 429


def test_ipv6_clients_of_one_64_share_a_bucket(platform_env) -> None:
    """On ::1: the peer itself is keyed by its /64; forwarded IPv6 clients too, IPv4-mapped ones by their IPv4."""
    with limited_api(platform_env, host="::1", TRUSTED_PROXIES="1") as url:
        assert status_from(url) == 200  # from ::1
        assert status_from(url) == 429
        assert status_from(url, "2001:db8:1:2::a") == 200
        assert status_from(url, "2001:db8:1:2:ffff:ffff:ffff:ffff") == 429  # the same /64
        assert status_from(url, "2001:db8:1:3::a") == 200  # the next /64
        assert status_from(url, "::ffff:198.51.100.7") == 200
        assert status_from(url, "198.51.100.7") == 429  # the same IPv4
