"""`/ready` tells the truth: ready only when a worker consumes every job queue; `scope=api` for Kubernetes."""

from __future__ import annotations

from common.catalog import CATALOG
from common.settings import get_settings
from support.processes import free_port
from support.vhosts import idle_vhost


def test_ready_is_503_and_names_the_queues_no_worker_consumes(platform_env) -> None:
    with idle_vhost() as (_, client):
        answer = client.get("/ready")
    body = answer.get_json()
    assert answer.status_code == 503 and body["status"] == "unavailable", body
    assert body["without_consumers"] == [t.queue for t in CATALOG]
    assert body["checks"]["store"] == body["checks"]["broker"] == "ok"
    assert body["checks"]["consumers"] == f"none on {', '.join(t.queue for t in CATALOG)}"
    assert answer.headers["Retry-After"]


def test_scope_api_stays_ready_while_the_broker_is_down_and_the_store_answers(platform_env) -> None:
    from api import create_app

    nowhere = f"amqp://guest:guest@127.0.0.1:{free_port()}//"  # nothing listens there
    client = create_app(get_settings().model_copy(update=dict(broker_url=nowhere))).test_client()
    assert client.get("/ready").status_code == 503
    answer = client.get("/ready", query_string={"scope": "api"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["checks"] == {"store": "ok"}
