"""What every benchmark shares: its own platform (vhost, key prefix, API, worker pools), repetitions,
and the JSON result each script writes into `bench/results/` for `bench/report.py`.

Every figure is measured next to its baseline in the same run, and reported as ratios (median of the
repetitions, with min and max), because the machines are shared and absolute numbers are noisy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform as pyplatform
import socket
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "bench")]

from support import services  # noqa: E402
from support.processes import Proc, env_for, free_port, settings_of, spawn, start_worker  # noqa: E402
from support.wait import until  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WORKER_FLAGS = ("--without-mingle", "--without-gossip")
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "src/api/gunicorn_conf.py"]


@dataclass
class Stack:
    """A running platform: `url` of its API (None without one), the environment of its processes."""

    url: str | None
    env: dict[str, str]
    vhost: str
    prefix: str
    procs: dict[str, Proc] = field(default_factory=dict)


def start_gunicorn(env: dict[str, str], app: str, name: str) -> tuple[Proc, str]:
    """`app` under the platform's own gunicorn settings (gthread, API_WORKERS × API_THREADS)."""
    port = free_port()
    proc = spawn(name, [*GUNICORN, app], {**env, "API_PORT": str(port)})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{name} exited:\n{proc.tail()}")
        return requests.get(f"{url}/health", timeout=1).ok

    until(up, 60, f"{name} at {url}")
    return proc, url


@contextmanager
def platform(queues: dict[str, int], api: bool = True, **overrides: str) -> Iterator[Stack]:
    """A platform of its own: `queues` maps a queue to its pool's concurrency (`noop` is the baseline's
    no-op Celery app, on the same settings). This process gets the same BROKER_URL and KEY_PREFIX."""
    services.require_services()
    run = uuid.uuid4().hex[:8]
    vhost, prefix = services.create_vhost(), f"bench-{run}:"
    env = env_for(vhost, prefix, **{"LOG_LEVEL": "INFO", "API_WORKERS": "2", **overrides})
    env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{ROOT / 'bench'}"
    with ExitStack() as stack:
        stack.callback(services.delete_vhost, vhost)
        stack.callback(services.delete_keys, prefix)
        stack.enter_context(settings_of(env))
        result = Stack(None, env, vhost, prefix)
        if api:
            proc, result.url = start_gunicorn(env, "api.wsgi:app", f"bench-api-{run}")
            stack.callback(proc.stop)
            result.procs["api"] = proc
        for queue, concurrency in queues.items():
            stack.callback(start_pool(result, queue, concurrency).stop)
        for queue in queues:
            wait_consumed(result, queue)
        yield result


def start_pool(stack: Stack, queue: str, concurrency: int) -> Proc:
    """A worker pool on `queue` as the benchmarks run it (`noop`: the baseline's no-op Celery app)."""
    app = "noop_app" if queue == "noop" else "workers.celery_app"
    name = f"bench-{queue}-{stack.prefix[6:14]}-{len(stack.procs)}"
    proc = start_worker(stack.env, queue, name, concurrency, *WORKER_FLAGS, app=app)
    stack.procs[queue] = proc
    return proc


class Http:
    """One kept-alive HTTP connection (http.client): the `requests` library costs about 2 ms of client time
    per call on these machines, which would be counted against the platform."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, Any]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body, {"Content-Type": content_type} if content_type else {})
                response = self.conn.getresponse()
                return response.status, json.loads(response.read())
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.conn.close()  # the server closed an idle kept-alive connection: open a new one, once
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def _submit_from(url: str, n: int, clients: int, job_type: str, body: bytes, content_type: str,
                 then: Callable[[Http, str], None]) -> None:
    """n `POST /v1/jobs/<type>` from `clients` kept-alive connections at once; `then(http, job_id)` after each."""
    counter, lock = iter(range(n)), threading.Lock()

    def client() -> None:
        http = Http(url)
        try:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                status, job = http.call("POST", f"/v1/jobs/{job_type}", body, content_type)
                assert status == 202, job
                then(http, str(job["job_id"]))
        finally:
            http.close()

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()


def run_jobs(url: str, n: int, clients: int, job_type: str, body: bytes, content_type: str) -> float:
    """n jobs, each `POST /v1/jobs/<type>` then `GET ?wait`, from `clients` kept-alive connections at
    once; the seconds from the first submit to the last result."""
    def wait(http: Http, job_id: str) -> None:
        _, record = http.call("GET", f"/v1/jobs/{job_id}?wait=30")
        assert record["status"] == "SUCCESS", record

    started = time.perf_counter()
    _submit_from(url, n, clients, job_type, body, content_type, wait)
    return time.perf_counter() - started


def submit_many(url: str, n: int, job_type: str, body: bytes, content_type: str, clients: int = 4) -> list[str]:
    """n jobs through `POST /v1/jobs/<type>` from `clients` kept-alive connections at once; their ids."""
    ids: list[str] = []
    _submit_from(url, n, clients, job_type, body, content_type, lambda _, job_id: ids.append(job_id))
    return ids


def model_ready(stack: Stack, queue: str, timeout_s: float = 300) -> dict[str, Any]:
    """Wait until a model type's pool reports its model loaded (`/ready`); its status."""
    def reported() -> dict[str, Any] | None:
        queues = requests.get(f"{stack.url}/ready", timeout=5).json()["queues"]
        model: dict[str, Any] | None = queues[queue].get("model")
        return model

    model = until(reported, timeout_s, f"the {queue} pool to report its model", interval_s=0.5)
    if model["status"] != "loaded":
        raise SystemExit(f"the {queue} model did not load: {model}")
    return model


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file, and its Content-Type."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def wait_consumed(stack: Stack, queue: str, timeout_s: float = 180) -> None:
    def consuming() -> bool:
        for proc in stack.procs.values():
            if proc.popen.poll() is not None:
                raise AssertionError(f"{proc.name} exited:\n{proc.tail()}")
        return int(queue_info(stack.vhost, queue).get("consumers") or 0) >= 1

    until(consuming, timeout_s, f"a worker consuming {queue}", interval_s=0.25)


def queue_now(stack: Stack, queue: str) -> tuple[int, int]:
    """(messages, consumers) of a queue right now (a passive declare: the management API lags up to 5 s)."""
    from kombu import Connection

    with Connection(stack.env["BROKER_URL"]) as conn:
        _, messages, consumers = conn.default_channel.queue_declare(queue=queue, passive=True)
    return int(messages), int(consumers)


def consuming(stack: Stack, queue: str, on: bool) -> None:
    """Resume (`on`) or pause the consumer of `queue` in the pool started for it (Celery's remote control,
    sent to that pool only), and wait until the broker agrees: jobs pile up while the pool stays warm."""
    from common.broker import make_celery

    app, node = make_celery(), [f"{stack.procs[queue].name}@{socket.gethostname()}"]
    try:
        if on:
            app.control.add_consumer(queue, reply=True, timeout=5, destination=node)
        else:
            app.control.cancel_consumer(queue, reply=True, timeout=5, destination=node)
    finally:
        app.close()
    until(lambda: (queue_now(stack, queue)[1] >= 1) == on, 30, f"the consumer of {queue} {'back' if on else 'paused'}",
          interval_s=0.1)


def finish_stamps(keys: list[str], fetch: Callable[[Any, str], object], read: Callable[[bytes], str | None],
                  deadline_s: float) -> list[float]:
    """Wait until every key holds a finish stamp (`fetch` queues its read on a pipeline, `read` turns
    the answer into an ISO time, or None while the job runs); the stamps in Unix seconds, sorted."""
    from common.store import get_redis

    r, deadline, pending, stamps = get_redis(), time.monotonic() + deadline_s, list(keys), []
    while pending:
        with r.pipeline(transaction=False) as pipe:
            for key in pending:
                fetch(pipe, key)
            values = [read(v) if v is not None else None for v in pipe.execute()]
        stamps += [dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() for v in values if v]
        pending = [key for key, value in zip(pending, values, strict=True) if value is None]
        if pending and time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} of {len(keys)} jobs not finished within {deadline_s:.0f} s")
        if pending:
            time.sleep(0.2)  # the measurement loop: the jobs' own stamps, not this poll, set the figure
    return sorted(stamps)


def warm_rate(stamps: list[float]) -> float:
    """Jobs finished per second once the pool is warm (the first 10 %, at least 3, left out; fewer when there
    are only a few jobs, as in the smoke tests)."""
    warm = min(max(3, len(stamps) // 10), len(stamps) - 2)
    return (len(stamps) - 1 - warm) / (stamps[-1] - stamps[warm])


def drained_rate(stack: Stack, queue: str, submit: Callable[[], list[str]]) -> float:
    """Jobs per second of the warm pool of `queue` on jobs `submit` queued over HTTP while it was paused: the
    workers' side of the platform (broker, record, upload, model) without the HTTP clients and the API
    taking the same cores at the same time. Every job must end SUCCESS."""
    from common import records
    from common.store import get_redis

    consuming(stack, queue, False)
    keys = [records.job_key(job_id) for job_id in submit()]
    consuming(stack, queue, True)
    stamps = finish_stamps(keys, lambda pipe, key: pipe.hget(key, "finished_at"), bytes.decode, 120 + len(keys))
    with get_redis().pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, "status")
        statuses = {v.decode() for v in pipe.execute()}
    if statuses != {"SUCCESS"}:
        raise SystemExit(f"{queue} jobs ended {sorted(statuses)}, not all SUCCESS")
    return warm_rate(stamps)


def celery_drained_rate(stack: Stack, task: Any, payload: dict[str, Any], n: int, clients: int = 4) -> float:
    """Tasks per second of the warm `noop` pool (a bare Celery app on the platform's settings) on n
    `task.apply_async(args=[payload])` from `clients` threads, queued while it was paused; the rate from
    the results' `date_done` in Celery's Redis backend, as `drained_rate` takes it from the job records."""
    consuming(stack, "noop", False)
    with ThreadPoolExecutor(clients) as pool:
        ids = list(pool.map(lambda _: str(task.apply_async(args=[payload]).id), range(n)))
    keys = [task.app.backend.get_key_for_task(i).decode() for i in ids]

    def date_done(raw: bytes) -> str | None:
        meta = json.loads(raw)
        if meta["status"] not in ("STARTED", "SUCCESS"):
            raise SystemExit(f"{task.name} ended {meta['status']}: {meta.get('result')}")
        return str(meta["date_done"]) if meta["status"] == "SUCCESS" else None

    consuming(stack, "noop", True)
    return warm_rate(finish_stamps(keys, lambda pipe, key: pipe.get(key), date_done, 120 + n / 10))


def queue_info(vhost: str, queue: str) -> dict[str, Any]:
    url = f"{services.MANAGEMENT}queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
    response = requests.get(url, auth=services.AUTH, timeout=10)
    return response.json() if response.ok else {}


# --- arguments, figures and results ---

def arguments(doc: str | None, repeat: int = 3) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("small", "full"), default="full",
                        help="full: the figures of docs/benchmarks.md; small: seconds, to prove the script works")
    parser.add_argument("--repeat", type=int, default=None, help=f"repetitions (default: {repeat}; small: 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON result (default: bench/results)")
    parser.set_defaults(default_repeat=repeat)
    return parser


def repeats(args: argparse.Namespace) -> int:
    return int(args.repeat or (1 if args.size == "small" else args.default_repeat))


def spread(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": list(values)}


def row(name: str, unit: str, ours: list[float], base: list[float] | None = None, *, target: tuple[str, float] | None
        = None, platform_label: str = "", baseline_label: str = "") -> dict[str, Any]:
    """One line of a figure: the platform's runs, the baseline's runs of the same repetitions, the ratios."""
    out: dict[str, Any] = {"name": name, "unit": unit, "platform": spread(ours), "platform_label": platform_label,
                           "baseline": None, "baseline_label": baseline_label, "ratio": None, "target": None,
                           "met": None}
    if base:
        ratios = [a / b for a, b in zip(ours, base, strict=True)]
        out.update(baseline=spread(base), ratio=spread(ratios))
    if target is not None and out["ratio"] is not None:
        op, value = target
        median = out["ratio"]["median"]
        out.update(target={"op": op, "value": value}, met=median >= value if op == ">=" else median <= value)
    return out


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), pyplatform.processor())
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "memory_gib": round(mem_kb / 2**20, 1),
            "os": pyplatform.platform(), "python": pyplatform.python_version(), "load_avg": os.getloadavg()}


def write_result(args: argparse.Namespace, figure: str, title: str, rows: list[dict[str, Any]],
                 method: str, extra: dict[str, Any] | None = None) -> Path:
    """`<out>/<figure>.json`, and each row printed as one line."""
    result = {"figure": figure, "title": title, "size": args.size, "repeat": repeats(args), "method": method,
              "rows": rows, "machine": machine(), "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              **(extra or {})}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{figure}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"\n{title} ({args.size}, {repeats(args)} repetitions)")
    for r in rows:
        print("  " + describe(r))
    print(f"  → {path}")
    return path


def describe(r: dict[str, Any]) -> str:
    p = r["platform"]
    text = f"{r['name']:<36} platform {fmt(p['median'])} {r['unit']} ({fmt(p['min'])}–{fmt(p['max'])})"
    if r["baseline"] is not None:
        b, q = r["baseline"], r["ratio"]
        text += f"   baseline {fmt(b['median'])} ({fmt(b['min'])}–{fmt(b['max'])})"
        text += f"   ratio {q['median']:.2f} ({q['min']:.2f}–{q['max']:.2f})"
    if r["target"] is not None:
        text += f"   target {r['target']['op']} {r['target']['value']}: {'met' if r['met'] else 'MISSED'}"
    return text


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def summary(name: str, samples_ms: list[float]) -> str:
    return f"{name:<34} p50 {statistics.median(samples_ms):7.2f} ms   p99 {percentile(samples_ms, 99):7.2f} ms   " \
           f"n={len(samples_ms)}"


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else samples[0]


__all__ = ["ROOT", "Http", "Stack", "arguments", "celery_drained_rate", "consuming", "drained_rate", "finish_stamps",
           "machine", "model_ready", "multipart", "percentile", "platform", "queue_info", "queue_now", "repeats",
           "row", "run_jobs", "spread", "start_gunicorn", "start_pool", "submit_many", "summary", "until",
           "wait_consumed", "warm_rate", "write_result"]
