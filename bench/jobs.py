"""The jobs a benchmark runs on its platform: submitted over kept-alive HTTP connections, waited on, or
queued while a pool is paused and drained warm, with the rate taken from the jobs' own finish stamps."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests

from bench.platform import Stack, consuming
from launcher.platform import until


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


__all__ = ["Http", "celery_drained_rate", "drained_rate", "finish_stamps", "model_ready", "multipart", "run_jobs",
           "submit_many", "warm_rate"]
