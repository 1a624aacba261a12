"""Who may call the API: API keys (bearer tokens) and a rate limit per key.

With `API_KEYS` empty the API is open (a loopback-only default). With keys set, every `/v1` route
needs `Authorization: Bearer <key>`; `/health`, `/ready`, `/metrics` and the docs stay open. A job
belongs to the key that created it: other keys get 404 for it. Keys are never logged or stored:
records carry a short hash of the key as their owner.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, g, request
from flask_limiter import Limiter

from common.errors import Unauthorized
from common.settings import Settings

PROTECTED_PREFIX = "/v1/"


def owner() -> str:
    """The current caller's owner id ("" when the API has no keys)."""
    return str(g.get("owner", ""))


def init_app(app: Flask, settings: Settings) -> None:
    keys = [key.strip() for key in settings.api_keys.split(",") if key.strip()]

    @app.before_request
    def _authenticate() -> None:
        g.owner = ""
        if keys and request.path.startswith(PROTECTED_PREFIX):
            g.owner = _owner_of(_matching_key(keys))

    if settings.rate_limit:
        limiter = Limiter(
            key_func=lambda: owner() or request.remote_addr or "anonymous",
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
