"""Extract data from an HTML page: text by CSS selector, or a EuroMillions draw."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bs4 import BeautifulSoup, Tag
from soupsieve import SelectorSyntaxError

from common.errors import InputError


@dataclass(frozen=True)
class Caps:
    """What one page may yield: matches per selector, and characters of text per match (and of the title)."""

    max_matches: int
    max_text_chars: int


def extract(html: bytes, selectors: dict[str, str], caps: Caps) -> dict[str, object]:
    """Return the page title and, for each named CSS selector, the text of its first `caps.max_matches`
    matches, each cut at `caps.max_text_chars`; `truncated` says whether anything was left out.
    A match's text is read only up to the cap, so `*` on deeply nested elements stays linear."""
    soup = BeautifulSoup(html, "lxml")
    fields: dict[str, list[str]] = {}
    truncated = False
    for name, selector in selectors.items():
        try:
            matches = soup.select(selector, limit=caps.max_matches + 1)
        except SelectorSyntaxError as exc:
            raise InputError(f"Selector {name!r} is not valid CSS: {exc}", code="invalid_selector") from None
        truncated |= len(matches) > caps.max_matches
        fields[name] = []
        for match in matches[:caps.max_matches]:
            text, cut = capped_text(match, caps.max_text_chars)
            fields[name].append(text)
            truncated |= cut
    title, cut = capped_text(soup.title, caps.max_text_chars) if soup.title else (None, False)
    return {"title": title, "fields": fields, "truncated": truncated or cut}


def capped_text(element: Tag, max_chars: int) -> tuple[str, bool]:
    """`element.get_text(" ", strip=True)` read no further than `max_chars`, and whether it was cut."""
    parts: list[str] = []
    size = 0
    for string in element.stripped_strings:
        size += len(string) + (1 if parts else 0)
        parts.append(string)
        if size > max_chars:
            return " ".join(parts)[:max_chars], True
    return " ".join(parts), False


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
