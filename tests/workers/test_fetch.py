"""The SSRF guard of every URL a job fetches."""

from __future__ import annotations

import pytest

from common.errors import InputError
from workers.fetch import FetchLimits, check_address, fetch

OPEN = FetchLimits(2, 5, 1024 * 1024, frozenset({"127.0.0.1"}))
DEFAULT = FetchLimits(2, 5, 1024 * 1024)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                  "::1", "fe80::1", "fd00::1", "224.0.0.1", "0.0.0.0", "100.100.100.200",
                                  "::ffff:127.0.0.1"])
def test_non_public_addresses_are_refused_by_default(host: str) -> None:
    with pytest.raises(InputError, match="refused") as info:
        check_address(host, 80, frozenset())
    assert info.value.code == "address_refused"


def test_allowlist_lets_a_named_address_through() -> None:
    assert str(check_address("127.0.0.1", 80, frozenset({"127.0.0.1"}))) == "127.0.0.1"


def test_default_refuses_the_local_test_server(site) -> None:
    url = site.add("/ssrf.html", "<title>secret</title>")
    with pytest.raises(InputError, match="refused"):
        fetch(url, DEFAULT)
    assert fetch(url, OPEN).content == b"<title>secret</title>"


def test_redirects_are_checked_again(site) -> None:
    site.add("/hop.html", "ok")
    site.redirect("/to-local", "http://169.254.169.254/latest/meta-data/")
    site.redirect("/to-hop", f"{site.url}/hop.html")
    assert fetch(f"{site.url}/to-hop", OPEN).content == b"ok"
    with pytest.raises(InputError, match="refused"):
        fetch(f"{site.url}/to-local", OPEN)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/", "gopher://x/", "http:///nohost"])
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(InputError) as info:
        fetch(url, OPEN)
    assert info.value.code == "invalid_url"


def test_response_size_is_capped(site) -> None:
    url = site.add("/big.bin", b"x" * 4096, "application/octet-stream")
    with pytest.raises(InputError, match="larger than 1000 bytes"):
        fetch(url, FetchLimits(2, 5, 1000, frozenset({"127.0.0.1"})))


def test_read_timeout(site) -> None:
    url = site.add("/slow.html", "late") + "?delay=3"
    with pytest.raises(InputError) as info:
        fetch(url, FetchLimits(2, 0.5, 1000, frozenset({"127.0.0.1"})))
    assert info.value.code == "fetch_timeout"
