"""sentiment jobs end to end: HTTP → RabbitMQ → a real worker (VADER, or a transformer) → Redis → HTTP."""

from collections.abc import Iterator

import pytest
import requests

from support.isolated import isolated_platform
from support.jobs import run_job
from support.models import tiny_distilbert
from support.wait import until


@pytest.fixture
def vader_platform(workers: object) -> None:
    pass


def test_one_text(http, vader_platform) -> None:
    record = run_job(http, "sentiment", json={"text": "I love this, it is wonderful!"})
    assert record["status"] == "SUCCESS", record
    result = record["result"]
    assert set(result) == {"label", "score", "model"}
    assert result["label"] == "POSITIVE" and 0.5 < result["score"] <= 1 and result["model"] == "vader"
    assert record["progress"] == 100 and record["attempts"] == 1


def test_256_texts_in_one_job_keep_their_order(http, vader_platform) -> None:
    texts = ["What a wonderful day!", "This is awful and I hate it.", "The box is on the table."] * 85 + ["Great!"]
    record = run_job(http, "sentiment", json={"texts": texts})
    assert record["status"] == "SUCCESS", record
    assert record["result"]["model"] == "vader"
    labels = [r["label"] for r in record["result"]["results"]]
    assert labels == ["POSITIVE", "NEGATIVE", "NEUTRAL"] * 85 + ["POSITIVE"]


@pytest.mark.parametrize("body, fragment", [
    ({"texts": ["fine"] * 257}, "256"),
    ({"text": "x" * 10_001}, "10000"),
    ({"text": "   "}, "text"),
    ({"text": "a", "texts": ["b"]}, "text"),
    ({}, "text"),
])
def test_bad_input_is_refused_before_queueing(http, body: dict, fragment: str) -> None:
    response = http.post("/v1/jobs/sentiment", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and fragment in error["message"]


def test_ready_shows_the_loaded_model(http, vader_platform) -> None:
    def loaded() -> dict | None:
        model = http.get("/ready").json()["queues"]["sentiment"].get("model")
        return model if model and model["status"] == "loaded" else None

    model = until(loaded, 60, "the sentiment workers' model status")
    assert model["model"] == "vader" and model["load_s"] >= 0


@pytest.fixture(scope="module")
def transformer_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sentiment worker on a DistilBERT saved in the models folder, as a user brings a fine-tuned model."""
    folder = tiny_distilbert(tmp_path_factory.mktemp("models") / "my-distilbert-sst2")
    with isolated_platform("sentiment", SENTIMENT_MODEL=folder.name, MODELS_DIR=str(folder.parent),
                           SENTIMENT_BATCH_SIZE="8") as (url, _):
        yield url


def run_at(url: str, **kwargs: object) -> dict:
    """A job through an isolated platform's API, followed to its end."""
    response = requests.post(f"{url}/v1/jobs/sentiment", timeout=10, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    return until(lambda: final(requests.get(f"{url}/v1/jobs/{job_id}", params={"wait": 30}, timeout=40).json()),
                 90, f"job {job_id} to end")


def final(record: dict) -> dict | None:
    return record if record["status"] in ("SUCCESS", "FAILURE", "REVOKED") else None


def test_transformer_model_from_a_directory(transformer_api: str) -> None:
    texts = ["a great movie", "awful", "I love it", "the movie was bad", "good " + "the movie " * 900]
    record = run_at(transformer_api, json={"texts": texts})
    assert record["status"] == "SUCCESS", record
    assert record["result"]["model"] == "my-distilbert-sst2"
    labels = [r["label"] for r in record["result"]["results"]]
    assert labels[:4] == ["POSITIVE", "NEGATIVE", "POSITIVE", "NEGATIVE"]
    assert labels[4] in {"POSITIVE", "NEGATIVE"}  # 1,800 words for a model of 32 tokens: truncated
    model = requests.get(f"{transformer_api}/ready", timeout=5).json()["queues"]["sentiment"]["model"]
    assert model["status"] == "loaded" and model["model"] == "my-distilbert-sst2"
