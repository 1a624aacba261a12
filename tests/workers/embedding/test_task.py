"""embedding jobs end to end: HTTP → RabbitMQ → a real worker (all-MiniLM-L6-v2) → Redis → HTTP."""

import math
import uuid

import pytest
import requests

from launcher import platform as launcher_platform
from support import services
from support.jobs import run_job
from support.processes import env_for, free_port, start_worker
from support.wait import until

ROUNDING = 1.01e-5  # two computations of one vector may round apart by one unit of its 5th decimal


@pytest.fixture
def platform(workers: object) -> None:
    pass


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # unit vectors


def test_texts_become_384_unit_vectors_in_order_and_keep_their_meaning(http, platform) -> None:
    texts = ["A man is playing a guitar.", "Someone strums an acoustic guitar.", "The invoice is due on Friday."]
    record = run_job(http, "embedding", json={"texts": texts})
    assert record["status"] == "SUCCESS", record
    result = record["result"]
    assert set(result) == {"model", "dimensions", "vectors"}
    assert result["model"] == "all-MiniLM-L6-v2" and result["dimensions"] == 384
    guitar, strum, invoice = result["vectors"]
    assert all(len(v) == 384 and math.isclose(math.hypot(*v), 1.0, abs_tol=1e-4) for v in result["vectors"])
    assert cosine(guitar, strum) > 0.5 > max(cosine(guitar, invoice), cosine(strum, invoice))
    assert record["attempts"] == 1 and record["progress"] == 100


def test_one_text_gives_one_vector_equal_to_its_place_in_a_batch(http, platform) -> None:
    one = run_job(http, "embedding", json={"text": "The invoice is due on Friday."})
    many = run_job(http, "embedding", json={"texts": ["A short one.", "The invoice is due on Friday."]})
    assert one["status"] == many["status"] == "SUCCESS", (one, many)
    assert len(one["result"]["vectors"]) == 1
    assert one["result"]["vectors"][0] == pytest.approx(many["result"]["vectors"][1], abs=ROUNDING)


@pytest.mark.parametrize("body, fragment", [
    ({"texts": ["fine"] * 257}, "256"),
    ({"text": "x" * 10_001}, "10000"),
    ({"texts": ["ok", " \n"]}, "text 1 is empty"),
    ({"text": "a", "texts": ["b"]}, "exactly one"),
    ({"texts": "not a list"}, "texts"),
    ({}, "exactly one"),
])
def test_bad_input_is_refused_before_queueing(http, body: dict, fragment: str) -> None:
    response = http.post("/v1/jobs/embedding", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and fragment in error["message"], error


def test_the_api_lists_the_type_and_ready_shows_its_model(http, platform) -> None:
    listed = {t["type"]: t for t in http.get("/v1/job-types").json()["job_types"]}
    assert listed["embedding"]["url"] == "/v1/jobs/embedding" and listed["embedding"]["task"] == "embedding.run"

    def loaded() -> dict | None:
        model = http.get("/ready").json()["queues"]["embedding"].get("model")
        return model if model and model["status"] == "loaded" else None

    assert until(loaded, 90, "the embedding workers' model status")["model"] == "all-MiniLM-L6-v2"


def test_a_text_limit_whose_vectors_cannot_fit_the_result_cap_is_refused_at_load() -> None:
    """EMBEDDING_MAX_TEXTS past what RESULT_MAX_BYTES holds: every full job would be computed and then thrown
    away, so the workers report their model unavailable (saying which settings), and a submit is 503 at once."""
    vhost, prefix, port = services.create_vhost(), f"test-{uuid.uuid4().hex[:8]}:", free_port()
    env = env_for(vhost, prefix, API_PORT=str(port), API_WORKERS="1", EMBEDDING_MAX_TEXTS="400")
    api, url = launcher_platform.start_api(env)
    worker = start_worker(env, "embedding", f"embedding-wide-{uuid.uuid4().hex[:6]}")
    try:
        def reported() -> dict | None:
            return requests.get(f"{url}/ready", timeout=10).json()["queues"]["embedding"].get("model")

        status = until(reported, 90, "the embedding pool reporting its model")
        assert status["status"] == "unavailable", status
        assert "EMBEDDING_MAX_TEXTS=400" in status["message"] and "RESULT_MAX_BYTES" in status["message"]
        refused = requests.post(f"{url}/v1/jobs/embedding", json={"text": "fine"}, timeout=10)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_unavailable", refused.text
    finally:
        worker.stop()
        api.stop()
        services.delete_vhost(vhost)
        services.delete_keys(prefix)
