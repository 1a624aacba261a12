"""Extract data from an HTML page: text by CSS selector, or a EuroMillions draw."""

from __future__ import annotations

import datetime as dt

from bs4 import BeautifulSoup
from soupsieve import SelectorSyntaxError

from common.errors import InputError


def extract(html: bytes, selectors: dict[str, str]) -> dict[str, object]:
    """Return the page title and, for each named CSS selector, the text of every match."""
    soup = BeautifulSoup(html, "lxml")
    fields: dict[str, list[str]] = {}
    for name, selector in selectors.items():
        try:
            matches = soup.select(selector)
        except SelectorSyntaxError as exc:
            raise InputError(f"Selector {name!r} is not valid CSS: {exc}", code="invalid_selector") from None
        fields[name] = [m.get_text(" ", strip=True) for m in matches]
    title = soup.title.get_text(strip=True) if soup.title else None
    return {"title": title, "fields": fields}


def euromillions_url(base_url: str, draw_date: dt.date) -> str:
    return f"{base_url.rstrip('/')}/{draw_date:%d-%m-%Y}"


def no_draw(draw_date: dt.date) -> InputError:
    return InputError(f"There is no EuroMillions draw on {draw_date.isoformat()} (no results on the page).",
                      code="no_draw")


def parse_draw(html: bytes, draw_date: dt.date) -> dict[str, object]:
    """Read the five numbers and two lucky stars of a results page (`div#ballsDrawn`)."""
    soup = BeautifulSoup(html, "lxml")
    drawn = soup.select_one("div#ballsDrawn")
    if drawn is None:
        raise no_draw(draw_date)
    try:
        numbers = [int(li.get_text(strip=True)) for li in drawn.select("li.ball")]
        stars = [int(li.get_text(strip=True)) for li in drawn.select("li.lucky-star")]
    except ValueError:
        raise InputError("The draw on the page holds something other than numbers.", code="no_draw") from None
    if len(numbers) != 5 or len(stars) != 2:
        raise InputError(f"Expected 5 numbers and 2 stars on the page, found {len(numbers)} and {len(stars)}.",
                         code="no_draw")
    return {"draw_date": draw_date.isoformat(), "numbers": numbers, "stars": stars}
