"""Submit throughput: `POST /v1/jobs/sentiment` with one short text under gunicorn, jobs accepted (202,
publisher confirms on) per second, next to a trivial Flask endpoint on the same gunicorn settings.

    .venv/bin/python bench/submit.py [--size small|full] [--repeat 3] [--seconds 6] [--tool auto|wrk|python]

No worker consumes the queue (the figure is the API's, not the workers'): the accepted jobs pile up in
the queue, whose depth is checked against the 202s counted by the load generator, then purged.
Load comes from wrk when installed (else a Python generator), 16 kept-alive connections, on
127.0.0.1. A third server marks the floor: `bench/lean_app.py`, the least a confirmed submit can do
(validate, one Redis write, one raw confirmed publish). The servers take turns in each repetition.
"""

from __future__ import annotations

import json
import time
from typing import Any

from harness import Stack, arguments, platform, repeats, row, start_gunicorn, write_result
from load import Load, post_load

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
    from support.services import delete_keys

    load = post_load(url + PATH, BODY, "application/json", seconds, args.connections, args.tool)
    depth = queue_depth_and_purge(stack.env["BROKER_URL"], queue)
    ok = load.answered - load.failed
    # every 202 is a job in the queue; requests still in flight when the load stops add a few more
    assert depth >= ok, f"{ok} submits answered 202 but the queue {queue} holds only {depth} jobs"
    delete_keys(f"{stack.prefix}job:")
    return load.ok_per_s, load, depth - ok


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--seconds", type=float, default=None, help="load per measure (default 6; small: 1)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.size == "small" else 6.0)
    rates: dict[str, list[float]] = {"trivial": [], "platform": [], "lean": []}
    loads: list[Load] = []
    late: list[int] = []
    with platform({}) as stack:
        run = stack.prefix[6:14]
        trivial, trivial_url = start_gunicorn(stack.env, "trivial_app:app", f"bench-trivial-{run}")
        lean, lean_url = start_gunicorn(stack.env, "lean_app:app", f"bench-lean-{run}")
        try:
            servers = {"trivial": (trivial_url, ""), "platform": (str(stack.url), "sentiment"),
                       "lean": (lean_url, "lean")}
            for url, _ in servers.values():  # warm up every server and its connections
                post_load(url + PATH, BODY, "application/json", 1.0, args.connections, args.tool)
            queue_depth_and_purge(stack.env["BROKER_URL"], "sentiment")
            queue_depth_and_purge(stack.env["BROKER_URL"], "lean")
            for _ in range(repeats(args)):
                rates["trivial"].append(post_load(trivial_url + PATH, BODY, "application/json", seconds,
                                                  args.connections, args.tool).ok_per_s)
                for name in ("platform", "lean"):
                    time.sleep(0.5)
                    rate, load, after = accepted_per_s(stack, *servers[name], args, seconds)
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
                        "failed": sum(x.failed for x in loads), "queued_after_stop": late})


if __name__ == "__main__":
    main()
