"""What each setting means, rendered as the README's table and as `.env.example`.

    python -m common.settings_table markdown   # the README's settings table
    python -m common.settings_table env        # .env.example

`tests/test_settings.py` checks that every field of `Settings` is described here and that the
README and `.env.example` hold what these functions render.
"""

from __future__ import annotations

import sys
from dataclasses import MISSING, fields
from pathlib import Path

from common.settings import PROJECT_ROOT, Settings

DESCRIPTIONS: dict[str, str] = {
    "broker_url": "RabbitMQ URL (AMQP) the API publishes to and workers consume from",
    "redis_url": "Redis URL of job records, uploads, results and rate limits",
    "rabbitmq_management_url": "RabbitMQ management API (queue figures for `/v1/queues`, `/metrics` and Flower)",
    "broker_heartbeat_s": "AMQP heartbeat of each worker's broker connection; a worker cut off silently loses its "
                          "running job to another after 2–3× this (0: off, handover only by TCP)",
    "broker_confirm_timeout_s": "seconds a submit waits for the broker to confirm its job (a broker under a memory or "
                                "disk alarm never does); then it answers 503 `broker_unavailable` and keeps no record",
    "api_host": "address the API (gunicorn) listens on; not loopback: `make up` needs `API_KEYS` (or "
                "`ALLOW_ANONYMOUS`)",
    "api_port": "port of the API",
    "api_workers": "gunicorn worker processes",
    "api_threads": "threads per gunicorn worker (each long-poll holds one)",
    "flower_host": "address Flower listens on",
    "flower_port": "port of Flower",
    "flower_user": "Flower's basic-auth user",
    "flower_password": "Flower's basic-auth password; empty: a new one is generated and printed at start",
    "worker_events": "Celery task events (Flower's task list); off makes small jobs 1.5–2.5× faster",
    "result_ttl_s": "seconds a job record and its result are kept after their last change (48 h)",
    "blob_ttl_s": "seconds an upload is kept at most (deleted when its job ends; a detection image stays with its "
                  "record for `annotated.png`)",
    "key_prefix": "prefix of every Redis key the platform writes (several platforms on one Redis)",
    "store_retry_s": "seconds a worker retries a job's record write while Redis is unavailable (unreachable, full, "
                     "read-only, loading, busy; at most until the job's soft time limit); then its message is "
                     "requeued, not acknowledged",
    "store_headroom_percent": "submits answer 503 `store_full` once Redis would pass this share of its `maxmemory` "
                              "(the rest is left for running jobs' ends)",
    "store_budget_bytes": "the same limit in bytes of Redis memory, used when Redis has no `maxmemory` (0: none)",
    "upload_bytes_in_flight": "bytes of uploads one API key (or client address, without keys) may have stored for jobs "
                              "not yet ended; past it a submit answers 429",
    "max_wait_s": "longest `GET /v1/jobs/<id>?wait=` a client may ask for, in seconds",
    "max_waiting_per_process": "long-polls (`?wait=`) one API process holds at once, at most `API_THREADS` − 1; "
                               "past it a wait answers at once (0: `API_THREADS` − 4, at least half the threads)",
    "result_max_bytes": "largest result a job may store, as JSON; a larger one ends the job FAILURE "
                        "`result_too_large`",
    "fetch_connect_timeout_s": "connect timeout of every URL a job fetches",
    "fetch_read_timeout_s": "read timeout of every URL a job fetches",
    "fetch_max_bytes": "largest response a job may fetch where its type sets no cap of its own (scrape: "
                       "`SCRAPE_MAX_HTML_BYTES`, audio: `AUDIO_MAX_BYTES`), counted after decompression",
    "fetch_allowlist": "what jobs may fetch although not public (SSRF guard), comma-separated: `host:port`, "
                       "`[v6]:port`, or a bare host or address (every port of it)",
    "api_keys": "API keys (comma-separated); when set, every `/v1` route needs `Authorization: Bearer <key>`",
    "rate_limit": "requests per API key on `/v1`, e.g. `100/second`; empty: no limit",
    "allow_anonymous": "let `make up` run the API on a non-loopback `API_HOST` with no `API_KEYS` (open to anyone "
                       "who can reach it); off: it refuses to start",
    "demo_pages_port": "port on 127.0.0.1 where `make up` serves the demo's pages (the only local address its jobs "
                       "may fetch, unless `FETCH_ALLOWLIST` is set); 0: off",
    "scrape_max_html_bytes": "largest page a scrape job hands to the parser, counted after decompression; a larger "
                             "one ends FAILURE `response_too_large` (parsing costs about 70× the page in memory)",
    "scrape_max_matches": "matches kept per selector of a scrape job (the result says `truncated: true` when more "
                          "matched)",
    "scrape_max_text_chars": "characters of text kept per match (and of the title) of a scrape job; longer texts are "
                             "cut (`truncated: true`)",
    "euromillions_base_url": "results page of the `euromillions` scrape preset (the date is appended as DD-MM-YYYY)",
    "audio_max_bytes": "largest audio upload or download",
    "audio_max_seconds": "longest audio a job measures, in seconds (read from the header, before decoding)",
    "audio_length_concurrency": "processes of the audio_length worker pool",
    "scrape_concurrency": "processes of the scrape worker pool",
    "sentiment_concurrency": "processes of the sentiment worker pool",
    "detection_concurrency": "processes of the detection worker pool (each gets cores ÷ processes threads)",
    "max_deliveries": "deliveries of a job whose worker process dies each time before it is failed (`poison_job`) "
                      "and parked in its type's dead-letter queue `<type>.dead`",
    "sentiment_time_limit_s": "soft time limit of a sentiment job in seconds (hard limit 15 s later); 0: the "
                              "catalog's (120)",
    "detection_time_limit_s": "soft time limit of a detection job in seconds; 0: the catalog's (120)",
    "audio_length_time_limit_s": "soft time limit of an audio_length job in seconds; 0: the catalog's (120)",
    "scrape_time_limit_s": "soft time limit of a scrape job in seconds; 0: the catalog's (60)",
    "sentiment_max_texts": "most texts in one sentiment job",
    "sentiment_max_chars": "most characters in one text",
    "image_max_bytes": "largest image upload",
    "image_max_pixels": "largest image, in pixels (checked from the header, before decoding)",
    "annotated_max_pixels": "`annotated.png` is drawn on a preview of at most this many pixels, made by the "
                            "detection worker from the image it decoded",
    "annotated_max_drawing": "`annotated.png` drawings at once per API process; past it a request waits up to 2 s, "
                             "then answers 503 with `Retry-After`",
    "sentiment_model": "`vader`, or a transformers classifier: a directory (as given or in `MODELS_DIR`) or a "
                       "Hugging Face model id",
    "sentiment_batch_size": "texts per transformers batch",
    "detection_model": "YOLO weights: a name looked up in `models_dir` and ultralytics' folder, or a path; "
                       "`.onnx` runs on ONNX Runtime",
    "models_dir": "folder of model files (YOLO weights, saved transformers)",
    "allow_downloads": "let Hugging Face and ultralytics download missing models (off: offline; jobs fail saying "
                       "where to put the file)",
    "torch_threads": "torch threads per worker process; 0: cores ÷ processes",
    "sentiment_max_memory_mb": "memory cap of a sentiment worker child (MB, its data segment): a job that needs more "
                               "ends FAILURE `out_of_memory`; a child whose peak passed 3/4 of it is replaced after "
                               "its job",
    "detection_max_memory_mb": "memory cap of a detection worker child (MB), as for sentiment",
    "audio_length_max_memory_mb": "memory cap of an audio_length worker child (MB), as for sentiment",
    "scrape_max_memory_mb": "memory cap of a scrape worker child (MB), as for sentiment",
    "run_dir": "folder of run-time files (private RabbitMQ/Redis, metrics, test logs)",
    "log_level": "log level of the API and workers",
    "log_format": "`text`, or `json` for one JSON object per line with the job id",
}


def _default(name: str) -> str:
    f = next(f for f in fields(Settings) if f.name == name)
    value = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc, operator]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return str(value.relative_to(PROJECT_ROOT)) if value.is_relative_to(PROJECT_ROOT) else str(value)
    return str(value)


def markdown() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        default = _default(f.name)
        rows.append(f"| `{f.name.upper()}` | {f'`{default}`' if default else '(empty)'} | {DESCRIPTIONS[f.name]} |")
    return "\n".join(rows) + "\n"


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
    for f in fields(Settings):
        lines.append(f"# {DESCRIPTIONS[f.name]}")
        lines.append(f"# {f.name.upper()}={_default(f.name)}")
    return "\n".join(lines) + "\n" + COMPOSE_ENV


if __name__ == "__main__":
    sys.stdout.write({"markdown": markdown, "env": env}[sys.argv[1]]())
