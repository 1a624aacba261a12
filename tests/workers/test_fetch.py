"""The SSRF guard of every URL a job fetches."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from common.addresses import Allowlist, refusal
from common.errors import InputError
from support.processes import ROOT, free_port
from workers.fetch import FetchLimits, check_address, fetch

OPEN = FetchLimits(2, 5, 1024 * 1024, Allowlist.parse("127.0.0.1"))
DEFAULT = FetchLimits(2, 5, 1024 * 1024)

# IPv6 forms that carry an IPv4 address a translator or tunnel would reach, and other non-public IPv6.
HIDDEN_IPV4 = {
    "64:ff9b::a9fe:a9fe": "NAT64 form of 169.254.169.254",
    "64:ff9b::7f00:1": "NAT64 form of 127.0.0.1",
    "64:ff9b::a00:1": "NAT64 form of 10.0.0.1",
    "64:ff9b:1::a9fe:a9fe": "local-use NAT64",
    "64:ff9b:1::808:808": "local-use NAT64",
    "::127.0.0.1": "deprecated IPv6 form of the IPv4 address 127.0.0.1",
    "::a9fe:a9fe": "deprecated IPv6 form of the IPv4 address 169.254.169.254",
    "::ffff:0:127.0.0.1": "deprecated IPv6 form of the IPv4 address 127.0.0.1",
    "::ffff:0:a00:1": "deprecated IPv6 form of the IPv4 address 10.0.0.1",
    "2002:7f00:1::1": "6to4 form of 127.0.0.1",
    "2002:a9fe:a9fe::": "6to4 form of 169.254.169.254",
    "2002:c0a8:101::1": "6to4 form of 192.168.1.1",
    "2001:0:808:808:0:f7ff:80ff:fffe": "Teredo form of 127.0.0.1",
    "fec0::1": "site-local",
    "100::1": "reserved",
    "5f00::1": "reserved",
    "::ffff:a9fe:a9fe": "IPv4-mapped form of 169.254.169.254",
}
PUBLIC_FORMS = ("64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1", "8.8.8.8")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                  "::1", "fe80::1", "fd00::1", "224.0.0.1", "0.0.0.0", "100.100.100.200",
                                  "::ffff:127.0.0.1", "240.0.0.1"])
def test_non_public_addresses_are_refused_by_default(host: str) -> None:
    with pytest.raises(InputError, match="refused") as info:
        check_address(host, 80, Allowlist())
    assert info.value.code == "address_refused"


@pytest.mark.parametrize("literal", sorted(HIDDEN_IPV4))
def test_ipv6_literals_that_reach_non_public_ipv4_are_refused(literal: str) -> None:
    port = free_port()  # nothing listens: a guard that let it through would fail with fetch_failed instead
    with pytest.raises(InputError) as info:
        fetch(f"http://[{literal}]:{port}/latest/meta-data/", DEFAULT)
    assert info.value.code == "address_refused", info.value
    assert HIDDEN_IPV4[literal] in str(info.value)


@pytest.mark.parametrize("address", PUBLIC_FORMS)
def test_public_addresses_and_forms_carrying_a_public_ipv4_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def resolve_in_own_hosts_file(names: dict[str, str], code: str, tmp_path: Path) -> str:
    """Run `code` in a Python whose /etc/hosts maps each name to its address: a private mount namespace
    gets a bind-mounted copy, so the machine's own /etc/hosts is never touched."""
    if shutil.which("unshare") is None:
        pytest.fail("util-linux's `unshare` is needed (to give the test its own /etc/hosts)", pytrace=False)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, a in names.items()))
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    done = subprocess.run(["unshare", "--mount", "sh", "-c", script, str(hosts), sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(ROOT / "src")},
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_host_names_resolving_to_hidden_ipv4_are_refused(tmp_path: Path) -> None:
    names = {f"hidden{i}.test": literal for i, literal in enumerate(sorted(HIDDEN_IPV4))}
    names["public-nat64.test"] = "64:ff9b::808:808"
    port = free_port()
    code = f"""
import json
from common.errors import InputError
from workers.fetch import FetchLimits, check_address, fetch
codes = {{}}
for name in {sorted(names)!r}:
    try:
        if name.startswith("public"):
            codes[name] = str(check_address(name, 80, FetchLimits(2, 5, 1).allowlist))
        else:
            fetch(f"http://{{name}}:{port}/", FetchLimits(2, 5, 1000))
            codes[name] = "fetched"
    except InputError as exc:
        codes[name] = exc.code
print(json.dumps(codes))
"""
    codes = json.loads(resolve_in_own_hosts_file(names, code, tmp_path))
    assert codes.pop("public-nat64.test") == "64:ff9b::808:808"
    assert codes == {name: "address_refused" for name in names if not name.startswith("public")}


def test_a_bare_host_allows_every_port_and_host_port_only_its_port(site) -> None:
    url = site.add("/ports.html", "<title>ok</title>")
    port = urlsplit(url).port
    assert port is not None
    for entries in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port - 1},127.0.0.1:{port}"):
        assert fetch(url, FetchLimits(2, 5, 1000, Allowlist.parse(entries))).content == b"<title>ok</title>", entries
    for entries in (f"127.0.0.1:{port + 1}", f"localhost:{port}", "", f"[::1]:{port}"):
        with pytest.raises(InputError) as info:
            fetch(url, FetchLimits(2, 5, 1000, Allowlist.parse(entries)))
        assert info.value.code == "address_refused", entries


def test_a_host_name_entry_lets_that_name_through_on_its_port(site) -> None:
    url = site.add("/named.html", "named").replace("127.0.0.1", "localhost")
    port = urlsplit(url).port
    assert fetch(url, FetchLimits(2, 5, 1000, Allowlist.parse(f"LOCALHOST:{port}"))).content == b"named"
    with pytest.raises(InputError, match="refused"):
        fetch(url, FetchLimits(2, 5, 1000, Allowlist.parse(f"localhost:{free_port()}")))


def test_allowlist_entries_are_parsed_or_rejected() -> None:
    parsed = Allowlist.parse(" 127.0.0.1:8099, Example.ORG., [::1]:80, fd00::1 ,")
    assert parsed.entries == {("127.0.0.1", 8099), ("example.org", 0), ("::1", 80), ("fd00::1", 0)}
    assert parsed.names("example.org", 1234) and parsed.names("::1", 80) and not parsed.names("::1", 81)
    for bad in ("host:", "host:0", "host:http", "[::1]:", ":80", "host:70000"):
        with pytest.raises(ValueError, match="FETCH_ALLOWLIST entry"):
            Allowlist.parse(bad)


def test_default_refuses_the_local_test_server(site) -> None:
    url = site.add("/ssrf.html", "<title>secret</title>")
    with pytest.raises(InputError, match="refused"):
        fetch(url, DEFAULT)
    assert fetch(url, OPEN).content == b"<title>secret</title>"


def test_redirects_are_checked_again(site) -> None:
    site.add("/hop.html", "ok")
    port = urlsplit(site.url).port
    site.redirect("/to-local", "http://169.254.169.254/latest/meta-data/")
    site.redirect("/to-nat64", "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/")
    site.redirect("/to-hop", f"{site.url}/hop.html")
    site.redirect("/to-other-port", f"http://127.0.0.1:{free_port()}/")
    assert fetch(f"{site.url}/to-hop", OPEN).content == b"ok"
    for path in ("/to-local", "/to-nat64"):
        with pytest.raises(InputError, match="refused"):
            fetch(f"{site.url}{path}", OPEN)
    with pytest.raises(InputError, match="refused"):
        fetch(f"{site.url}/to-other-port", FetchLimits(2, 5, 1000, Allowlist.parse(f"127.0.0.1:{port}")))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/", "gopher://x/", "http:///nohost",
                                 "http://127.0.0.1:99999/"])
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(InputError) as info:
        fetch(url, OPEN)
    assert info.value.code == "invalid_url"


def test_response_size_is_capped(site) -> None:
    url = site.add("/big.bin", b"x" * 4096, "application/octet-stream")
    with pytest.raises(InputError, match="larger than 1000 bytes"):
        fetch(url, FetchLimits(2, 5, 1000, Allowlist.parse("127.0.0.1")))


def test_read_timeout(site) -> None:
    url = site.add("/slow.html", "late") + "?delay=3"
    with pytest.raises(InputError) as info:
        fetch(url, FetchLimits(2, 0.5, 1000, Allowlist.parse("127.0.0.1")))
    assert info.value.code == "fetch_timeout"
