"""scrape jobs end to end against pages served on 127.0.0.1."""

import gzip
import json

import pytest

from support.jobs import run_job
from support.media import euromillions_page
from support.pages import nested_divs, tiny_tags


@pytest.fixture(autouse=True)
def _workers(workers: object) -> None:
    pass


def test_selectors_extract_fields(http, site) -> None:
    url = site.add("/shop.html", "<html><title>Shop</title><p class='p'>one</p><p class='p'>two</p></html>")
    record = run_job(http, "scrape", json={"url": url, "selectors": {"paragraphs": "p.p", "links": "a"}})
    assert record["status"] == "SUCCESS", record
    assert record["result"] == {"url": url, "status_code": 200, "title": "Shop",
                                "fields": {"paragraphs": ["one", "two"], "links": []}, "truncated": False}


def test_a_page_that_answers_404_reports_its_status(http, site) -> None:
    record = run_job(http, "scrape", json={"url": f"{site.url}/gone.html", "selectors": {"t": "title"}})
    assert record["status"] == "SUCCESS"
    assert record["result"]["status_code"] == 404


def test_unreachable_host_fails_readably(http) -> None:
    record = run_job(http, "scrape", json={"url": "http://127.0.0.1:9/", "selectors": {"t": "title"}})
    assert record["status"] == "FAILURE"
    assert record["error"]["code"] == "fetch_failed"
    assert "127.0.0.1:9" in record["error"]["message"]


def test_euromillions_preset(http, site) -> None:
    site.add("/results/02-01-2024", euromillions_page([3, 14, 25, 36, 47], [2, 11]))
    site.add("/results/03-01-2024", "<html><body><p>No draw on this day.</p></body></html>")
    record = run_job(http, "scrape", json={"preset": "euromillions", "draw_date": "2024-01-02"})
    assert record["status"] == "SUCCESS", record
    assert record["result"] == {"draw_date": "2024-01-02", "numbers": [3, 14, 25, 36, 47], "stars": [2, 11]}
    for date in ("2024-01-03", "2024-01-04"):  # a page with no draw, and no page at all
        record = run_job(http, "scrape", json={"preset": "euromillions", "draw_date": date})
        assert record["status"] == "FAILURE"
        assert record["error"]["code"] == "no_draw"
        assert date in record["error"]["message"]


def test_star_selectors_on_200_nested_divs_give_a_bounded_result(http, site) -> None:
    """Each match's text holds every div inside it: uncapped, this page gave 3 MB of JSON."""
    url = site.add("/nest.html", nested_divs(200))
    record = run_job(http, "scrape", json={"url": url, "selectors": {"all": "*", "divs": "div", "inner": "div *"}})
    assert record["status"] == "SUCCESS", record
    result = record["result"]
    assert result["truncated"] is True
    assert [len(result["fields"][name]) for name in ("all", "divs", "inner")] == [204, 200, 199]
    assert max(len(text) for texts in result["fields"].values() for text in texts) == 1000  # SCRAPE_MAX_TEXT_CHARS
    assert len(json.dumps(result)) < 1024 * 1024  # RESULT_MAX_BYTES


def test_a_result_larger_than_result_max_bytes_fails_readably(http, site) -> None:
    url = site.add("/nest-many.html", nested_divs(200))
    selectors = {f"all{i}": "*" for i in range(10)}  # 10 × 204 matches of up to 1000 characters
    record = run_job(http, "scrape", json={"url": url, "selectors": selectors})
    assert record["status"] == "FAILURE", record["status"]
    assert record["error"]["code"] == "result_too_large"
    message = record["error"]["message"]
    assert "more than 1048576 bytes" in message and "RESULT_MAX_BYTES" in message, message
    assert record["result"] is None


def test_a_page_larger_than_scrape_max_html_bytes_is_refused_after_decompression(http, site) -> None:
    """20 MB of tiny tags, sent gzipped (about 60 KB on the wire): never handed to the parser by default."""
    page = tiny_tags(20 * 1024 * 1024)
    url = site.add("/tiny-tags.html", gzip.compress(page), headers={"Content-Encoding": "gzip"})
    record = run_job(http, "scrape", json={"url": url, "selectors": {"t": "title"}})
    assert record["status"] == "FAILURE", record["status"]
    assert record["error"]["code"] == "response_too_large"
    assert "5242880 bytes" in record["error"]["message"], record["error"]
