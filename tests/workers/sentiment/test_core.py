"""sentiment.core: VADER, and the transformers path on a tiny DistilBERT the tests train and save themselves."""

from pathlib import Path

import pytest

from common.errors import InputError
from support.models import tiny_distilbert
from workers.sentiment.core import Engine, analyze, load_model, vader_label

OBVIOUS = {
    "I love this phone, it is wonderful!": "POSITIVE",
    "What a great, happy day :)": "POSITIVE",
    "The staff were friendly and the food was excellent.": "POSITIVE",
    "This is the best movie I have seen in years.": "POSITIVE",
    "Thank you so much, you are amazing!": "POSITIVE",
    "I hate this, it is terrible.": "NEGATIVE",
    "The service was awful and the room was dirty.": "NEGATIVE",
    "Worst purchase ever, a complete waste of money.": "NEGATIVE",
    "I am so sad and angry about this.": "NEGATIVE",
    "The train is late again, horrible.": "NEGATIVE",
    "The meeting is at 3 pm in room 4.": "NEUTRAL",
    "The box contains twelve pencils.": "NEUTRAL",
}


@pytest.fixture(scope="module")
def vader() -> Engine:
    return load_model("vader")


def test_vader_labels_obvious_sentences(vader: Engine) -> None:
    results = analyze(list(OBVIOUS), vader)
    assert [r["label"] for r in results] == list(OBVIOUS.values())
    assert all(0 <= r["score"] <= 1 for r in results)
    assert vader.name == "vader"


def test_vader_thresholds_are_vaders_own() -> None:
    assert vader_label(0.05) == {"label": "POSITIVE", "score": 0.05}
    assert vader_label(-0.8) == {"label": "NEGATIVE", "score": 0.8}
    assert vader_label(0.0) == {"label": "NEUTRAL", "score": 1.0}
    assert vader_label(0.049)["label"] == "NEUTRAL"


def test_a_batch_keeps_input_order_and_equals_single_calls(vader: Engine) -> None:
    texts = list(OBVIOUS) * 20
    assert analyze(texts, vader) == [analyze([t], vader)[0] for t in texts]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_distilbert(tmp_path_factory.mktemp("models") / "tiny-distilbert")


@pytest.fixture(scope="module")
def tiny(tiny_model: Path) -> Engine:
    return load_model(str(tiny_model), batch_size=4)


def test_transformer_from_a_local_directory(tiny: Engine) -> None:
    results = analyze(["a great movie", "what a good movie, I love it", "awful", "the movie was bad, I hate it"], tiny)
    assert [r["label"] for r in results] == ["POSITIVE", "POSITIVE", "NEGATIVE", "NEGATIVE"]
    assert all(0.5 <= r["score"] <= 1 for r in results)
    assert tiny.name == "tiny-distilbert"


def test_transformer_batches_equal_single_calls(tiny: Engine) -> None:
    texts = ["good", "bad movie", "it is great", "hate", "the movie was awful", "love it"] * 3
    batched = analyze(texts, tiny)
    assert [r["label"] for r in batched] == [analyze([t], tiny)[0]["label"] for t in texts]
    for one, alone in zip(batched, (analyze([t], tiny)[0] for t in texts), strict=True):
        assert one["score"] == pytest.approx(alone["score"], abs=1e-3)


def test_texts_longer_than_the_model_are_truncated_not_refused(tiny: Engine) -> None:
    long_text = "great " + "the movie " * 2000  # 4,000 tokens for a model of 32
    assert analyze([long_text], tiny)[0]["label"] in {"POSITIVE", "NEGATIVE"}


def test_a_name_is_looked_up_in_the_models_folders(tiny_model: Path) -> None:
    engine = load_model(tiny_model.name, [tiny_model.parent.parent / "elsewhere", tiny_model.parent])
    assert engine.name == "tiny-distilbert"
    assert analyze(["love it"], engine)[0]["label"] == "POSITIVE"


def test_model_with_other_class_names_is_refused_at_load(tmp_path: Path) -> None:
    folder = tiny_distilbert(tmp_path / "stars", labels=("1 star", "5 stars"))
    with pytest.raises(InputError, match=r"'1 star', '5 stars'.*id2label") as caught:
        load_model(str(folder))
    assert caught.value.code == "model_unavailable"


def test_unknown_model_fails_offline_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="downloads are off") as caught:
        load_model("someone/not-downloaded-sst2")
    assert caught.value.code == "model_unavailable"
    with pytest.raises(InputError, match="neither a local directory"):
        load_model(str(tmp_path / "empty"))
