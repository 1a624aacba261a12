"""Models the tests make themselves, offline: YOLO weights and a tiny DistilBERT sentiment classifier."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "run" / "test-models"
DETECTION_WEIGHTS = "yolov8n-test-v3.pt"  # change the version when the recipe below changes
PERSON = 0  # the COCO class index


def detection_weights(folder: Path = CACHE) -> Path:
    """yolov8n (the real network, built offline from `yolov8n.yaml`) with random weights, whose class
    scores are biased on its coarsest level so that it "sees" people (0.95) all over any image: a few
    dozen boxes per image through the real code path, the same on every run. Made once and kept under
    `run/`; written to a temporary name first, so concurrent runs never read half a file."""
    path = folder / DETECTION_WEIGHTS
    if path.is_file():
        return path
    import torch

    from workers.detection import weights

    partial = path.with_name(f".{os.getpid()}.{path.name}")
    weights.untrained(partial, "yolov8n.yaml", seed=0)
    from ultralytics import YOLO

    model = YOLO(str(partial))
    head = model.model.model[-1]
    with torch.no_grad():
        for level in head.cv3:
            level[-1].bias.fill_(-10.0)
        head.cv3[-1][-1].bias[PERSON] = 3.0
    model.save(str(partial))
    os.replace(partial, path)
    return path


POSITIVE = ["good movie", "great", "love it", "the movie was good", "it is great", "love", "a great movie"]
NEGATIVE = ["bad movie", "awful", "hate it", "the movie was bad", "it is awful", "hate", "an awful movie"]
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "great", "love", "bad", "awful", "hate", "the",
         "movie", "was", "it", "is", "a", "an"]


def tiny_distilbert(folder: Path, labels: tuple[str, str] = ("NEGATIVE", "POSITIVE"), max_length: int = 32) -> Path:
    """A DistilBERT of one layer (dim 32) over a vocabulary of 18 words, trained for a few steps on 14
    phrases so that the obvious ones come out right, saved as `save_pretrained` does for any model."""
    from workers import torchvision_nms

    torchvision_nms.register()  # transformers imports torchvision
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizer

    tokenizer = DistilBertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}, model_max_length=max_length)
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=len(WORDS), dim=32, hidden_dim=64, n_layers=1, n_heads=2,
                              max_position_embeddings=max_length, dropout=0.0, attention_dropout=0.0,
                              seq_classif_dropout=0.0, id2label=dict(enumerate(labels)),
                              label2id={label: i for i, label in enumerate(labels)})
    model = DistilBertForSequenceClassification(config)
    batch = tokenizer(POSITIVE + NEGATIVE, padding=True, return_tensors="pt")
    targets = torch.tensor([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        model(**batch, labels=targets).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
