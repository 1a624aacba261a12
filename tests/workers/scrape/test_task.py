"""scrape jobs end to end against pages served on 127.0.0.1."""

import pytest

from support.jobs import run_job
from support.media import euromillions_page


@pytest.fixture(autouse=True)
def _workers(workers: object) -> None:
    pass


def test_selectors_extract_fields(http, site) -> None:
    url = site.add("/shop.html", "<html><title>Shop</title><p class='p'>one</p><p class='p'>two</p></html>")
    record = run_job(http, "scrape", json={"url": url, "selectors": {"paragraphs": "p.p", "links": "a"}})
    assert record["status"] == "SUCCESS", record
    assert record["result"] == {"url": url, "status_code": 200, "title": "Shop",
                                "fields": {"paragraphs": ["one", "two"], "links": []}}


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
