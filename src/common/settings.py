"""Every setting of the platform, read once from environment variables.

Each field's default is what `make up` uses on one machine. The README's settings table and
`.env.example` list the same names; `tests/test_settings.py` keeps them in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOURS_48 = 48 * 3600


@dataclass(frozen=True)
class Settings:
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    redis_url: str = "redis://127.0.0.1:6379/0"
    rabbitmq_management_url: str = "http://guest:guest@127.0.0.1:15672/api/"
    broker_heartbeat_s: int = 10
    broker_confirm_timeout_s: float = 5.0
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = 2
    api_threads: int = 16
    flower_host: str = "127.0.0.1"
    flower_port: int = 5555
    flower_user: str = "admin"
    flower_password: str = ""
    worker_events: bool = False
    result_ttl_s: int = HOURS_48
    blob_ttl_s: int = HOURS_48
    key_prefix: str = ""
    store_retry_s: int = 300
    store_headroom_percent: int = 80
    store_budget_bytes: int = 1024 * 1024 * 1024
    upload_bytes_in_flight: int = 256 * 1024 * 1024
    max_wait_s: int = 30
    max_waiting_per_process: int = 0
    result_max_bytes: int = 1024 * 1024
    fetch_connect_timeout_s: float = 5.0
    fetch_read_timeout_s: float = 20.0
    fetch_max_bytes: int = 50 * 1024 * 1024
    fetch_allowlist: str = ""
    api_keys: str = ""
    rate_limit: str = ""
    allow_anonymous: bool = False
    demo_pages_port: int = 8099
    scrape_max_html_bytes: int = 5 * 1024 * 1024
    scrape_max_matches: int = 1000
    scrape_max_text_chars: int = 1000
    euromillions_base_url: str = "https://www.euro-millions.com/results/"
    audio_max_bytes: int = 50 * 1024 * 1024
    audio_max_seconds: float = 3600.0
    audio_length_concurrency: int = 2
    scrape_concurrency: int = 4
    sentiment_concurrency: int = 2
    detection_concurrency: int = 2
    max_deliveries: int = 3
    sentiment_time_limit_s: int = 0
    detection_time_limit_s: int = 0
    audio_length_time_limit_s: int = 0
    scrape_time_limit_s: int = 0
    sentiment_max_texts: int = 256
    sentiment_max_chars: int = 10_000
    image_max_bytes: int = 10 * 1024 * 1024
    image_max_pixels: int = 40_000_000
    annotated_max_pixels: int = 4_000_000
    annotated_max_drawing: int = 2
    sentiment_model: str = "vader"
    sentiment_batch_size: int = 32
    detection_model: str = "yolov8n.pt"
    models_dir: Path = field(default=PROJECT_ROOT / "models")
    allow_downloads: bool = False
    torch_threads: int = 0
    sentiment_max_memory_mb: int = 1536
    detection_max_memory_mb: int = 1536
    audio_length_max_memory_mb: int = 1024
    scrape_max_memory_mb: int = 1024
    run_dir: Path = field(default=PROJECT_ROOT / "run")
    log_level: str = "INFO"
    log_format: str = "text"

    @classmethod
    def from_env(cls) -> Settings:
        """Each field is read from its upper-case name: `broker_url` from `BROKER_URL`."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f.name.upper())
            if raw is None:
                continue
            values[f.name] = _convert(raw, f.type)
        return cls(**values)


def _convert(raw: str, type_name: object) -> object:
    kind = str(type_name)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if kind == "Path":
        return Path(raw)
    return raw


@cache
def get_settings() -> Settings:
    return Settings.from_env()
