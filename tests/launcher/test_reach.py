"""`make up` is safe by default: its jobs may fetch the demo's pages and nothing else on this machine, and
no process it starts shows a secret on its command line.

The platform is started exactly as `make up` starts it (`python -m launcher up`, no FETCH_ALLOWLIST), with
its own vhost, key prefix and free ports for the API, Flower and the demo pages (`support.up`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from common.settings import get_settings
from support.up import Launched, answers, command_lines, launched, launcher_env, members_of, private_vhost, wait_for

REDIS_PORT = 6379


@pytest.fixture(scope="module")
def platform() -> Iterator[Launched]:
    """One platform for this module's tests, started as `make up` starts it."""
    with private_vhost() as broker_url, launched(launcher_env(broker_url)) as started:
        yield started


def scrape(api: str, url: str) -> dict[str, Any]:
    """Submit a scrape of `url` and wait for its end."""
    submitted = requests.post(f"{api}/v1/jobs/scrape", json={"url": url, "selectors": {"title": "title"}},
                              timeout=30)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    for _ in range(4):
        record = requests.get(f"{api}/v1/jobs/{job_id}", params={"wait": 30}, timeout=40).json()
        if record["status"] in ("SUCCESS", "FAILURE"):
            return record  # type: ignore[no-any-return]
    raise AssertionError(f"scrape of {url} did not end within 2 minutes: {record}")


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def test_make_up_jobs_reach_the_demo_pages_and_nothing_else_local(platform: Launched) -> None:
    proc, output, env = platform
    api, pages = f"http://127.0.0.1:{env['API_PORT']}", f"127.0.0.1:{env['DEMO_PAGES_PORT']}"
    management_port = urlsplit(get_settings().rabbitmq_management_url).port or 15672

    def scrape_consumed() -> bool:
        r = answers(f"{api}/ready")
        return r is not None and r.json().get("queues", {}).get("scrape", {}).get("consumers", 0) >= 1

    wait_for(scrape_consumed, "a consumer on the scrape queue", proc, output)
    local = {"management": f"http://127.0.0.1:{management_port}/api/overview", "api": f"{api}/health",
             "flower": f"http://127.0.0.1:{env['FLOWER_PORT']}/", "redis": f"http://127.0.0.1:{REDIS_PORT}/",
             "by name": f"http://localhost:{management_port}/api/overview",
             "IPv6 loopback": f"http://[::1]:{env['API_PORT']}/health",
             "IPv4-mapped": f"http://[::ffff:127.0.0.1]:{management_port}/api/overview"}
    for what, url in local.items():
        record = scrape(api, url)
        assert record["status"] == "FAILURE" and record["error"]["code"] == "address_refused", (what, record)
    demo = scrape(api, f"http://{pages}/shop.html")
    assert demo["status"] == "SUCCESS", demo
    assert demo["result"]["title"] == "Demo shop"

    children = {name: int(pid) for name, pid in output.find(r"started (\S+) \(pid (\d+)\)")}
    assert environ_of(children["scrape"])["FETCH_ALLOWLIST"] == pages
    assert output.find(rf"jobs may fetch public URLs, and on this machine only the demo pages at http://{pages}/")


def test_make_up_shows_no_secret_on_any_command_line(platform: Launched) -> None:
    proc, output, env = platform
    wait_for(lambda: bool(output.find(r"Flower password for this run: (\S+)")) and len(
        output.find(r"started (\S+) \(pid (\d+)\)")) >= 3, "the children started", proc, output)
    api = f"http://127.0.0.1:{env['API_PORT']}"
    wait_for(lambda: (r := answers(f"{api}/health")) is not None and r.ok, "answer on /health", proc, output)
    flower_password = output.find(r"Flower password for this run: (\S+)")[0][0]
    broker_password = urlsplit(env["BROKER_URL"]).password
    groups = {int(pid) for _, pid in output.find(r"started (\S+) \(pid (\d+)\)")}
    lines = command_lines(members_of(groups) | {proc.pid})
    assert len(lines) > len(groups)  # the children's own children (gunicorn and Celery pool processes) too
    for secret in (flower_password, f":{broker_password}@"):
        leaks = {pid: line for pid, line in lines.items() if secret in line}
        assert not leaks, leaks
