"""Every setting of the platform, read once from environment variables (pydantic-settings).

Global settings are read from their upper-case names (`broker_url` from `BROKER_URL`). Each declared
job type's settings (`common.catalog.TypeSettings`, subclassed by its spec) are read from
`<TYPE>_<FIELD>` (`SENTIMENT_MAX_TEXTS`) with the spec's defaults, into `settings.types["<type>"]`. An
environment variable that starts with a declared type's prefix and names none of its settings stops the
start (`SettingsError`): a typo must not silently leave a default in force. A few settings keep their
older names as aliases (`IMAGE_MAX_BYTES` for `DETECTION_MAX_BYTES`); the new name wins when both are set.

The README's settings table and `.env.example` are generated from the fields' descriptions
(`make docs`); `tests/test_settings.py` keeps them in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from common.catalog import CATALOG, JobType

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOURS_48 = 48 * 3600


class SettingsError(ValueError):
    """A setting in the environment that the platform cannot use: it refuses to start."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True)

    broker_url: str = Field(default="amqp://guest:guest@127.0.0.1:5672//", description=(
        'RabbitMQ URL (AMQP) the API publishes to and workers consume from'))
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description=(
        'Redis URL of job records, uploads, results and rate limits'))
    rabbitmq_management_url: str = Field(default="http://guest:guest@127.0.0.1:15672/api/", description=(
        'RabbitMQ management API (queue figures for `/v1/queues`, `/metrics` and Flower)'))
    broker_heartbeat_s: int = Field(default=10, description=(
        "AMQP heartbeat of each worker's broker connection; a worker cut off silently loses its running job to "
        'another after 2–3× this (0: off, handover only by TCP)'))
    broker_confirm_timeout_s: float = Field(default=5.0, description=(
        'seconds a submit waits for the broker to confirm its job (a broker under a memory or disk alarm never '
        'does); then it answers 503 `broker_unavailable` and keeps no record'))
    api_host: str = Field(default="127.0.0.1", description=(
        'address the API (gunicorn) listens on; not loopback: `make up` needs `API_KEYS` (or `ALLOW_ANONYMOUS`)'))
    api_port: int = Field(default=8000, description='port of the API')
    api_workers: int = Field(default=2, description='gunicorn worker processes')
    api_threads: int = Field(default=16, description=(
        'threads per gunicorn worker (each long-poll or event stream holds one)'))
    client_read_timeout_s: float = Field(default=10.0, description=(
        'seconds a client has to send its whole request, head and body, from connecting (or from the first byte '
        'of a next request on a kept-alive connection); past it: 408 and the connection closed'))
    flower_host: str = Field(default="127.0.0.1", description='address Flower listens on')
    flower_port: int = Field(default=5555, description='port of Flower')
    flower_user: str = Field(default="admin", description="Flower's basic-auth user")
    flower_password: str = Field(default="", description=(
        "Flower's basic-auth password; empty: a new one is generated and printed at start"))
    worker_events: bool = Field(default=False, description=(
        "Celery task events (Flower's task list); off makes small jobs 1.5–2.5× faster"))
    result_ttl_s: int = Field(default=HOURS_48, description=(
        'seconds a job record and its result are kept after their last change (48 h)'))
    blob_ttl_s: int = Field(default=HOURS_48, description=(
        'seconds an upload is kept at most (deleted when its job ends; a detection image stays with its record '
        'for `annotated.png`)'))
    key_prefix: str = Field(default="", description=(
        'prefix of every Redis key the platform writes (several platforms on one Redis)'))
    store_retry_s: int = Field(default=300, description=(
        "seconds a worker retries a job's record write while Redis is unavailable (unreachable, full, read-only, "
        "loading, busy; at most until the job's soft time limit); then its message is requeued, not acknowledged"))
    store_headroom_percent: int = Field(default=80, description=(
        'submits answer 503 `store_full` once Redis would pass this share of its `maxmemory` (the rest is left '
        "for running jobs' ends)"))
    store_budget_bytes: int = Field(default=1024 * 1024 * 1024, description=(
        'the same limit in bytes of Redis memory, used when Redis has no `maxmemory` (0: none)'))
    upload_bytes_in_flight: int = Field(default=256 * 1024 * 1024, description=(
        'bytes of uploads one API key (or client address, without keys) may have stored for jobs not yet ended; '
        'past it a submit answers 429'))
    upload_bytes_kept: int = Field(default=256 * 1024 * 1024, ge=0, description=(
        'bytes one API key (or client address) may keep in the store after its jobs ended, until they expire with '
        "their records: uploads a job type keeps (detection's image or preview) and cached `annotated.png` files; "
        'past it a submit of such a type answers 429 `uploads_kept` (a drawing is then served, not cached; 0: no '
        'cap)'))
    max_wait_s: int = Field(default=30, description=(
        'longest `GET /v1/jobs/<id>?wait=` a client may ask for, in seconds'))
    max_waiting_per_process: int = Field(default=0, description=(
        'long-polls (`?wait=`) and event streams (`/events`) one API process holds at once, at most `API_THREADS` '
        '− 1; past it a wait or a stream answers at once (0: `API_THREADS` − 4, at least half the threads)'))
    events_max_s: int = Field(default=300, ge=1, description=(
        'longest a `GET /v1/jobs/<id>/events` stream stays open, in seconds; then it closes and the client resumes '
        'with `Last-Event-ID`'))
    result_max_bytes: int = Field(default=1024 * 1024, description=(
        'largest result a job may store, as JSON; a larger one ends the job FAILURE `result_too_large`'))
    fetch_connect_timeout_s: float = Field(default=5.0, description='connect timeout of every URL a job fetches')
    fetch_read_timeout_s: float = Field(default=20.0, description='read timeout of every URL a job fetches')
    fetch_max_bytes: int = Field(default=50 * 1024 * 1024, description=(
        'largest response a job may fetch where its type sets no cap of its own (scrape: `SCRAPE_MAX_HTML_BYTES`,'
        ' audio: `AUDIO_LENGTH_MAX_BYTES`), counted after decompression'))
    fetch_allowlist: str = Field(default="", description=(
        'what jobs may fetch although not public (SSRF guard), comma-separated: `host:port`, `[v6]:port`, or a '
        'bare host or address (every port of it)'))
    webhook_allowlist: str = Field(default="", description=(
        'where completion webhooks may be posted although not public (same SSRF guard and entries as '
        '`FETCH_ALLOWLIST`: `host:port`, `[v6]:port`, or a bare host)'))
    webhook_secret: str = Field(default="", description=(
        'key that signs completion webhooks (Standard Webhooks, `whsec_` + base64); empty: a submit with a '
        '`webhook` answers 400 `webhook_refused`'))
    webhook_secret_previous: str = Field(default="", description=(
        'the key being rotated out: each webhook then carries a second signature made with it'))
    webhook_timeout_s: float = Field(default=10.0, gt=0, description=(
        'seconds a webhook receiver has to connect and answer; past it the attempt counts as failed'))
    webhook_backoff_s: float = Field(default=5.0, gt=0, description=(
        'delay before the first retry of a webhook; each next one doubles (±20 % jitter)'))
    webhook_max_attempts: int = Field(default=15, ge=1, description=(
        'attempts of a webhook before it is `failed` (15 with a 5 s backoff: retries over about 23 h)'))
    webhook_concurrency: int = Field(default=4, ge=1, description=(
        'processes of the `webhooks` pool (each posts one webhook at a time)'))
    api_keys: str = Field(default="", description=(
        'API keys (comma-separated); when set, every `/v1` route needs `Authorization: Bearer <key>`'))
    rate_limit: str = Field(default="", description=(
        'requests per API key (or client address, without keys) on `/v1`, e.g. `100/second`; empty: no limit'))
    trusted_proxies: int = Field(default=0, ge=0, description=(
        'reverse proxies (load balancer, ingress) in front of the API whose `X-Forwarded-For` is trusted for '
        'the client address (rate limit, upload cap); 0: the header is ignored, the client is the peer'))
    allow_anonymous: bool = Field(default=False, description=(
        'let `make up` run the API on a non-loopback `API_HOST` with no `API_KEYS` (open to anyone who can reach '
        'it); off: it refuses to start'))
    demo_pages_port: int = Field(default=8099, description=(
        "port on 127.0.0.1 where `make up` serves the demo's pages (the only local address its jobs may fetch, "
        'unless `FETCH_ALLOWLIST` is set); 0: off'))
    max_deliveries: int = Field(default=3, description=(
        'deliveries of a job whose worker process dies each time before it is failed (`poison_job`) and parked in'
        " its type's dead-letter queue `<type>.dead`"))
    models_dir: Path = Field(default=PROJECT_ROOT / "models", description=(
        'folder of model files (YOLO weights, saved transformers)'))
    allow_downloads: bool = Field(default=False, description=(
        'let Hugging Face and ultralytics download missing models (off: offline; jobs fail saying where to put '
        'the file)'))
    torch_threads: int = Field(default=0, description='torch threads per worker process; 0: cores ÷ processes')
    run_dir: Path = Field(default=PROJECT_ROOT / "run", description=(
        'folder of run-time files (private RabbitMQ/Redis, metrics, test logs)'))
    log_level: str = Field(default="INFO", description='log level of the API and workers')
    log_format: str = Field(default="text", description=(
        '`text`, or `json` for one JSON object per line with the job id'))
    types: dict[str, Any] = Field(default_factory=lambda: read_types({}), exclude=True,
                                  description="each declared job type's settings, `<TYPE>_<FIELD>`")

    def __hash__(self) -> int:  # `types` holds a dict; the settings are still a value (cache keys)
        return hash(self.model_dump_json())

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the job types' variables, then the global ones (no .env file, no secrets dir)."""
        return init_settings, TypeSettingsSource(settings_cls), env_settings


class TypeSettingsSource(PydanticBaseSettingsSource):
    """`types`: every declared job type's settings, from `<TYPE>_<FIELD>` and the older names."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {"types": read_types(os.environ)}


def read_types(environ: Mapping[str, str], catalog: tuple[JobType, ...] = CATALOG) -> dict[str, Any]:
    """Each type's settings from `environ`; SettingsError for a `<TYPE>_…` name it does not know."""
    return {t.name: _read_type(t, environ) for t in catalog}


def _read_type(job_type: JobType, environ: Mapping[str, str]) -> Any:
    model, prefix = job_type.settings_model, job_type.env_prefix
    aliases: dict[str, str] = getattr(model, "env_aliases", {})
    values: dict[str, str] = {}
    source: dict[str, str] = {}
    for old, name in aliases.items():
        if old in environ:
            values[name], source[name] = environ[old], old
    unknown = []
    for key, raw in environ.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):].lower()
        if name in model.model_fields:
            values[name], source[name] = raw, key  # the new name wins over an alias
        else:
            unknown.append(key)
    if unknown:
        known = ", ".join(prefix + name.upper() for name in model.model_fields)
        raise SettingsError(f"Unknown setting {', '.join(sorted(unknown))} for the {job_type.name} job type: "
                            f"its settings are {known}. Fix or remove the variable.")
    try:
        parsed = model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{source.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"Invalid {job_type.name} settings: {problems}") from None
    if parsed.batch_max > 1 and not job_type.batches:
        raise SettingsError(f"{prefix}BATCH_MAX={parsed.batch_max}: {job_type.name} jobs do not run in batches (its "
                            f"engine takes one job at a time); leave it at 1.")
    return parsed


@cache
def get_settings() -> Settings:
    return Settings()


__all__ = ["HOURS_48", "PROJECT_ROOT", "Settings", "SettingsError", "get_settings", "read_types"]
