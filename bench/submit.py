"""Submit throughput: `POST /v1/jobs/sentiment` with one short text under gunicorn, jobs accepted (202,
publisher confirms on) per second, next to a trivial Flask endpoint on the same gunicorn settings.

    .venv/bin/python -m bench.submit [--size small|full] [--repeat 3] [--seconds 6] [--tool auto|wrk|python]

No worker consumes the queue (the figure is the API's, not the workers'): the accepted jobs pile up in
the queue, whose depth is checked against the 202s counted by the load generator, then purged.
Load comes from wrk when installed (else a Python generator), 16 kept-alive connections, on
127.0.0.1. A third server marks the floor: `bench/lean_app.py`, the least a confirmed submit can do
(validate, one Redis write, one raw confirmed publish). The servers take turns in each repetition.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from typing import Any

import psutil

from bench.figures import arguments, repeats, row, write_result
from bench.load import Load, post_load
from bench.platform import Stack, platform, start_gunicorn

BODY = json.dumps({"text": "The staff were friendly and the food was excellent."}).encode()
PATH = "/v1/jobs/sentiment"


def queue_depth_and_purge(broker_url: str, queue: str) -> int:
    """Exactly how many jobs the broker holds (a passive declare), then empty the queue."""
    from kombu import Connection

    with Connection(broker_url) as conn:
        channel = conn.default_channel
        _, depth, _ = channel.queue_declare(queue=queue, passive=True)
        channel.queue_purge(queue)
    return int(depth)


def accepted_per_s(stack: Stack, url: str, queue: str, args: Any, seconds: float) -> tuple[float, Load, int]:
    """Load one server; its accepted jobs per second, the load, and the jobs queued after the load stopped."""
    from launcher.sandbox import delete_keys

    load = post_load(url + PATH, BODY, "application/json", seconds, args.connections, args.tool)
    depth = queue_depth_and_purge(stack.env["BROKER_URL"], queue)
    ok = load.answered - load.failed
    # every 202 is a job in the queue; requests still in flight when the load stops add a few more
    assert depth >= ok, f"{ok} submits answered 202 but the queue {queue} holds only {depth} jobs"
    delete_keys(f"{stack.prefix}job:")
    return load.ok_per_s, load, depth - ok


class CpuMeter:
    """CPU seconds spent during one load by the server (gunicorn and its workers), RabbitMQ and Redis:
    per request, it says where a submit's cost goes, and it is steadier than a rate on a shared machine."""

    def __init__(self, server_pid: int) -> None:
        server = psutil.Process(server_pid)
        self.groups = {"server": [server, *server.children(recursive=True)],
                       "rabbitmq": [p for p in psutil.process_iter(["name"]) if p.info["name"] == "beam.smp"],
                       "redis": [p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"]}
        self.before = self._now()

    def _now(self) -> dict[str, float]:
        totals = {}
        for name, procs in self.groups.items():
            totals[name] = 0.0
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    totals[name] += sum(proc.cpu_times()[:2])
        return totals

    def per_request_us(self, requests: int) -> dict[str, float]:
        after = self._now()
        return {name: 1e6 * (after[name] - self.before[name]) / max(1, requests) for name in after}


def median_cpu(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]} if runs else {}


def median_cpu_table(cpu: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {name: median_cpu(runs) for name, runs in cpu.items()}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--seconds", type=float, default=None, help="load per measure (default 6; small: 1)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.size == "small" else 6.0)
    rates: dict[str, list[float]] = {"trivial": [], "platform": [], "lean": []}
    cpu: dict[str, list[dict[str, float]]] = {"trivial": [], "platform": [], "lean": []}
    loads: list[Load] = []
    late: list[int] = []
    with platform({}) as stack:
        run = stack.prefix[6:14]
        trivial, trivial_url = start_gunicorn(stack.env, "bench.trivial_app:app", f"bench-trivial-{run}")
        lean, lean_url = start_gunicorn(stack.env, "bench.lean_app:app", f"bench-lean-{run}")
        try:
            servers = {"trivial": (trivial_url, ""), "platform": (str(stack.url), "sentiment"),
                       "lean": (lean_url, "lean")}
            for url, _ in servers.values():  # warm up every server and its connections
                post_load(url + PATH, BODY, "application/json", 1.0, args.connections, args.tool)
            queue_depth_and_purge(stack.env["BROKER_URL"], "sentiment")
            queue_depth_and_purge(stack.env["BROKER_URL"], "lean")
            pids = {"trivial": trivial.pid, "platform": stack.procs["api"].pid, "lean": lean.pid}
            for _ in range(repeats(args)):
                meter = CpuMeter(pids["trivial"])
                load = post_load(trivial_url + PATH, BODY, "application/json", seconds, args.connections, args.tool)
                rates["trivial"].append(load.ok_per_s)
                cpu["trivial"].append(meter.per_request_us(load.answered))
                for name in ("platform", "lean"):
                    time.sleep(0.5)
                    meter = CpuMeter(pids[name])
                    rate, load, after = accepted_per_s(stack, *servers[name], args, seconds)
                    cpu[name].append(meter.per_request_us(load.answered))
                    rates[name].append(rate)
                    loads.append(load)
                    late.append(after)
        finally:
            trivial.stop()
            lean.stop()
    rows = [row("submit throughput", "jobs/s", rates["platform"], rates["trivial"], target=(">=", 0.5),
                platform_label="POST /v1/jobs/sentiment (202, confirmed)", baseline_label="trivial Flask endpoint"),
            row("floor: minimal confirmed submit", "jobs/s", rates["lean"], rates["trivial"],
                platform_label="bench/lean_app.py (validate, 1 HSET, raw confirmed publish)",
                baseline_label="trivial Flask endpoint")]
    write_result(args, "submit", "Submit throughput", rows, method=__doc__.split("\n\n")[0].replace("\n", " "),
                 extra={"tool": loads[0].tool, "seconds": seconds, "connections": args.connections,
                        "failed": sum(x.failed for x in loads), "queued_after_stop": late,
                        "cpu_us_per_request": median_cpu_table(cpu)})
    for name, figures in median_cpu_table(cpu).items():
        print(f"  CPU per request, {name:<9} " + "   ".join(f"{k} {v:,.0f} µs" for k, v in figures.items()))


if __name__ == "__main__":
    main()
