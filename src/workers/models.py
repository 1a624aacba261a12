"""Each job type's model, loaded once per worker process, and its status reported for `/ready` and the submit.

If the weights are missing or do not load, the process stays up: its status says why (`common.model_status`),
and each job of the type fails `model_unavailable` with the same sentence. A pool child that loaded (or failed
to load) a model reports it again every `REPORT_EVERY_S` while it lives (`keep_reporting`), and withdraws its
entry when it stops (`withdraw_all`).
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from common import model_status
from common.errors import InputError
from common.records import now
from common.settings import get_settings
from common.store import get_redis
from workers.lifecycle import this_worker

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    model: Any = None
    error: str | None = None
    status: dict[str, Any] = field(default_factory=dict)  # as reported (empty: a type without a model)


_LOADED: dict[str, Loaded] = {}  # this process's, by job type
_reporter: threading.Thread | None = None


def load(job_type: str, loader: Callable[[], Any]) -> Loaded:
    """The type's model in this process, loaded by `loader` on first use and reported."""
    loaded = _LOADED.get(job_type)
    if loaded is None:
        loaded = _LOADED[job_type] = _load(job_type, loader)
        if loaded.status:
            report(job_type, loaded.status)
    return loaded


def get(job_type: str, loader: Callable[[], Any]) -> Any:
    """The model a job's body uses; `model_unavailable` (the job fails at once, no retry) if it did not load."""
    loaded = load(job_type, loader)
    if loaded.error is not None:
        raise InputError(loaded.error, code="model_unavailable")
    return loaded.model


def _load(job_type: str, loader: Callable[[], Any]) -> Loaded:
    started, loaded = time.monotonic(), Loaded()
    try:
        loaded.model = loader()
    except InputError as exc:
        loaded.error = exc.message
        log.error("%s model not loaded: %s", job_type, exc.message)
    except Exception as exc:  # a corrupt file or a library error: the worker stays up and says why
        log.exception("%s model not loaded", job_type)
        loaded.error = f"The {job_type} model could not be loaded: {type(exc).__name__}: {exc}"
    load_s = time.monotonic() - started
    if loaded.error is not None:
        loaded.status = {"status": "unavailable", "message": loaded.error}
    elif loaded.model is not None:
        loaded.status = {"status": "loaded", "model": getattr(loaded.model, "name", str(loaded.model))}
        log.info("%s model %s loaded in %.2f s", job_type, loaded.status["model"], load_s)
    if loaded.status:
        loaded.status.update(load_s=round(load_s, 3), worker=this_worker(), at=now(),
                             rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    return loaded


_unreported: set[str] = set()  # types whose last report failed: logged once per outage, not every period


def report(job_type: str, status: dict[str, Any]) -> None:
    try:
        model_status.report(get_redis(), job_type, this_worker(), status)
    except redis.RedisError as exc:  # the next report tries again
        if job_type not in _unreported:
            log.warning("%s model status not stored: %s", job_type, exc)
        _unreported.add(job_type)
        return
    _unreported.discard(job_type)


def keep_reporting() -> None:
    """Report this process's model statuses every `REPORT_EVERY_S` from a daemon thread, so they stay fresh
    while it lives (started once per pool child, after its models loaded)."""
    global _reporter
    if _reporter is not None and _reporter.is_alive():
        return

    def loop() -> None:
        while True:
            time.sleep(model_status.REPORT_EVERY_S)  # a period, not a wait on another party
            for job_type, loaded in list(_LOADED.items()):
                if loaded.status:
                    report(job_type, loaded.status)

    _reporter = threading.Thread(target=loop, name="model-status", daemon=True)
    _reporter.start()


def withdraw_all() -> None:
    """A process that stops cleanly takes its entries back: its type's status is then that of the others."""
    for job_type, loaded in _LOADED.items():
        if loaded.status:
            try:
                model_status.withdraw(get_redis(), job_type, this_worker())
            except redis.RedisError as exc:  # it goes stale in `FRESH_S`
                log.warning("%s model status not withdrawn: %s", job_type, exc)


def torch_threads(processes: int) -> int:
    """`TORCH_THREADS`, or this machine's cores shared among the pool's `processes`."""
    configured = get_settings().torch_threads
    return configured if configured > 0 else max(1, len(os.sched_getaffinity(0)) // max(1, processes))


__all__ = ["Loaded", "get", "keep_reporting", "load", "report", "torch_threads", "withdraw_all"]
