"""`python -m launcher up`: services, then the API, the worker pools and Flower in the foreground.

Ctrl-C, SIGTERM or SIGHUP stops every child (a second one kills them at once) and exits 0; a child that dies
on its own stops the rest and exits 1.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

import requests
from rich.console import Console

from common.catalog import CATALOG
from common.internal_http import direct_session
from common.settings import PROJECT_ROOT, Settings
from launcher.children import Supervisor
from launcher.commands import FlowerLogin, base_env, fetch_notice, flower_login, longest_job_s, plan
from launcher.first_weights import ensure_default_weights
from launcher.output import Prefixed
from launcher.services import ensure_services

TICK_S = 0.25
SLOW_START_S = 60


def run_up(settings: Settings) -> int:
    started = time.monotonic()
    console = Console(highlight=False, soft_wrap=True)
    ensure_services(settings, console)
    weights = ensure_default_weights(settings, {**base_env(), "YOLO_AUTOINSTALL": "0"})
    if weights:
        console.print(f"{'detection weights':<20} {weights}", markup=False)
    login = flower_login(settings)
    specs = plan(settings, login)
    out = Prefixed([s.name for s in specs], console)
    if login.generated:
        out.say(f"Flower password for this run: {login.password} (set FLOWER_PASSWORD to choose one)", "bold")
    stop, hurry = _catch_signals()
    supervisor = Supervisor(specs, out, PROJECT_ROOT)
    supervisor.start()
    announce = threading.Thread(target=_announce_when_ready, args=(settings, login, out, started, stop),
                                name="announce", daemon=True)
    announce.start()
    code = _watch(supervisor, out, stop)
    grace_s = settings.max_wait_s + longest_job_s(settings)
    out.say(f"stopping: running jobs may take up to {grace_s} s to finish (Ctrl-C again kills them now)")
    supervisor.stop(grace_s, hurry)
    announce.join(timeout=5)
    out.say("stopped" if code == 0 else "stopped after a failure", "bold" if code == 0 else "bold red")
    return code


def _catch_signals() -> tuple[threading.Event, threading.Event]:
    """The first SIGINT, SIGTERM or SIGHUP (terminal closed) sets `stop`; any later one sets `hurry`."""
    stop, hurry = threading.Event(), threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        (hurry if stop.is_set() else stop).set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGHUP, handle)
    return stop, hurry


def _watch(supervisor: Supervisor, out: Prefixed, stop: threading.Event) -> int:
    """Until a signal, or until a child dies (then `stop` is set too, for the announcer)."""
    while not stop.wait(TICK_S):
        dead = supervisor.exited()
        if dead is not None:
            out.say(f"{dead[0]} exited unexpectedly (code {dead[1]}); stopping the others", "bold red")
            stop.set()
            return 1
    return 0


def _announce_when_ready(settings: Settings, login: FlowerLogin, out: Prefixed, started: float,
                         stop: threading.Event) -> None:
    """Say "ready" once `/ready` does: the store, the broker and a worker consuming every job queue. If that
    takes long, say once what is still missing."""
    url = f"http://{_host(settings.api_host)}:{settings.api_port}/ready"
    told = False
    while not stop.is_set():
        readiness = _readiness(url)
        if readiness is not None and readiness.get("status") == "ready":
            _announce(settings, login, out, started)
            return
        if readiness is not None and not told and time.monotonic() - started > SLOW_START_S:
            missing = {k: v for k, v in readiness.get("checks", {}).items() if v != "ok"}
            out.say(f"not ready yet after {SLOW_START_S} s: {missing}")
            told = True
        stop.wait(0.5)


def _readiness(url: str) -> dict[str, Any] | None:
    try:
        with direct_session() as session:  # never through HTTP(S)_PROXY
            body = session.get(url, timeout=10).json()
    except (requests.RequestException, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _announce(settings: Settings, login: FlowerLogin, out: Prefixed, started: float) -> None:
    api = f"http://{_host(settings.api_host)}:{settings.api_port}"
    flower = f"http://{_host(settings.flower_host)}:{settings.flower_port}"
    password = "; its password is printed above" if login.generated else ""
    out.say(f"ready in {time.monotonic() - started:.1f} s", "bold green")
    out.say(f"API docs   {api}/docs", "bold")
    out.say(f"Flower     {flower}  (user {login.user}{password})", "bold")
    out.say(f"job types  {', '.join(t.name for t in CATALOG)}  (POST {api}/v1/jobs/<type>)", "bold")
    out.say(fetch_notice(settings))
    out.say("Ctrl-C stops everything; running jobs finish first.")


def _host(host: str) -> str:
    """Where to reach a server bound to `host` from this machine."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
