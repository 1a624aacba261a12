import datetime as dt
import json

import pytest
from bs4 import BeautifulSoup

from common.errors import InputError
from support.media import euromillions_page
from support.pages import nested_divs
from workers.scrape.core import Caps, capped_text, euromillions_url, extract, parse_draw

PAGE = b"""<html><head><title> Shop </title></head><body>
<h1>Prices</h1><ul><li class="item">Tea <b>3</b></li><li class="item">Coffee <b>4</b></li></ul></body></html>"""
CAPS = Caps(max_matches=1000, max_text_chars=1000)  # the defaults


def test_extract_text_of_every_match() -> None:
    result = extract(PAGE, {"items": "li.item", "heading": "h1", "none": "table td"}, CAPS)
    assert result == {"title": "Shop", "fields": {"items": ["Tea 3", "Coffee 4"], "heading": ["Prices"], "none": []},
                      "truncated": False}


def test_invalid_selector_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not valid CSS"):
        extract(PAGE, {"bad": "li[[["}, CAPS)


def test_star_selectors_on_nested_divs_are_capped() -> None:
    page = nested_divs()
    uncapped = sum(len(el.get_text(" ", strip=True)) for el in BeautifulSoup(page, "lxml").select("*"))
    assert uncapped > 1_000_000  # what `*` alone used to yield
    result = extract(page, {"all": "*", "divs": "div", "inner": "div div"}, CAPS)
    assert result["truncated"] is True
    fields = result["fields"]
    assert len(fields["all"]) == 204 and len(fields["divs"]) == 200 and len(fields["inner"]) == 199
    assert all(len(text) <= 1000 for texts in fields.values() for text in texts)
    assert fields["divs"][-1] == "R" * 50  # the innermost: its whole text
    assert fields["divs"][0] == " ".join(chr(65 + i % 26) * 50 for i in range(200))[:1000]
    assert len(json.dumps(result)) < 1024 * 1024  # RESULT_MAX_BYTES


def test_matches_per_selector_are_capped() -> None:
    page = ("<html><body>" + "<p>x</p>" * 30 + "</body></html>").encode()
    assert extract(page, {"p": "p"}, Caps(max_matches=30, max_text_chars=10))["truncated"] is False
    result = extract(page, {"p": "p"}, Caps(max_matches=12, max_text_chars=10))
    assert result["fields"] == {"p": ["x"] * 12} and result["truncated"] is True


def test_capped_text_reads_like_get_text_under_the_cap() -> None:
    element = BeautifulSoup(PAGE, "lxml").body
    assert capped_text(element, 1000) == (element.get_text(" ", strip=True), False)
    assert capped_text(element, 8) == ("Prices T", True)


def test_parse_draw() -> None:
    html = euromillions_page([3, 14, 25, 36, 47], [2, 11]).encode()
    assert parse_draw(html, dt.date(2024, 1, 2)) == {"draw_date": "2024-01-02", "numbers": [3, 14, 25, 36, 47],
                                                      "stars": [2, 11]}


def test_page_without_a_draw_says_so() -> None:
    with pytest.raises(InputError, match="no EuroMillions draw on 2024-01-03"):
        parse_draw(b"<html><body>No results</body></html>", dt.date(2024, 1, 3))


def test_euromillions_url_uses_the_sites_date_format() -> None:
    assert euromillions_url("https://example.org/results/", dt.date(2024, 1, 2)) == "https://example.org/results/02-01-2024"
