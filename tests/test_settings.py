"""One settings module, documented in one README table and in .env.example; per-type settings generic."""

from __future__ import annotations

import subprocess
import sys

import pytest

from common.catalog import BY_NAME, CATALOG
from common.readme_tables import rewrite
from common.settings import Settings, SettingsError, read_types
from common.settings_table import env, markdown, rows
from support.processes import ROOT


def run_python(*args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", **env_vars}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_every_setting_is_described() -> None:
    assert all(row.meaning for row in rows())
    variables = [row.variable for row in rows()]
    assert len(set(variables)) == len(variables)
    for job_type in CATALOG:  # each declared type's settings, generic ones included
        prefix = job_type.name.upper()
        assert {f"{prefix}_CONCURRENCY", f"{prefix}_TIME_LIMIT_S", f"{prefix}_MAX_MEMORY_MB",
                f"{prefix}_PREFETCH"} <= set(variables)


def test_readme_table_and_env_example_are_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown() in readme, "README's settings table is stale: run `make docs`"
    assert rewrite(readme) == readme, "README's job types table is stale: run `make docs`"
    assert (ROOT / ".env.example").read_text() == env(), ".env.example is stale: run `make docs`"


def test_settings_are_read_from_upper_case_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", "8123")
    monkeypatch.setenv("WORKER_EVENTS", "true")
    monkeypatch.setenv("FETCH_CONNECT_TIMEOUT_S", "1.5")
    monkeypatch.setenv("SENTIMENT_MAX_TEXTS", "12")
    settings = Settings()
    assert (settings.api_port, settings.worker_events, settings.fetch_connect_timeout_s) == (8123, True, 1.5)
    assert settings.types["sentiment"].max_texts == 12


def test_per_type_defaults_come_from_the_spec() -> None:
    types = read_types({})
    assert types["scrape"].time_limit_s == 60 and types["scrape"].concurrency == 4  # scrape's spec changes both
    assert types["sentiment"].time_limit_s == 120 and types["sentiment"].max_memory_mb == 1536
    assert types["audio_length"].max_memory_mb == 1024  # the generic default, not overridden
    for job_type in CATALOG:
        assert types[job_type.name] == job_type.settings_model()
        assert BY_NAME[job_type.name].soft_time_limit_s(Settings()) == job_type.settings_model().time_limit_s


def test_an_unknown_type_variable_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(SettingsError) as refused:
        read_types({"SENTIMENT_FOO": "1"})
    message = str(refused.value)
    assert "SENTIMENT_FOO" in message and "SENTIMENT_MAX_TEXTS" in message and "SENTIMENT_CONCURRENCY" in message
    with pytest.raises(SettingsError, match="SCRAPE_CONCURRENCY: Input should be a valid integer"):
        read_types({"SCRAPE_CONCURRENCY": "four"})
    with pytest.raises(SettingsError, match="AUDIO_LENGTH_TIME_LIMIT_S"):
        read_types({"AUDIO_LENGTH_TIME_LIMIT_S": "1800"})  # past RabbitMQ's consumer timeout


def test_the_launcher_refuses_to_start_with_an_unknown_type_variable() -> None:
    """What the operator sees from `make up`: one line that names the variable, no traceback."""
    done = run_python("-m", "launcher", "up", SENTIMENT_FOO="1")
    assert done.returncode == 2, done.stderr
    assert "Unknown setting SENTIMENT_FOO for the sentiment job type" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_refuses_to_start_with_an_unknown_type_variable() -> None:
    """What Compose or Kubernetes shows of a worker started with a misspelt variable."""
    done = run_python("-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "scrape", SCRAPE_MAX_MATCH="5")
    assert done.returncode != 0
    assert "Unknown setting SCRAPE_MAX_MATCH for the scrape job type" in done.stderr + done.stdout


def test_batching_is_refused_for_a_type_whose_engine_takes_one_job() -> None:
    assert read_types({"SENTIMENT_BATCH_MAX": "16"})["sentiment"].batch_max == 16
    with pytest.raises(SettingsError, match=r"^AUDIO_LENGTH_BATCH_MAX=4: audio_length jobs do not run in batches"):
        read_types({"AUDIO_LENGTH_BATCH_MAX": "4"})
    done = run_python("-m", "launcher", "up", SCRAPE_BATCH_MAX="2")
    assert done.returncode == 2, done.stderr
    assert "SCRAPE_BATCH_MAX=2: scrape jobs do not run in batches" in done.stderr and "Traceback" not in done.stderr


def test_an_old_name_still_works_and_the_new_name_wins() -> None:
    assert read_types({"IMAGE_MAX_BYTES": "1234"})["detection"].max_bytes == 1234
    assert read_types({"IMAGE_MAX_BYTES": "1234", "DETECTION_MAX_BYTES": "5678"})["detection"].max_bytes == 5678
    assert read_types({"EUROMILLIONS_BASE_URL": "http://x/"})["scrape"].euromillions_base_url == "http://x/"
    aliases = {"IMAGE_MAX_PIXELS": ("detection", "max_pixels"), "AUDIO_MAX_SECONDS": ("audio_length", "max_seconds"),
               "ANNOTATED_MAX_DRAWING": ("detection", "annotated_max_drawing")}
    for old, (type_name, field) in aliases.items():
        assert getattr(read_types({old: "7"})[type_name], field) == 7
    table = markdown()
    assert "| `DETECTION_MAX_BYTES` |" in table and "formerly `IMAGE_MAX_BYTES`" in table


def test_settings_are_a_value() -> None:
    """Equal settings hash equal: the API caches what it computes from them."""
    assert Settings() == Settings() and hash(Settings()) == hash(Settings())
    assert Settings(api_port=1) != Settings()
