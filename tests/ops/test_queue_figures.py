"""`GET /v1/queues`: every catalog queue's ready, unacked, consumers and oldest message's age, from the
management API (one call, cached for a second), or from queue declares when the management API is down."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest
import requests

from api import queues
from common.broker import make_celery
from common.catalog import CATALOG
from common.errors import Unavailable
from common.settings import Settings
from ops.stack import HELD, OpsPlatform, submit_held
from support.processes import free_port, start_api
from support.wait import until


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["name"]: q for q in body["queues"]}


def test_v1_queues_shows_waiting_jobs_consumers_and_age(ops: OpsPlatform) -> None:
    before = by_name(requests.get(f"{ops.api}/v1/queues", timeout=5).json())[HELD]["ready"] or 0
    submit_held(ops.api, 3)

    def shown() -> dict[str, Any] | None:
        body = requests.get(f"{ops.api}/v1/queues", timeout=5).json()
        held = by_name(body)[HELD]
        return body if (held["ready"] or 0) >= before + 3 and held["oldest_ready_age_s"] is not None else None

    body = until(shown, 30, f"{before + 3} ready jobs on {HELD} (figures lag up to 5 s)", interval_s=0.5)
    assert body["source"] == "management"
    assert [q["name"] for q in body["queues"]] == [t.queue for t in CATALOG] + [f"{t.queue}.dead" for t in CATALOG]
    figures = by_name(body)
    assert figures[HELD]["consumers"] == 0 and figures[HELD]["unacked"] == 0
    assert 0 <= figures[HELD]["oldest_ready_age_s"] < 120
    for name in ops.workers:
        assert figures[name]["consumers"] >= 1, figures[name]


def test_v1_queues_is_documented_with_its_model(ops: OpsPlatform) -> None:
    spec = requests.get(f"{ops.api}/openapi.json", timeout=5).json()
    response = spec["paths"]["/v1/queues"]["get"]["responses"]["200"]
    assert "QueuesView" in str(response)
    assert "/metrics" in spec["paths"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_figures_are_cached_for_at_most_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    clock = Clock()
    monkeypatch.setattr(queues.time, "monotonic", clock)
    monkeypatch.setattr(queues, "from_management", lambda settings, now: calls.append(now) or {})
    reader = queues.QueueReader(Settings(), celery=None)  # type: ignore[arg-type]
    reader.read()
    clock.now += 0.5
    reader.read()
    assert len(calls) == 1
    clock.now += 0.6
    reader.read()
    assert len(calls) == 2


def test_one_management_call_for_all_queues_with_the_vhost_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    class Answer:
        def raise_for_status(self) -> None:
            pass

        def json(self) -> list[dict[str, Any]]:
            return [{"name": "sentiment", "messages_ready": 4, "messages_unacknowledged": 1, "consumers": 2,
                     "head_message_timestamp": 990}, {"name": "celery@host.celery.pidbox"}]

    def fake_get(session: requests.Session, url: str, params: dict[str, str], auth: tuple[str, str],
                 timeout: float) -> Answer:
        assert session.trust_env is False  # no HTTP(S)_PROXY, NO_PROXY or .netrc
        seen.append((url, auth))  # type: ignore[arg-type]
        return Answer()

    monkeypatch.setattr(requests.Session, "get", fake_get)
    settings = Settings(broker_url="amqp://u:p@h:5672//", rabbitmq_management_url="http://m:pw@mq:15672/api/")
    figures = queues.from_management(settings, now=1000.0)
    assert seen == [("http://mq:15672/api/queues/%2F", ("m", "pw"))]
    assert figures["sentiment"] == queues.QueueFigures(ready=4, consumers=2, unacked=1, oldest_ready_age_s=10.0)
    assert figures["scrape"] == queues.QueueFigures(ready=0, consumers=0, unacked=0)  # not declared yet
    assert figures["sentiment.dead"] == queues.QueueFigures(ready=0, consumers=0, unacked=0)
    queues.from_management(settings.model_copy(update=dict(broker_url="amqp://u:p@h:5672/a/b")), now=1000.0)
    assert seen[-1][0] == "http://mq:15672/api/queues/a%2Fb"


def test_falls_back_to_declares_when_the_management_api_is_down(ops: OpsPlatform) -> None:
    settings = Settings().model_copy(update=dict(broker_url=ops.env["BROKER_URL"],
                                                 rabbitmq_management_url=f"http://guest:guest@127.0.0.1:{free_port()}/api/"))
    celery = make_celery(settings)
    try:
        snapshot = queues.QueueReader(settings, celery).read()
    finally:
        celery.close()
    assert snapshot.source == "declare"
    assert set(snapshot.queues) == {t.queue for t in CATALOG} | {f"{t.queue}.dead" for t in CATALOG}
    assert snapshot.queues[HELD].consumers == 0 and snapshot.queues[HELD].unacked is None
    assert all(snapshot.queues[name].consumers >= 1 for name in ops.workers)  # type: ignore[operator]


def test_503_when_neither_answers() -> None:
    dead = f"127.0.0.1:{free_port()}"
    settings = Settings(broker_url=f"amqp://guest:guest@{dead}//", rabbitmq_management_url=f"http://{dead}/api/")
    celery = make_celery(settings)
    try:
        with pytest.raises(Unavailable):
            queues.QueueReader(settings, celery).read()
    finally:
        celery.close()


@pytest.fixture
def recording_proxy() -> Iterator[tuple[str, list[str]]]:
    """An HTTP proxy that records every request it gets and answers each with 502."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def relay(self) -> None:
            seen.append(f"{self.command} {self.path}")
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_CONNECT = relay

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_the_management_api_is_never_reached_through_a_proxy(
        ops: OpsPlatform, recording_proxy: tuple[str, list[str]]) -> None:
    proxy, seen = recording_proxy
    env = {k: v for k, v in ops.env.items() if k.lower() != "no_proxy"}
    env.update({name: proxy for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")})
    proc, api = start_api(env)
    try:
        body = requests.get(f"{api}/v1/queues", timeout=10).json()
    finally:
        proc.stop()
    assert body["source"] == "management", body
    assert seen == []
