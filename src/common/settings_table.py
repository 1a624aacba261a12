"""What each setting means, rendered as the README's table and as `.env.example`.

    python -m common.settings_table markdown   # the README's settings table
    python -m common.settings_table env        # .env.example

The meanings are the fields' descriptions: the global settings (`common.settings.Settings`), then each
declared job type's (`<TYPE>_<FIELD>`, from its spec). `tests/test_settings.py` checks that the README
and `.env.example` hold what these functions render.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from common.catalog import CATALOG, JobType
from common.settings import PROJECT_ROOT, Settings


@dataclass(frozen=True)
class Row:
    variable: str
    default: str
    meaning: str


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return str(value.relative_to(PROJECT_ROOT)) if value.is_relative_to(PROJECT_ROOT) else str(value)
    return str(value)


def _rows(model: type[BaseModel], prefix: str, type_name: str = "", aliases: dict[str, str] | None = None) -> list[Row]:
    formerly = {name: old for old, name in (aliases or {}).items()}
    rows = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        meaning = (info.description or "").replace("{type}", type_name)
        if name in formerly:
            meaning += f" (formerly `{formerly[name]}`, still read; this name wins)"
        default = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
        rows.append(Row(f"{prefix}{name.upper()}", _show(default), meaning))
    return rows


def _type_rows(job_type: JobType) -> list[Row]:
    model = job_type.settings_model
    return _rows(model, job_type.env_prefix, job_type.name, getattr(model, "env_aliases", {}))


def rows() -> list[Row]:
    """Every setting: the global ones, then each job type's."""
    return [*_rows(Settings, ""), *(row for t in CATALOG for row in _type_rows(t))]


def markdown() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for row in rows():
        lines.append(f"| `{row.variable}` | {f'`{row.default}`' if row.default else '(empty)'} | {row.meaning} |")
    return "\n".join(lines) + "\n"


COMPOSE_ENV = """
# --- Docker Compose (docker-compose.yaml reads these from .env) ---
# Required, URL-safe secrets, e.g. `openssl rand -hex 24`:
RABBITMQ_USER=jobs
RABBITMQ_PASSWORD=
REDIS_PASSWORD=
REDIS_MAXMEMORY=1gb
# Empty FLOWER_PASSWORD: generated and printed in `docker compose logs flower`.
FLOWER_USER=admin
FLOWER_PASSWORD=
# Publishing the API beyond this host? Set API_KEYS (above) first.
API_PUBLISH=127.0.0.1:8000
FLOWER_PUBLISH=127.0.0.1:5555
LOG_FORMAT=json
LOG_LEVEL=INFO
WORKER_EVENTS=false
API_WORKERS=2
SENTIMENT_CONCURRENCY=2
DETECTION_CONCURRENCY=2
AUDIO_LENGTH_CONCURRENCY=2
SCRAPE_CONCURRENCY=4
CLIENT_DIR=.
TAG=latest
"""


def env() -> str:
    """`.env.example`: every platform setting (commented out, with its default), then Compose's variables."""
    lines = ["# Settings of the platform (src/common/settings.py); each line shows the default.", ""]
    for row in rows():
        lines.append(f"# {row.meaning}")
        lines.append(f"# {row.variable}={row.default}")
    return "\n".join(lines) + "\n" + COMPOSE_ENV


if __name__ == "__main__":
    sys.stdout.write({"markdown": markdown, "env": env}[sys.argv[1]]())
