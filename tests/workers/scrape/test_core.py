import datetime as dt

import pytest

from common.errors import InputError
from support.media import euromillions_page
from workers.scrape.core import euromillions_url, extract, parse_draw

PAGE = b"""<html><head><title> Shop </title></head><body>
<h1>Prices</h1><ul><li class="item">Tea <b>3</b></li><li class="item">Coffee <b>4</b></li></ul></body></html>"""


def test_extract_text_of_every_match() -> None:
    result = extract(PAGE, {"items": "li.item", "heading": "h1", "none": "table td"})
    assert result == {"title": "Shop", "fields": {"items": ["Tea 3", "Coffee 4"], "heading": ["Prices"], "none": []}}


def test_invalid_selector_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not valid CSS"):
        extract(PAGE, {"bad": "li[[["})


def test_parse_draw() -> None:
    html = euromillions_page([3, 14, 25, 36, 47], [2, 11]).encode()
    assert parse_draw(html, dt.date(2024, 1, 2)) == {"draw_date": "2024-01-02", "numbers": [3, 14, 25, 36, 47],
                                                      "stars": [2, 11]}


def test_page_without_a_draw_says_so() -> None:
    with pytest.raises(InputError, match="no EuroMillions draw on 2024-01-03"):
        parse_draw(b"<html><body>No results</body></html>", dt.date(2024, 1, 3))


def test_euromillions_url_uses_the_sites_date_format() -> None:
    assert euromillions_url("https://example.org/results/", dt.date(2024, 1, 2)) == "https://example.org/results/02-01-2024"
