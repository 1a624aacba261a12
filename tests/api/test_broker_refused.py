"""A broker that refuses the platform's queue (declared earlier with other arguments) gets a clear 503."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
import requests
from kombu import Connection

from support import services
from support.processes import env_for, start_api


@pytest.fixture
def api_on_an_old_queue() -> Iterator[str]:
    services.require_services()
    vhost, prefix = services.create_vhost(), f"test-{uuid.uuid4().hex[:8]}:"
    try:
        with Connection(f"{services.AMQP_ROOT}/{vhost}") as conn:  # as an earlier version declared it
            conn.default_channel.queue_declare("sentiment", durable=True, auto_delete=False)
        api, url = start_api(env_for(vhost, prefix))
        try:
            yield url
            with redis.Redis.from_url(services.REDIS_URL) as r:
                assert not list(r.scan_iter(match=f"{prefix}*")), "a refused job left a record behind"
        finally:
            api.stop()
    finally:
        services.delete_vhost(vhost)
        services.delete_keys(prefix)


def test_a_queue_with_other_arguments_is_a_503_that_says_what_to_do(api_on_an_old_queue: str) -> None:
    answer = requests.post(f"{api_on_an_old_queue}/v1/jobs/sentiment", json={"text": "fine"}, timeout=30)
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "broker_refused"
    assert "PRECONDITION_FAILED" in error["message"] and "docs/operations.md" in error["message"]
    assert answer.headers["Retry-After"]
