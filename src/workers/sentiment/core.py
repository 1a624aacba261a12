"""Sentiment of texts: VADER (a lexicon and rules, the default) or a transformers text classifier.

Both engines sit behind one interface: `load_model(name)` returns an `Engine`, and `analyze(texts,
engine)` labels a whole list in one call (one batch for the model), in input order, each as
POSITIVE, NEGATIVE or NEUTRAL with a score between 0 and 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import InputError

VADER = "vader"
VADER_THRESHOLD = 0.05  # VADER's own convention: compound ≥ 0.05 positive, ≤ -0.05 negative
LABEL_NAMES = {"POSITIVE": "POSITIVE", "POS": "POSITIVE", "NEGATIVE": "NEGATIVE", "NEG": "NEGATIVE",
               "NEUTRAL": "NEUTRAL", "NEU": "NEUTRAL"}


@dataclass(frozen=True)
class Engine:
    name: str
    classify: Callable[[list[str]], list[dict[str, Any]]]


def load_model(name: str, folders: Sequence[Path] = (), *, allow_downloads: bool = False, batch_size: int = 32,
               threads: int = 1) -> Engine:
    """`vader`, or a sequence classifier: a directory (as given, or inside one of `folders`) or a Hugging
    Face model id (from the local Hugging Face cache unless `allow_downloads`)."""
    if name.strip().lower() == VADER:
        return _load_vader()
    local = next((folder / name for folder in folders if (folder / name).is_dir()), None)
    return _load_transformer(str(local or name), allow_downloads, batch_size, threads)


def analyze(texts: list[str], engine: Engine) -> list[dict[str, Any]]:
    """One `{"label", "score"}` per text, in input order."""
    return engine.classify(texts)


def _load_vader() -> Engine:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()

    def classify(texts: list[str]) -> list[dict[str, Any]]:
        return [vader_label(analyzer.polarity_scores(text)["compound"]) for text in texts]

    return Engine(VADER, classify)


def vader_label(compound: float) -> dict[str, Any]:
    """The label from VADER's compound score (-1…1); the score is its strength, |compound|, or for
    NEUTRAL how close it is to 0 (1 - |compound|)."""
    if compound >= VADER_THRESHOLD:
        return {"label": "POSITIVE", "score": round(compound, 4)}
    if compound <= -VADER_THRESHOLD:
        return {"label": "NEGATIVE", "score": round(-compound, 4)}
    return {"label": "NEUTRAL", "score": round(1 - abs(compound), 4)}


def _load_transformer(name: str, allow_downloads: bool, batch_size: int, threads: int) -> Engine:
    import torch

    from workers import torchvision_nms

    torchvision_nms.register()  # transformers imports torchvision when it is installed
    torch.set_num_threads(threads)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=not allow_downloads)
        model = AutoModelForSequenceClassification.from_pretrained(name, local_files_only=not allow_downloads)
    except (OSError, ValueError) as exc:
        why = "cannot be loaded" if allow_downloads else (
            "is neither a local directory nor in the Hugging Face cache, and downloads are off (ALLOW_DOWNLOADS)")
        raise InputError(f"The sentiment model {name!r} {why}: {exc}", code="model_unavailable") from None
    labels = _labels(name, model.config.id2label)
    max_length = _max_length(tokenizer, model.config)
    classifier = pipeline("sentiment-analysis", model=model, tokenizer=tokenizer)  # type: ignore[call-overload]

    def classify(texts: list[str]) -> list[dict[str, Any]]:
        outputs = classifier(texts, batch_size=batch_size, truncation=True, max_length=max_length)
        return [{"label": labels[out["label"]], "score": round(float(out["score"]), 4)} for out in outputs]

    folder = Path(name).expanduser()
    return Engine(folder.name if folder.is_dir() else name, classify)


def _labels(name: str, id2label: dict[int, str]) -> dict[str, str]:
    """The model's class names → the platform's, or a load error naming what the model has."""
    found = {label: LABEL_NAMES.get(label.strip().upper()) for label in id2label.values()}
    if None in found.values() or not {"POSITIVE", "NEGATIVE"} <= set(found.values()):
        raise InputError(f"The sentiment model {name!r} names its classes {sorted(found)}; the platform needs "
                         "POSITIVE and NEGATIVE (and optionally NEUTRAL): set id2label in its config.json.",
                         code="model_unavailable")
    return {label: platform for label, platform in found.items() if platform is not None}


def _max_length(tokenizer: Any, config: Any) -> int:
    """Tokens per text the model takes; longer texts are cut to it, never refused."""
    limits = [n for n in (tokenizer.model_max_length, getattr(config, "max_position_embeddings", None))
              if isinstance(n, int) and 0 < n < 1_000_000]
    return min(limits, default=512)


__all__ = ["Engine", "analyze", "load_model", "vader_label"]
