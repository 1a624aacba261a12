"""Celery task for `scrape` jobs: CSS selectors on any page, or the EuroMillions preset."""

import datetime as dt
from typing import Any

from common.settings import get_settings
from workers.celery_app import job_task
from workers.fetch import fetch, limits_from_settings
from workers.scrape import core


@job_task("scrape")
def run(self: Any, payload: dict[str, Any]) -> dict[str, object]:
    settings = get_settings().types["scrape"]
    limits = limits_from_settings(settings.max_html_bytes)  # counted after decompression
    if payload.get("preset") == "euromillions":
        draw_date = dt.date.fromisoformat(payload["draw_date"])
        page = fetch(core.euromillions_url(settings.euromillions_base_url, draw_date), limits)
        if page.status_code == 404:
            raise core.no_draw(draw_date)
        return core.parse_draw(page.content, draw_date)
    page = fetch(payload["url"], limits)
    caps = core.Caps(settings.max_matches, settings.max_text_chars)
    return {"url": page.url, "status_code": page.status_code, **core.extract(page.content, payload["selectors"], caps)}
