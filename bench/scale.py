"""Scale: N jobs queued at once (10,000 by default): the memory of the API, the workers, RabbitMQ and
Redis while the platform is idle, with the N jobs waiting in their queue, while a pool drains them
(the peak), and once they are all done.

    .venv/bin/python -m bench.scale [--size small|full] [--jobs 10000]

The jobs are single-text sentiment jobs submitted over HTTP while the pool (2 processes, VADER) has
its consumer paused (`cancel_consumer`), so they all wait in RabbitMQ; then the consumer is added back.
API and workers: RSS of each process tree (gunicorn master and workers; Celery parent and children).
RabbitMQ: the queue's own memory and message bytes (management API), and the node's `mem_used`.
Redis: the bytes of this run's own keys (`MEMORY USAGE`), and the server's `used_memory`. RabbitMQ
and Redis are shared with whatever else runs on the machine, so their node-wide figures move on their
own; the queue's and the keys' figures are this run's.
"""

from __future__ import annotations

import json
import time

import psutil
import requests

from bench.figures import arguments, write_result
from bench.jobs import submit_many
from bench.platform import Stack, consuming, platform, queue_info, queue_now, until
from launcher import sandbox

BODY = json.dumps({"text": "The staff were friendly and the food was excellent."}).encode()
PHASES = ("idle", "queued", "draining (peak)", "drained")
MB = 1024 * 1024


def rss_tree(pid: int) -> int:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def our_redis_bytes(prefix: str) -> tuple[int, int]:
    """(bytes, keys) of this run's keys."""
    from common.store import get_redis

    r, total, keys = get_redis(), 0, 0
    batch: list[bytes] = []
    for key in [*r.scan_iter(match=f"{prefix}*", count=1000), None]:
        if key is not None:
            batch.append(key)
        if batch and (key is None or len(batch) == 500):
            with r.pipeline(transaction=False) as pipe:
                for k in batch:
                    pipe.memory_usage(k, samples=0)
                total += sum(v or 0 for v in pipe.execute())
            keys, batch = keys + len(batch), []
    return total, keys


def snapshot(stack: Stack, keys: bool = True) -> dict[str, float]:
    """Every figure now (`keys=False`: without counting this run's Redis keys, which only grow)."""
    from common.store import get_redis

    node = requests.get(f"{sandbox.MANAGEMENT}nodes", auth=sandbox.AUTH, timeout=10).json()[0]
    queue = queue_info(stack.vhost, "sentiment")
    redis_bytes, redis_keys = our_redis_bytes(stack.prefix) if keys else (0, 0)
    return {
        "API (gunicorn, RSS)": rss_tree(stack.procs["api"].pid) / MB,
        "workers (Celery pool, RSS)": rss_tree(stack.procs["sentiment"].pid) / MB,
        "RabbitMQ: the queue (memory + message bytes)":
            ((queue.get("memory") or 0) + (queue.get("message_bytes") or 0)) / MB,
        "RabbitMQ: node mem_used (shared)": node["mem_used"] / MB,
        "Redis: this run's keys": redis_bytes / MB,
        "Redis: used_memory (shared)": int(get_redis().info("memory")["used_memory"]) / MB,
        "messages in the queue": float(queue.get("messages") or 0),
        "keys in Redis": float(redis_keys),
    }


def drain(stack: Stack, ids: list[str]) -> dict[str, float]:
    """Let the pool run every job; the peak of each figure while it does."""
    from common import records
    from common.store import get_redis

    peak: dict[str, float] = {}
    consuming(stack, "sentiment", True)
    r, pending, deadline = get_redis(), list(ids), time.monotonic() + 120 + len(ids) / 20
    while pending:
        for name, value in snapshot(stack, keys=False).items():
            peak[name] = max(peak.get(name, 0.0), value)
        time.sleep(0.5)  # sampling the peak: the pool drains meanwhile
        with r.pipeline(transaction=False) as pipe:
            for job_id in pending:
                pipe.hget(records.job_key(job_id), "finished_at")
            pending = [job_id for job_id, done in zip(pending, pipe.execute(), strict=True) if done is None]
        if pending and time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} of {len(ids)} jobs not finished in time")
    final = snapshot(stack)  # this run's keys only grow: their peak is now
    return {**peak, "Redis: this run's keys": final["Redis: this run's keys"], "keys in Redis": final["keys in Redis"]}


def main() -> None:
    parser = arguments(__doc__, repeat=1)
    parser.add_argument("--jobs", type=int, default=None, help="jobs queued (default 10000; small: 100)")
    args = parser.parse_args()
    n = args.jobs or (100 if args.size == "small" else 10_000)
    phases: dict[str, dict[str, float]] = {}
    with platform({"sentiment": 2}, SENTIMENT_MODEL="vader") as stack:
        time.sleep(2)  # let the pool's children settle after loading
        phases["idle"] = snapshot(stack)
        consuming(stack, "sentiment", False)
        started = time.perf_counter()
        ids = submit_many(str(stack.url), n, "sentiment", BODY, "application/json")
        submit_s = time.perf_counter() - started
        assert queue_now(stack, "sentiment")[0] == n, queue_now(stack, "sentiment")
        if args.size == "full":  # the management API's figures lag up to 5 s behind the queue
            until(lambda: snapshot(stack, keys=False)["messages in the queue"] >= n, 30, "the management API "
                  "to count the jobs", interval_s=1.0)
        phases["queued"] = snapshot(stack)
        phases["draining (peak)"] = drain(stack, ids)
        time.sleep(6 if args.size == "full" else 0)  # RabbitMQ's management figures lag up to 5 s
        phases["drained"] = snapshot(stack)
    names = list(phases["idle"])
    table = {"columns": list(PHASES), "rows": [[name, *(phases[p][name] for p in PHASES)] for name in names]}
    per_job = {"RabbitMQ bytes per queued job": (table_value(phases, "queued", "idle", names[2]) * MB) / n,
               "Redis bytes per queued job": (table_value(phases, "queued", "idle", names[4]) * MB) / n,
               "Redis bytes per finished job": (table_value(phases, "drained", "idle", names[4]) * MB) / n}
    write_result(args, "scale", f"Scale: {n:,} queued jobs", [], method=__doc__.split("\n\n")[0].replace("\n", " "),
                 extra={"jobs": n, "table": table, "per_job": per_job, "submit_s": submit_s})
    for row_ in table["rows"]:
        print(f"  {row_[0]:<46}" + "".join(f"{v:>14,.1f}" for v in row_[1:]))
    for name, value in per_job.items():
        print(f"  {name:<46}{value:>14,.0f}")


def table_value(phases: dict[str, dict[str, float]], phase: str, base: str, name: str) -> float:
    return phases[phase][name] - phases[base][name]


if __name__ == "__main__":
    main()
