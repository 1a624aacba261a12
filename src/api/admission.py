"""Admission control in front of the store: new jobs stop before Redis is full, so running jobs can still
write their ends (a result, a failure) into the headroom left.

The limit is `STORE_HEADROOM_PERCENT` of Redis's `maxmemory`, or `STORE_BUDGET_BYTES` when Redis has none.
Redis's memory is read with `INFO memory` at most once a second per process; the submits this process
admitted since are added to it, so a burst cannot pass the limit between two readings.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from common.errors import Unavailable
from common.settings import Settings

log = logging.getLogger(__name__)
READ_EVERY_S = 1.0
RECORD_BYTES = 1024  # a record, its idempotency key and counters, beside the upload itself
MB = 1024 * 1024


class StoreGauge:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._used = 0
        self._limit = 0
        self._maxmemory = 0

    def admit(self, r: redis.Redis, upload_bytes: int) -> None:
        """Count a submit that stores `upload_bytes`, or raise 503 `store_full` if it would pass the limit."""
        size = upload_bytes + RECORD_BYTES
        with self._lock:
            if time.monotonic() - self._read_at >= READ_EVERY_S:
                self._read(r)
            if self._limit and self._used + size > self._limit:
                raise self._full()
            self._used += size

    def _read(self, r: redis.Redis) -> None:
        try:
            memory: dict[str, Any] = r.info("memory")  # type: ignore[assignment]
        except redis.ResponseError as exc:  # e.g. an ACL without INFO (@dangerous): admit, and say why once
            if self._read_at == float("-inf"):
                log.warning("Redis refuses INFO (%s): submits are not checked against its memory", exc)
            memory = {"used_memory": 0}
        self._used, self._maxmemory = int(memory["used_memory"]), int(memory.get("maxmemory", 0))
        if self._maxmemory:
            self._limit = self._maxmemory * self.settings.store_headroom_percent // 100
        else:
            self._limit = self.settings.store_budget_bytes
        self._read_at = time.monotonic()

    def _full(self) -> Unavailable:
        if self._maxmemory:
            limit = (f"{self.settings.store_headroom_percent} % of its {self._maxmemory / MB:.0f} MB "
                     "(STORE_HEADROOM_PERCENT)")
        else:
            limit = f"its budget of {self._limit / MB:.0f} MB (STORE_BUDGET_BYTES)"
        return Unavailable(f"The job store is full: Redis uses {self._used / MB:.1f} MB, and new jobs stop at {limit}, "
                           "so that running jobs can still store their ends. Retry later.",
                           code="store_full", retry_after_s=30)


__all__ = ["StoreGauge"]
