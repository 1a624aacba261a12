"""The `sentiment` job type: text → POSITIVE, NEGATIVE or NEUTRAL with a score."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, RootModel

from common.catalog import JobType, Model, TypeSettings
from common.schemas import texts_input


class SentimentSettings(TypeSettings):
    max_memory_mb: int = Field(default=1536, ge=0, description=TypeSettings.model_fields["max_memory_mb"].description)
    max_texts: int = Field(default=256, ge=1, description="most texts in one sentiment job")
    max_chars: int = Field(default=10_000, ge=1, description="most characters in one text")
    model: str = Field(default="vader", description="`vader`, or a transformers classifier: a directory (as given "
                                                    "or in `MODELS_DIR`) or a Hugging Face model id")
    batch_size: int = Field(default=32, ge=1, description="texts per transformers batch")


def input_model(settings: SentimentSettings) -> type[BaseModel]:
    return texts_input("Sentiment", settings.max_texts, settings.max_chars,
                       many="Texts analysed as one batch; results come back in the same order.")


class Sentiment(BaseModel):
    label: Literal["POSITIVE", "NEGATIVE", "NEUTRAL"]
    score: float = Field(ge=0, le=1)


class OneSentiment(Sentiment):
    model: str


class ManySentiments(BaseModel):
    results: list[Sentiment] = Field(description="One per text, in the order sent.")
    model: str


class SentimentResult(RootModel[OneSentiment | ManySentiments]):
    """`label`/`score` for `text`; `results` for `texts`."""


JOB_TYPE = JobType(
    name="sentiment",
    summary="Text → POSITIVE, NEGATIVE or NEUTRAL with a score (VADER, or a transformers model).",
    settings_model=SentimentSettings,
    input_factory=input_model,
    result_model=SentimentResult,
    image="worker-ml",
    batches=True,
    model=Model("VADER ships with the `workers` packages (`make install`); a transformers model goes in "
                "MODELS_DIR, or set ALLOW_DOWNLOADS=1.",
                brought="a fine-tuned transformer you bring: SENTIMENT_MODEL=<folder name>"),
    example={"texts": ["I love this.", "This is terrible."]},
)
