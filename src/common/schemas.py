"""Pydantic models of what users send and what the API answers.

The API validates requests with these models and renders `/openapi.json` from the same models.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag, model_validator

from common.settings import get_settings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UrlInput(_Strict):
    url: AnyHttpUrl = Field(description="An http(s) URL the worker fetches.")


class SelectorScrape(_Strict):
    url: AnyHttpUrl
    selectors: dict[str, str] = Field(
        min_length=1, max_length=50, description="Field name → CSS selector; each field gets the text of every match."
    )


class EuroMillionsScrape(_Strict):
    preset: Literal["euromillions"]
    draw_date: dt.date = Field(description="Date of the draw, YYYY-MM-DD.")


def _scrape_kind(data: Any) -> str:
    return "preset" if isinstance(data, dict) and "preset" in data else "selectors"


class ScrapeInput(RootModel[Annotated[
    Annotated[SelectorScrape, Tag("selectors")] | Annotated[EuroMillionsScrape, Tag("preset")],
    Discriminator(_scrape_kind),
]]):
    """Either `url` with `selectors`, or a `preset` (`euromillions`) with its `draw_date`."""


_LIMITS = get_settings()
# The limits are read once, when the API starts, so that /openapi.json states them exactly.
Text = Annotated[str, Field(min_length=1, max_length=_LIMITS.sentiment_max_chars, pattern=r"\S",
                            description="A text with at least one non-space character.")]


class SingleText(_Strict):
    text: Text


class ManyTexts(_Strict):
    texts: list[Text] = Field(min_length=1, max_length=_LIMITS.sentiment_max_texts,
                              description="Texts analysed as one batch; results come back in the same order.")


def _sentiment_kind(data: Any) -> str:
    return "texts" if isinstance(data, dict) and "texts" in data else "text"


class SentimentInput(RootModel[Annotated[
    Annotated[SingleText, Tag("text")] | Annotated[ManyTexts, Tag("texts")],
    Discriminator(_sentiment_kind),
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
        if len(texts) > _LIMITS.sentiment_max_texts:
            raise ValueError(f"at most {_LIMITS.sentiment_max_texts} texts per job, got {len(texts)}")
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"text {i} is empty")
            if len(text) > _LIMITS.sentiment_max_chars:
                raise ValueError(f"text {i} has {len(text)} characters; the limit is {_LIMITS.sentiment_max_chars}")
        return data


class DetectionOptions(_Strict):
    confidence: float = Field(default=0.25, ge=0.0, le=1.0, description="Minimum confidence of a box.")
    max_detections: int = Field(default=100, ge=1, le=1000, description="Most boxes returned.")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_input"])
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class JobAccepted(BaseModel):
    job_id: str
    type: str
    status: str
    created_at: str


class JobView(BaseModel):
    job_id: str
    type: str
    status: Literal["PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"]
    progress: int = Field(ge=0, le=100)
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    result: Any = None
    error: ErrorDetail | None = None
