"""HTTP to the platform's own services (RabbitMQ's management API, the API's health), never through a proxy.

requests honours HTTP(S)_PROXY, NO_PROXY and ~/.netrc from the environment by default: a proxy set for
outbound traffic would then receive internal calls, with the management API's credentials, or make
them fail. A session with `trust_env = False` ignores all of that.
"""

from __future__ import annotations

import requests


def direct_session() -> requests.Session:
    """A requests session that ignores proxy variables and .netrc; close it (or use `with`) when done."""
    session = requests.Session()
    session.trust_env = False
    return session


__all__ = ["direct_session"]
