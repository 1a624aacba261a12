"""What `up` runs, as argv and environment: the API, one Celery worker pool per catalog entry, the completion
webhooks' pool, Flower and the demo's pages.

The worker pools come from `common.catalog.CATALOG`: a new job type needs no change here. A pool's
concurrency is the setting `<type>_concurrency` (1 when there is none).
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass

from common.broker import WEBHOOKS_QUEUE
from common.catalog import CATALOG, JobType, longest_hard_limit_s
from common.settings import PROJECT_ROOT, Settings, get_settings
from launcher.demo_pages import HOST as DEMO_PAGES_HOST

OFFLINE = {"HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0"}


def model_env(settings: Settings) -> dict[str, str]:
    """Model libraries stay offline unless ALLOW_DOWNLOADS; ultralytics never pip-installs at run time."""
    return {"YOLO_AUTOINSTALL": "0"} if settings.allow_downloads else OFFLINE


API_APP = "api.wsgi:app"
CELERY_APP = "workers.celery_app"


@dataclass(frozen=True)
class Spec:
    name: str
    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class FlowerLogin:
    user: str
    password: str
    generated: bool


def flower_login(settings: Settings) -> FlowerLogin:
    """Flower always asks for a password: the configured one, or a fresh one for this run."""
    user = settings.flower_user or "admin"
    if settings.flower_password:
        return FlowerLogin(user, settings.flower_password, generated=False)
    return FlowerLogin(user, secrets.token_urlsafe(18), generated=True)


def plan(settings: Settings, login: FlowerLogin) -> list[Spec]:
    env = base_env()
    if demo_pages_allowed(settings):
        env["FETCH_ALLOWLIST"] = demo_pages_entry(settings)
    pages = [demo_pages_spec(settings, env)] if settings.demo_pages_port else []
    return [api_spec(env), *(worker_spec(settings, t, env) for t in CATALOG), webhooks_spec(settings, env),
            flower_spec(settings, login, env), *pages]


def demo_pages_allowed(settings: Settings) -> bool:
    """Jobs may fetch the demo's pages, and nothing else on this machine, unless the operator set
    FETCH_ALLOWLIST (even empty), which always wins."""
    return "FETCH_ALLOWLIST" not in os.environ and settings.demo_pages_port != 0


def demo_pages_entry(settings: Settings) -> str:
    return f"{DEMO_PAGES_HOST}:{settings.demo_pages_port}"


def fetch_notice(settings: Settings) -> str:
    """One line: what jobs may fetch on this machine or its networks."""
    if demo_pages_allowed(settings):
        return (f"jobs may fetch public URLs, and on this machine only the demo pages at "
                f"http://{demo_pages_entry(settings)}/ (FETCH_ALLOWLIST={demo_pages_entry(settings)})")
    allowlist = os.environ.get("FETCH_ALLOWLIST", "")
    if allowlist.strip():
        return f"jobs may fetch public URLs and, although not public, what FETCH_ALLOWLIST names: {allowlist}"
    return "jobs may fetch public URLs only (nothing on this machine or a private network)"


def base_env() -> dict[str, str]:
    """The operator's environment (each child reads its settings from it), plus `src` on the path and
    ultralytics' settings under RUN_DIR (unless YOLO_CONFIG_DIR is set): ultralytics keeps the weights folder
    of the first checkout that ran it in a settings file in the user's home, and names it in its messages."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT / "src"), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("YOLO_CONFIG_DIR", str(get_settings().run_dir))
    return env


def demo_pages_spec(settings: Settings, env: dict[str, str]) -> Spec:
    return Spec("pages", [sys.executable, "-m", "launcher.demo_pages", str(settings.demo_pages_port)], env)


def api_argv(app: str = API_APP) -> list[str]:
    """gunicorn on the platform's own settings serving `app` (another app: a benchmark's baseline)."""
    return [sys.executable, "-m", "gunicorn", "-c", "src/api/gunicorn_conf.py", app]


def api_spec(env: dict[str, str]) -> Spec:
    return Spec("api", api_argv(), env)


def worker_argv(queue: str, node: str, concurrency: int, loglevel: str, events: bool = False,
                app: str = CELERY_APP) -> list[str]:
    """One Celery worker pool consuming `queue` (a comma-separated list is several queues)."""
    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue, "-n", f"{node}@%h",
            "-c", str(concurrency), "--loglevel", loglevel]
    return [*argv, "-E"] if events else argv


def worker_spec(settings: Settings, job_type: JobType, env: dict[str, str]) -> Spec:
    concurrency = settings.types[job_type.name].concurrency
    argv = worker_argv(job_type.queue, job_type.name, concurrency, settings.log_level, settings.worker_events)
    return Spec(job_type.name, argv, {**env, **model_env(settings)})


def webhooks_spec(settings: Settings, env: dict[str, str]) -> Spec:
    """The completion webhooks' own pool (`workers.webhook_delivery`), `WEBHOOK_CONCURRENCY` processes."""
    argv = worker_argv(WEBHOOKS_QUEUE, "webhooks", settings.webhook_concurrency, settings.log_level,
                       settings.worker_events)
    return Spec("webhooks", argv, {**env, **OFFLINE})


def flower_spec(settings: Settings, login: FlowerLogin, env: dict[str, str]) -> Spec:
    """Flower with basic auth always (so it never listens unprotected, whatever its address), its Broker
    page listing every job queue (`launcher.flower`).

    The password and the management URL travel in Flower's own `FLOWER_*` variables rather than on
    the command line, where `ps` would show them to every local user.
    """
    argv = [sys.executable, "-m", "launcher.flower", f"--address={settings.flower_host}",
            f"--port={settings.flower_port}"]
    if not settings.worker_events:
        argv.append("--enable_events=False")
    secret_env = {"FLOWER_BASIC_AUTH": f"{login.user}:{login.password}",
                  "FLOWER_BROKER_API": settings.rabbitmq_management_url}
    return Spec("flower", argv, {**env, **OFFLINE, **secret_env})


def exec_flower(settings: Settings) -> None:
    """Replace this process with Flower, as `up` runs it (what Compose's `flower` service runs)."""
    login = flower_login(settings)
    spec = flower_spec(settings, login, base_env())
    if login.generated:
        print(f"Flower password for this run: {login.password} (user {login.user}; set FLOWER_PASSWORD to choose one)",
              flush=True)
    os.execvpe(spec.argv[0], spec.argv, spec.env)


def longest_job_s(settings: Settings | None = None) -> int:
    """The longest hard time limit of any job type, `<TYPE>_TIME_LIMIT_S` overrides included."""
    return longest_hard_limit_s(settings or get_settings())
