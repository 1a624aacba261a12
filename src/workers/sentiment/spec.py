"""The `sentiment` job type: text → POSITIVE, NEGATIVE or NEUTRAL with a score."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, RootModel, Tag, model_validator

from common.catalog import JobType, Model, TypeSettings
from common.schemas import StrictModel


class SentimentSettings(TypeSettings):
    max_memory_mb: int = Field(default=1536, ge=0, description=TypeSettings.model_fields["max_memory_mb"].description)
    max_texts: int = Field(default=256, ge=1, description="most texts in one sentiment job")
    max_chars: int = Field(default=10_000, ge=1, description="most characters in one text")
    model: str = Field(default="vader", description="`vader`, or a transformers classifier: a directory (as given "
                                                    "or in `MODELS_DIR`) or a Hugging Face model id")
    batch_size: int = Field(default=32, ge=1, description="texts per transformers batch")


def input_model(settings: SentimentSettings) -> type[BaseModel]:
    """`SentimentInput` with the limits in force, so that /openapi.json states them exactly."""
    max_texts, max_chars = settings.max_texts, settings.max_chars
    text = Annotated[str, Field(min_length=1, max_length=max_chars, pattern=r"\S",
                                description="A text with at least one non-space character.")]

    class SingleText(StrictModel):
        text: text  # type: ignore[valid-type]

    class ManyTexts(StrictModel):
        texts: list[text] = Field(min_length=1, max_length=max_texts,  # type: ignore[valid-type]
                                  description="Texts analysed as one batch; results come back in the same order.")

    def kind(data: Any) -> str:
        return "texts" if isinstance(data, dict) and "texts" in data else "text"

    class SentimentInput(RootModel[Annotated[
        Annotated[SingleText, Tag("text")] | Annotated[ManyTexts, Tag("texts")],
        Discriminator(kind),
    ]]):
        """Either `text` (one text) or `texts` (a batch)."""

        @model_validator(mode="before")
        @classmethod
        def _readable_limits(cls, data: Any) -> Any:
            """Say what is wrong in the user's words before the schema's own checks do it in pydantic's."""
            if not isinstance(data, dict) or ("text" in data) == ("texts" in data):
                raise ValueError("send exactly one of 'text' (a string) or 'texts' (a list of strings)")
            texts = data.get("texts") if "texts" in data else [data.get("text")]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                return data  # the schema's type errors say it well
            if len(texts) > max_texts:
                raise ValueError(f"at most {max_texts} texts per job, got {len(texts)}")
            for i, one in enumerate(texts):
                if not one.strip():
                    raise ValueError(f"text {i} is empty")
                if len(one) > max_chars:
                    raise ValueError(f"text {i} has {len(one)} characters; the limit is {max_chars}")
            return data

    return SentimentInput


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
    model=Model("VADER ships with the `workers` packages (`make install`); a transformers model goes in "
                "MODELS_DIR, or set ALLOW_DOWNLOADS=1."),
    example={"texts": ["I love this.", "This is terrible."]},
)
