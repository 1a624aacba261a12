"""Job events: how long after a job's end its `end` event reaches a client reading `GET /v1/jobs/<id>/events`,
next to the same for a long-poll (`GET ?wait=30`) of another job of the same run.

    .venv/bin/python -m bench.job_events [--jobs 50]

Detection jobs on the tests' weights (about 150 ms each here), one at a time: the stream (or the long-poll) is
opened right after the submit, so it waits while the job runs. The end is the record's `finished_at` (written
by the worker, in milliseconds), the arrival the client's clock when the event's blank line (or the long-poll's
answer) arrives: same machine, same clock. Only jobs whose stream saw the job before its end are counted (the
others found it ended and measure the connect, not the push).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time

import requests

from bench.platform import platform
from tests.support import images, models


def ended_at(record: dict[str, str]) -> float:
    return dt.datetime.fromisoformat(record["finished_at"].replace("Z", "+00:00")).timestamp()


def stream_delay_ms(http: requests.Session, url: str, job_id: str) -> float | None:
    """Milliseconds from the job's end to its `end` event; None if the stream found it ended already."""
    before_end = False
    with http.get(f"{url}/v1/jobs/{job_id}/events", stream=True, timeout=60) as response:
        name = ""
        for line in response.iter_lines(chunk_size=None):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: ") and name == "end":
                arrived, record = time.time(), json.loads(line[6:])
                return (arrived - ended_at(record)) * 1000 if before_end else None
            elif line.startswith(b"data: "):
                before_end = True
    raise AssertionError(f"the stream of {job_id} closed without its end")


def poll_delay_ms(http: requests.Session, url: str, job_id: str) -> float:
    record = http.get(f"{url}/v1/jobs/{job_id}", params={"wait": 30}, timeout=60).json()
    assert record["status"] == "SUCCESS", record
    return (time.time() - ended_at(record)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    image = images.scene(640, 480)
    streamed: list[float] = []
    polled: list[float] = []
    with platform({"detection": 1}, DETECTION_MODEL=str(models.detection_weights())) as stack, \
            requests.Session() as http:
        url = stack.url
        assert url is not None
        for _ in range(args.jobs):
            for delays, follow in ((streamed, stream_delay_ms), (polled, poll_delay_ms)):
                job_id = http.post(f"{url}/v1/jobs/detection", files={"image": ("s.png", image)}).json()["job_id"]
                delay = follow(http, url, job_id)
                if delay is not None:
                    delays.append(delay)
    for what, delays in (("event stream", streamed), ("long-poll", polled)):
        cuts = statistics.quantiles(delays, n=20)
        print(f"{what}: {len(delays)} jobs, end → arrival p50 {statistics.median(delays):.1f} ms, "
              f"p95 {cuts[18]:.1f} ms, max {max(delays):.1f} ms")


if __name__ == "__main__":
    main()
