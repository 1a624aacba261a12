"""One settings module, documented in one README table and in .env.example."""

from __future__ import annotations

from dataclasses import fields

import pytest

from common.settings import Settings
from common.settings_table import DESCRIPTIONS, env, markdown
from support.processes import ROOT


def test_every_setting_is_described() -> None:
    assert set(DESCRIPTIONS) == {f.name for f in fields(Settings)}


def test_readme_table_and_env_example_are_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown() in readme, "README's settings table is stale: run `make docs`"
    assert (ROOT / ".env.example").read_text() == env(), ".env.example is stale: run `make docs`"


def test_settings_are_read_from_upper_case_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", "8123")
    monkeypatch.setenv("WORKER_EVENTS", "true")
    monkeypatch.setenv("FETCH_CONNECT_TIMEOUT_S", "1.5")
    settings = Settings.from_env()
    assert (settings.api_port, settings.worker_events, settings.fetch_connect_timeout_s) == (8123, True, 1.5)
