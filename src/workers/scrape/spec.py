"""The `scrape` job type: a web page → fields by CSS selector, or a EuroMillions draw."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AnyHttpUrl, BaseModel, Discriminator, Field, RootModel, Tag

from common.catalog import MAX_TIME_LIMIT_S, JobType, TypeSettings
from common.schemas import StrictModel


class ScrapeSettings(TypeSettings):
    env_aliases: ClassVar[dict[str, str]] = {"EUROMILLIONS_BASE_URL": "euromillions_base_url"}

    concurrency: int = Field(default=4, ge=1, description=TypeSettings.model_fields["concurrency"].description)
    time_limit_s: int = Field(default=60, gt=0, lt=MAX_TIME_LIMIT_S,
                              description=TypeSettings.model_fields["time_limit_s"].description)
    max_html_bytes: int = Field(default=5 * 1024 * 1024, ge=1, description=(
        "largest page a scrape job hands to the parser, counted after decompression; a larger one ends FAILURE "
        "`response_too_large` (parsing costs about 70× the page in memory)"))
    max_matches: int = Field(default=1000, ge=1, description="matches kept per selector of a scrape job (the "
                                                             "result says `truncated: true` when more matched)")
    max_text_chars: int = Field(default=1000, ge=1, description=(
        "characters of text kept per match (and of the title) of a scrape job; longer texts are cut "
        "(`truncated: true`)"))
    euromillions_base_url: str = Field(default="https://www.euro-millions.com/results/", description=(
        "results page of the `euromillions` scrape preset (the date is appended as DD-MM-YYYY)"))


class SelectorScrape(StrictModel):
    url: AnyHttpUrl
    selectors: dict[str, str] = Field(
        min_length=1, max_length=50, description="Field name → CSS selector; each field gets the text of every match."
    )


class EuroMillionsScrape(StrictModel):
    preset: Literal["euromillions"]
    draw_date: dt.date = Field(description="Date of the draw, YYYY-MM-DD.")


def _scrape_kind(data: Any) -> str:
    return "preset" if isinstance(data, dict) and "preset" in data else "selectors"


class ScrapeInput(RootModel[Annotated[
    Annotated[SelectorScrape, Tag("selectors")] | Annotated[EuroMillionsScrape, Tag("preset")],
    Discriminator(_scrape_kind),
]]):
    """Either `url` with `selectors`, or a `preset` (`euromillions`) with its `draw_date`."""


class PageFields(BaseModel):
    url: str
    status_code: int
    title: str | None
    fields: dict[str, list[str]]
    truncated: bool


class Draw(BaseModel):
    draw_date: dt.date
    numbers: list[int] = Field(min_length=5, max_length=5)
    stars: list[int] = Field(min_length=2, max_length=2)


class ScrapeResult(RootModel[PageFields | Draw]):
    """The fields of a page (`selectors`), or the numbers of a draw (`preset`)."""


JOB_TYPE = JobType(
    name="scrape",
    summary="Web page → extracted fields by CSS selector, or a EuroMillions draw (beautifulsoup4).",
    settings_model=ScrapeSettings,
    input_model=ScrapeInput,
    result_model=ScrapeResult,
    image="worker-light",
    example={"url": "https://example.com/", "selectors": {"title": "h1"}},
)
