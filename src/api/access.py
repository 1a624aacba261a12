"""Who may call the API: API keys (bearer tokens) and a rate limit per key.

With `API_KEYS` empty the API is open (a loopback-only default). With keys set, every `/v1` route
needs `Authorization: Bearer <key>`; `/health`, `/ready`, `/metrics` and the docs stay open. A job
belongs to the key that created it: other keys get 404 for it. Keys are never logged or stored:
records carry a short hash of the key as their owner.

Without keys, the rate limit and the upload cap count per client address (`client_address`): an IPv6 client
by its /64 (one host holds a whole /64 and could rotate through it), an IPv4-mapped IPv6 one by its IPv4.
Behind reverse proxies, `TRUSTED_PROXIES` says how many of them set `X-Forwarded-For` (werkzeug's `ProxyFix`);
with 0, the default, the header is ignored, since any client can send it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from flask import Flask, g, request
from flask_limiter import Limiter
from werkzeug.middleware.proxy_fix import ProxyFix

from common.errors import Unauthorized
from common.settings import Settings

PROTECTED_PREFIX = "/v1/"


def owner() -> str:
    """The current caller's owner id ("" when the API has no keys)."""
    return str(g.get("owner", ""))


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix: the IPv4 is the last 32 bits


def client_address() -> str:
    """Whom the current request counts against when no API key says it: its client's address, keyed."""
    return address_key(request.remote_addr or "")


def address_key(address: str) -> str:
    """`203.0.113.5` as is; an IPv6 address as its /64 (`2001:db8:1:2::/64`); an IPv6 address that carries an
    IPv4 client (mapped `::ffff:203.0.113.5`, NAT64 `64:ff9b::cb00:7105`, 6to4 `2002:cb00:7105::/48`) as that
    IPv4, so clients behind one NAT64 gateway are told apart and one 6to4 site is one client; anything else (a
    unix socket's empty address) as is, or `unknown`."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone (`fe80::1%eth0`)
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if ip in NAT64:
            return str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            return str(ip.sixtofour)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def init_app(app: Flask, settings: Settings) -> None:
    keys = [key.strip() for key in settings.api_keys.split(",") if key.strip()]
    if settings.trusted_proxies > 0:  # the client is the address the last of them saw
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]

    @app.before_request
    def _authenticate() -> None:
        g.owner = ""
        if keys and request.path.startswith(PROTECTED_PREFIX):
            g.owner = _owner_of(_matching_key(keys))

    if settings.rate_limit:
        limiter = Limiter(
            key_func=lambda: owner() or client_address(),
            app=app,
            default_limits=[settings.rate_limit],
            default_limits_exempt_when=lambda: not request.path.startswith(PROTECTED_PREFIX),
            storage_uri=settings.redis_url,
            key_prefix=f"{settings.key_prefix}ratelimit",
            headers_enabled=True,
            swallow_errors=True,  # Redis down: the job routes answer 503 themselves
        )
        app.extensions["limiter"] = limiter


def _matching_key(keys: list[str]) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    found = ""
    for key in keys:  # compare with every key, in constant time, so timing tells nothing
        if hmac.compare_digest(token.encode(), key.encode()) and scheme.lower() == "bearer":
            found = key
    if not found:
        raise Unauthorized("This API needs a key: send the header 'Authorization: Bearer <API key>'.")
    return found


def _owner_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]
