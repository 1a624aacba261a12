"""gunicorn settings from the platform's settings: `gunicorn -c src/api/gunicorn_conf.py api.wsgi:app`.

Threaded workers, because a long-poll (`GET /v1/jobs/<id>?wait=30`) holds its thread while it waits.
"""

from common.settings import get_settings

_settings = get_settings()

bind = f"{_settings.api_host}:{_settings.api_port}"
workers = _settings.api_workers
worker_class = "gthread"
threads = _settings.api_threads
graceful_timeout = _settings.max_wait_s + 5
timeout = 120
accesslog = "-"
