"""Celery task for `scrape` jobs: CSS selectors on any page, or the EuroMillions preset."""

import datetime as dt
from typing import Any

from common.settings import get_settings
from workers.celery_app import job_task
from workers.fetch import FetchLimits, fetch
from workers.scrape import core


@job_task("scrape")
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    s = get_settings()
    limits = FetchLimits(s.fetch_connect_timeout_s, s.fetch_read_timeout_s, s.fetch_max_bytes)
    if payload.get("preset") == "euromillions":
        draw_date = dt.date.fromisoformat(payload["draw_date"])
        page = fetch(core.euromillions_url(s.euromillions_base_url, draw_date), limits)
        if page.status_code == 404:
            raise core.no_draw(draw_date)
        return core.parse_draw(page.content, draw_date)
    page = fetch(payload["url"], limits)
    return {"url": page.url, "status_code": page.status_code, **core.extract(page.content, payload["selectors"])}
