"""Submit throughput: `POST /v1/jobs/sentiment` with one short text under gunicorn, jobs accepted (202,
publisher confirms on) per second, next to a trivial Flask endpoint on the same gunicorn settings.

    .venv/bin/python bench/submit.py [--size small|full] [--repeat 3] [--seconds 10] [--tool auto|wrk|python]

No worker consumes the queue (the figure is the API's, not the workers'): the accepted jobs pile up in
the queue, whose depth is checked against the 202s counted by the load generator, then purged.
Load comes from wrk when installed (else a Python generator), 16 kept-alive connections, on
127.0.0.1. The two servers take turns, baseline first, in each repetition.
"""

from __future__ import annotations

import json
import time

from harness import arguments, platform, repeats, row, start_gunicorn, write_result
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


def clear_records(prefix: str) -> None:
    from support.services import delete_keys

    delete_keys(f"{prefix}job:")


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--seconds", type=float, default=None, help="load per measure (default 10; small: 1)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.size == "small" else 10.0)
    ours: list[float] = []
    base: list[float] = []
    loads: list[Load] = []
    with platform({}) as stack:
        trivial, trivial_url = start_gunicorn(stack.env, "trivial_app:app", f"bench-trivial-{stack.prefix[6:14]}")
        try:
            def measure(url: str) -> Load:
                return post_load(url + PATH, BODY, "application/json", seconds, args.connections, args.tool)

            measure(trivial_url), measure(str(stack.url))  # warm up both servers and their connections
            queue_depth_and_purge(stack.env["BROKER_URL"], "sentiment")
            for _ in range(repeats(args)):
                base.append(measure(trivial_url).ok_per_s)
                time.sleep(0.5)
                load = measure(str(stack.url))
                depth = queue_depth_and_purge(stack.env["BROKER_URL"], "sentiment")
                ok = load.answered - load.failed
                # requests still in flight when the load stops may be accepted after it counted
                assert ok <= depth <= ok + args.connections, f"{ok} submits answered 202; the queue holds {depth}"
                ours.append(load.ok_per_s)
                loads.append(load)
                clear_records(stack.prefix)
        finally:
            trivial.stop()
    rows = [row("submit throughput", "jobs/s", ours, base, target=(">=", 0.5),
                platform_label="POST /v1/jobs/sentiment (202, confirmed)",
                baseline_label="trivial Flask endpoint")]
    write_result(args, "submit", "Submit throughput", rows, method=__doc__.split("\n\n")[0].replace("\n", " "),
                 extra={"tool": loads[0].tool, "seconds": seconds, "connections": args.connections,
                        "failed": sum(x.failed for x in loads)})


if __name__ == "__main__":
    main()
