"""Finished-job counts and run-time histograms, written by the workers and read by the API's `/metrics`.

Workers run in many processes (Celery's prefork children) on many machines, so they serve no metrics
themselves: each finished job adds to one Redis hash, `{prefix}stats:jobs` (HINCRBY of its run-time
bucket, HINCRBYFLOAT of the sum, EXPIRE), in the same script that stores its end (`records.finish`), so
a job is counted once, when its end is stored, at no extra round trip. The hash holds at most
types × states × (buckets + 1) fields and expires `STATS_TTL_S` (48 h, like every key the platform
writes) after the last finished job, so it is bounded both ways. After 48 h without a finished job the
counters start again from zero, which Prometheus reads as a counter reset (`rate` and `increase` allow
for it). The API turns it into Prometheus counters and histograms (`api.metrics`).
"""

from __future__ import annotations

import bisect
import logging
import math
from dataclasses import dataclass, field

import redis

from common.settings import HOURS_48, get_settings

log = logging.getLogger(__name__)

# Upper bounds (seconds) of the run-time buckets; the last bucket is +Inf.
BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
STATS_TTL_S = HOURS_48


def stats_key() -> str:
    return f"{get_settings().key_prefix}stats:jobs"


def fields(job_type: str, state: str, seconds: float) -> tuple[str, str, float]:
    """The hash fields one finished job adds to: its run-time bucket (+1) and the sum (+seconds)."""
    bucket = bisect.bisect_left(BUCKETS, seconds)
    return f"{job_type}|{state}|{bucket}", f"{job_type}|{state}|sum", round(seconds, 6)


def record(r: redis.Redis, job_type: str, state: str, seconds: float) -> None:
    """Count one finished job; a Redis failure is logged and never fails the job."""
    key, (bucket_field, sum_field, rounded) = stats_key(), fields(job_type, state, seconds)
    try:
        with r.pipeline(transaction=False) as pipe:
            pipe.hincrby(key, bucket_field, 1)
            pipe.hincrbyfloat(key, sum_field, rounded)
            pipe.expire(key, STATS_TTL_S)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("job statistics not recorded: %s", exc)


@dataclass
class RunTimes:
    """One (type, state) series: per-bucket counts (not cumulative; the last is +Inf) and the sum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total_s: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (`le`, cumulative count), ending with `+Inf`."""
        bounds = [*(_le(b) for b in BUCKETS), "+Inf"]
        running, out = 0, []
        for bound, n in zip(bounds, self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


def read(r: redis.Redis) -> dict[tuple[str, str], RunTimes]:
    """Every (type, state) series recorded so far (one HGETALL)."""
    series: dict[tuple[str, str], RunTimes] = {}
    raw: dict[bytes, bytes] = r.hgetall(stats_key())  # type: ignore[assignment]
    for raw_name, raw_value in raw.items():
        job_type, state, slot = raw_name.decode().split("|")
        times = series.setdefault((job_type, state), RunTimes())
        if slot == "sum":
            times.total_s = float(raw_value)
        elif slot.isdigit() and int(slot) < len(times.counts):
            times.counts[int(slot)] = int(raw_value)
    return series


def _le(bound: float) -> str:
    return str(float(bound)) if not math.isinf(bound) else "+Inf"


__all__ = ["BUCKETS", "STATS_TTL_S", "RunTimes", "read", "record", "stats_key"]
