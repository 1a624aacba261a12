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


class SentimentInput(_Strict):
    text: str | None = Field(default=None, min_length=1)
    texts: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of_text_or_texts(self) -> SentimentInput:
        if (self.text is None) == (self.texts is None):
            raise ValueError("send exactly one of 'text' or 'texts'")
        settings = get_settings()
        texts = self.texts if self.texts is not None else [self.text or ""]
        if len(texts) > settings.sentiment_max_texts:
            raise ValueError(f"at most {settings.sentiment_max_texts} texts per job, got {len(texts)}")
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"text {i} is empty")
            if len(text) > settings.sentiment_max_chars:
                raise ValueError(f"text {i} has {len(text)} characters; the limit is {settings.sentiment_max_chars}")
        return self


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
