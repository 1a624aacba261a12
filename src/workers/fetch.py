"""The one place a worker fetches a URL, guarded against server-side request forgery.

- http and https only; connect and read timeouts; a cap on the response size.
- The host is resolved once and refused when any of its addresses is not a public one
  (`common.addresses`: loopback, private, link-local, site-local, multicast, reserved, a cloud metadata
  address, or an IPv6 form that carries such an IPv4 address), unless the allowlist names the host or
  that address, on that port or on every port.
- The connection goes to the address that was checked (no second DNS lookup to rebind), with the
  original host name kept for the Host header, TLS SNI and certificate checks.
- Every redirect is checked the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import urllib3

from common.addresses import Allowlist, check_address
from common.errors import InputError
from common.settings import get_settings

MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Fetched:
    url: str
    status_code: int
    content: bytes
    content_type: str


@dataclass(frozen=True)
class FetchLimits:
    connect_timeout_s: float
    read_timeout_s: float
    max_bytes: int
    allowlist: Allowlist = field(default_factory=Allowlist)


def limits_from_settings(max_bytes: int | None = None) -> FetchLimits:
    s = get_settings()
    try:
        allowlist = Allowlist.parse(s.fetch_allowlist)
    except ValueError as exc:
        raise InputError(f"The platform's {exc}.", code="fetch_allowlist_invalid") from None
    return FetchLimits(s.fetch_connect_timeout_s, s.fetch_read_timeout_s, max_bytes or s.fetch_max_bytes, allowlist)


def fetch(url: str, limits: FetchLimits, *, ok_only: bool = False) -> Fetched:
    """Fetch `url`, following checked redirects; with `ok_only`, an HTTP error status fails the job."""
    for _ in range(MAX_REDIRECTS + 1):
        response = _get_once(url, limits)
        location = response.headers.get("Location")
        if response.status in (301, 302, 303, 307, 308) and location:
            response.release_conn()
            url = urljoin(url, location)
            continue
        if ok_only and response.status >= 400:
            response.release_conn()
            raise InputError(f"Fetching {url} answered HTTP {response.status}.", code="fetch_failed")
        content = _read_capped(response, url, limits.max_bytes)
        return Fetched(url, response.status, content, response.headers.get("Content-Type", ""))
    raise InputError(f"Fetching {url} took more than {MAX_REDIRECTS} redirects.", code="fetch_failed")


def _get_once(url: str, limits: FetchLimits) -> urllib3.BaseHTTPResponse:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"Only http and https URLs can be fetched, not {url!r}.", code="invalid_url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InputError(f"The URL {url!r} has an invalid port.", code="invalid_url") from None
    address = check_address(parts.hostname, port, limits.allowlist)
    timeout = urllib3.Timeout(connect=limits.connect_timeout_s, read=limits.read_timeout_s)
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(str(address), port, timeout=timeout, retries=False, maxsize=1,
                                           server_hostname=parts.hostname, assert_hostname=parts.hostname)
    else:
        pool = urllib3.HTTPConnectionPool(str(address), port, timeout=timeout, retries=False, maxsize=1)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "User-Agent": "ml-job-platform/1.0"}
    try:
        return pool.urlopen("GET", target, headers=headers, redirect=False, preload_content=False)
    except urllib3.exceptions.NewConnectionError:  # a subclass of ConnectTimeoutError: test it first
        raise InputError(f"Could not connect to {parts.netloc} to fetch {url}.", code="fetch_failed") from None
    except urllib3.exceptions.TimeoutError:
        raise InputError(f"Fetching {url} timed out.", code="fetch_timeout") from None
    except urllib3.exceptions.HTTPError as exc:
        raise InputError(f"Could not fetch {url}: {type(exc).__name__}.", code="fetch_failed") from None


def _read_capped(response: urllib3.BaseHTTPResponse, url: str, max_bytes: int) -> bytes:
    chunks, size = [], 0
    try:
        for chunk in response.stream(64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise InputError(f"The response from {url} is larger than {max_bytes} bytes.",
                                 code="response_too_large")
            chunks.append(chunk)
    except urllib3.exceptions.HTTPError as exc:
        raise InputError(f"Reading {url} failed: {type(exc).__name__}.", code="fetch_failed") from None
    finally:
        response.release_conn()
    return b"".join(chunks)
