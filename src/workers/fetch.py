"""The one place a worker fetches a URL: http(s) only, timeouts, a size cap.

The SSRF guard (address checks, redirect checks) belongs here too, so every job type gets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from common.errors import InputError


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


def fetch(url: str, limits: FetchLimits, *, ok_only: bool = False) -> Fetched:
    """Fetch `url`; with `ok_only`, an HTTP error status fails the job with that status."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise InputError(f"Only http and https URLs can be fetched, not {url!r}.", code="invalid_url")
    try:
        with requests.get(url, stream=True, timeout=(limits.connect_timeout_s, limits.read_timeout_s)) as response:
            if ok_only and response.status_code >= 400:
                raise InputError(f"Fetching {url} answered HTTP {response.status_code}.", code="fetch_failed")
            content = _read_capped(response, limits.max_bytes)
            return Fetched(response.url, response.status_code, content, response.headers.get("Content-Type", ""))
    except requests.Timeout:
        raise InputError(f"Fetching {url} timed out.", code="fetch_timeout") from None
    except requests.RequestException as exc:
        raise InputError(f"Could not fetch {url}: {type(exc).__name__}.", code="fetch_failed") from None


def _read_capped(response: requests.Response, max_bytes: int) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise InputError(f"The response from {response.url} is larger than {max_bytes} bytes.",
                             code="response_too_large")
        chunks.append(chunk)
    return b"".join(chunks)
