"""What Celery task events cost: the same small jobs run with events (`-E`) and without, in one run.

    PYTHONPATH=src .venv/bin/python -m bench.events [--jobs 600] [--rounds 2] [--concurrency 2] [--no-flower]

Each round queues N `audio_length` jobs of a 0.1 s WAV through the API's own submit path (record,
upload in Redis, confirmed publish), then starts one worker pool on them, with Flower running as
`make up` runs it (`--enable_events=False` in the no-events case; `--no-flower` leaves it out, which
measures the workers' own cost of sending events). The rate is counted from the
jobs' own `finished_at` stamps once the pool is warm (the first 10 % are left out), so worker start-up
and publishing do not count. Modes alternate (events, none, events, none, ...) so that a noisy
neighbour hurts both alike. Runs against the configured RabbitMQ (a vhost of its own, deleted after)
and Redis (a key prefix of its own, deleted after).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import statistics
import sys
import time
import uuid
import wave
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests

from launcher.platform import start_flower, start_worker

ROOT = Path(__file__).resolve().parents[1]


def tiny_wav(seconds: float = 0.1, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


class Vhost:
    def __init__(self, management_url: str, user: str) -> None:
        parts = urlsplit(management_url)
        self.base = parts._replace(netloc=f"{parts.hostname}:{parts.port or 15672}").geturl().rstrip("/")
        self.auth = (parts.username or "guest", parts.password or "guest")
        self.name = f"bench-events-{uuid.uuid4().hex[:8]}"
        requests.put(f"{self.base}/vhosts/{self.name}", auth=self.auth, timeout=10).raise_for_status()
        requests.put(f"{self.base}/permissions/{self.name}/{quote(user)}", auth=self.auth, timeout=10,
                     json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()

    def delete(self) -> None:
        requests.delete(f"{self.base}/vhosts/{self.name}", auth=self.auth, timeout=30)


def queue_jobs(n: int) -> list[str]:
    from api.inputs import JobInput
    from api.submit import submit
    from common.broker import make_celery
    from common.catalog import BY_NAME

    celery, blob = make_celery(), tiny_wav()
    payload = {"upload": {"kind": "wav", "filename": "tiny.wav", "bytes": len(blob)}}
    ids = [submit(celery, BY_NAME["audio_length"], JobInput(dict(payload), blob))[0]["job_id"] for _ in range(n)]
    celery.close()
    return ids


def finished_at(ids: list[str], deadline_s: float) -> list[float]:
    """Wait until every job is final; their `finished_at` stamps (Unix seconds), sorted."""
    from common import records
    from common.store import get_redis

    r, deadline = get_redis(), time.monotonic() + deadline_s
    while True:
        with r.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(records.job_key(job_id), "finished_at")
            stamps = pipe.execute()
        if all(stamps):
            return sorted(dt.datetime.fromisoformat(s.decode().replace("Z", "+00:00")).timestamp() for s in stamps)
        if time.monotonic() > deadline:
            raise SystemExit(f"only {sum(map(bool, stamps))} of {len(ids)} jobs finished within {deadline_s:.0f} s")
        time.sleep(0.2)  # polling the jobs' records: this is the measurement loop, not test synchronisation


def one_round(events: bool, args: argparse.Namespace, env: dict[str, str]) -> float:
    ids = queue_jobs(args.jobs)
    mode = "events" if events else "none"
    env = {**env, "WORKER_EVENTS": "1" if events else "0"}
    flower = None if args.no_flower else start_flower(
        {**env, "FLOWER_HOST": "127.0.0.1", "FLOWER_PORT": str(args.flower_port), "FLOWER_USER": "bench",
         "FLOWER_PASSWORD": "bench"}, f"bench-flower-{mode}")
    worker = start_worker(env, "audio_length", f"bench-{mode}", args.concurrency, events=events)
    try:
        stamps = finished_at(ids, deadline_s=60 + args.jobs / 20)
    finally:
        worker.stop()
        if flower is not None:
            flower.stop()
    warm = max(10, len(stamps) // 10)
    return (len(stamps) - 1 - warm) / (stamps[-1] - stamps[warm])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--flower-port", type=int, default=5599)
    parser.add_argument("--no-flower", action="store_true", help="no Flower: the workers' own cost only")
    args = parser.parse_args()

    from common.settings import get_settings

    settings = get_settings()
    vhost = Vhost(settings.rabbitmq_management_url, urlsplit(settings.broker_url).username or "guest")
    prefix = f"{vhost.name}:"
    env = {**os.environ, "BROKER_URL": urlsplit(settings.broker_url)._replace(path=f"/{vhost.name}").geturl(),
           "KEY_PREFIX": prefix, "PYTHONPATH": str(ROOT / "src"), "LOG_LEVEL": "WARNING"}
    os.environ.update({k: env[k] for k in ("BROKER_URL", "KEY_PREFIX")})
    get_settings.cache_clear()
    rates: dict[bool, list[float]] = {True: [], False: []}
    try:
        for i in range(args.rounds):
            for events in (True, False):
                rates[events].append(one_round(events, args, env))
                print(f"round {i + 1}  {'with events   ' if events else 'without events'}  "
                      f"{rates[events][-1]:7.1f} jobs/s", flush=True)
    finally:
        _delete_keys(prefix)
        vhost.delete()
    with_e, without = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"\n{args.jobs} audio_length jobs per round, -c {args.concurrency}, {os.cpu_count()} cores; medians:")
    consumer = "nobody consuming them" if args.no_flower else "Flower consuming them"
    print(f"  with events (-E, {consumer})   {with_e:7.1f} jobs/s")
    print(f"  without events                              {without:7.1f} jobs/s")
    cost = 100 * (1 - with_e / without)
    print(f"  without / with = {without / with_e:.2f}  (events cost {cost:.0f} % of throughput)")
    return 0


def _delete_keys(prefix: str) -> None:
    from common.store import get_redis

    r = get_redis()
    for key in r.scan_iter(match=f"{prefix}*", count=1000):
        r.delete(key)


if __name__ == "__main__":
    sys.exit(main())
