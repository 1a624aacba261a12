"""The client's one pooled HTTP session: submit with retries and an `Idempotency-Key`, wait with the long-poll,
read a job's event stream.

It speaks HTTP only. What a job type accepts (its upload field, its size limit) comes from `GET /v1/job-types`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from client.sources import Job

FINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
RETRY_STATUSES = frozenset({429, 503})
FOR_GOOD = frozenset({"model_unavailable"})  # a 503 that a retry would not mend: no worker has the model
WAIT_S = 5  # each long-poll asks for at most this; a waiting thread notices Ctrl-C within it
CONNECT_TIMEOUT_S = 5.0
UPLOAD_TIMEOUT_S = 120.0
RESUME_S = 1.0  # an event stream that closed before the job's end is resumed this much later (its `retry:`)
QUIET_S = 40.0  # an event stream silent this long is dead (the API sends a keep-alive every 15 s)


class ClientError(Exception):
    """A job that could not be submitted or followed: `rejected` when the API (or a local check) said no."""

    def __init__(self, code: str, message: str, rejected: bool = False) -> None:
        super().__init__(message)
        self.code, self.message, self.rejected = code, message, rejected

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class Stopped(Exception):
    """Ctrl-C came while this request was being retried."""


@dataclass(frozen=True)
class Retry:
    """Retries of 429, 503 and lost connections: full-jitter exponential backoff, never less than Retry-After."""

    attempts: int = 8
    base_s: float = 0.25
    cap_s: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = random.uniform(0, min(self.cap_s, self.base_s * 2**attempt))
        return max(min(retry_after or 0.0, 60.0), backoff)


class Api:
    def __init__(self, url: str, key: str | None = None, pool: int = 16, retry: Retry | None = None) -> None:
        self.url = url.rstrip("/")
        self.retry = retry or Retry()
        self.types: dict[str, dict[str, Any]] = {}
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool + 2)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "ml-job-platform-client/0.1"
        self.streams: set[requests.Response] = set()  # event streams being read (`interrupt`)
        self.lock = threading.Lock()
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def load_types(self) -> dict[str, dict[str, Any]]:
        response = self._send("GET", "/v1/job-types", threading.Event(), timeout=(CONNECT_TIMEOUT_S, 30))
        self.types = {t["type"]: t for t in _body(response, "GET /v1/job-types")["job_types"]}
        return self.types

    def readiness(self) -> dict[str, Any] | None:
        """`GET /ready` as it stands, once (a 503 still says which queues lack what); None if it says nothing."""
        try:
            response = self.session.get(self.url + "/ready", timeout=(CONNECT_TIMEOUT_S, 30))
            body = response.json()
        except (requests.RequestException, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def submit(self, job: Job, stop: threading.Event) -> dict[str, Any]:
        """POST the job; retries reuse the job's Idempotency-Key, so they never create a second job."""
        kwargs = self._request_of(job)
        response = self._send("POST", f"/v1/jobs/{job.type}", stop, headers={"Idempotency-Key": job.key},
                              timeout=(CONNECT_TIMEOUT_S, UPLOAD_TIMEOUT_S), **kwargs)
        return _body(response, f"POST /v1/jobs/{job.type}")

    def wait(self, job_id: str, stop: threading.Event, deadline: float | None = None) -> dict[str, Any]:
        """The job's record once final, or as it stands when `stop` is set or `deadline` has passed."""
        while True:
            wait_s = WAIT_S if deadline is None else max(0.0, min(WAIT_S, deadline - time.monotonic()))
            wait_s = 0 if stop.is_set() else wait_s  # after Ctrl-C: one look, no waiting
            response = self._send("GET", f"/v1/jobs/{job_id}", stop, params={"wait": round(wait_s, 1)},
                                  timeout=(CONNECT_TIMEOUT_S, wait_s + 30))
            record = _body(response, f"GET /v1/jobs/{job_id}")
            if record["status"] in FINAL or stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return record

    def follow(self, job_id: str, stop: threading.Event, deadline: float | None = None,
               on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """As `wait`, from the job's event stream, telling `on_progress` each change of its progress. A stream that
        closes before the job's end (its longest life, or the API holding as many as it may) is resumed after its
        last event; one that fails (an API without streams, a lost connection, Ctrl-C) leaves the rest to `wait`."""
        last_id: str | None = None
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                for name, event_id, data in self.events(job_id, last_id, stop, deadline):
                    last_id = event_id or last_id
                    if name == "end":
                        return data
                    if on_progress is not None:
                        on_progress(int(data["progress"]))
                if stop.wait(RESUME_S):
                    break
        except (ClientError, requests.RequestException, ValueError, KeyError, TypeError):
            pass
        return self.wait(job_id, stop, deadline)

    def events(self, job_id: str, last_id: str | None, stop: threading.Event,
               deadline: float | None = None) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
        """`GET /v1/jobs/<id>/events` after event `last_id`: (name, id, data) of each event until the stream
        closes, or `stop` is set (`interrupt`). A refusal raises `ClientError`; a lost or silent connection, or
        `deadline` passing, raises requests' errors."""
        quiet_s = QUIET_S if deadline is None else max(0.1, min(QUIET_S, deadline - time.monotonic()))
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id is not None else {})}
        response = self.session.get(f"{self.url}/v1/jobs/{job_id}/events", headers=headers, stream=True,
                                    timeout=(CONNECT_TIMEOUT_S, quiet_s))
        with response, self._reading(response):
            if response.status_code != 200 or stop.is_set():
                if response.status_code >= 300:
                    raise _error(response)
                return
            yield from _parse(response)

    def interrupt(self) -> None:
        """Make every event stream being read let go at once (after Ctrl-C): its socket is shut down."""
        with self.lock:
            for response in self.streams:
                response.raw.shutdown()

    @contextmanager
    def _reading(self, response: requests.Response) -> Iterator[None]:
        with self.lock:
            self.streams.add(response)
        try:
            yield
        finally:
            with self.lock:
                self.streams.discard(response)

    def _request_of(self, job: Job) -> dict[str, Any]:
        if job.body is not None:
            return {"json": job.body}
        spec = self.types.get(job.type, {})
        upload = spec.get("inputs", {}).get("multipart")
        if not upload:
            raise ClientError("no_upload", f"{job.type} jobs take no file upload", rejected=True)
        data = _read(job.file) if job.content is None else job.content
        limit = spec.get("limits", {}).get("max_bytes")
        if limit and len(data) > limit:
            raise ClientError("too_large", f"{len(data)} bytes is over the {limit}-byte limit of {job.type} jobs",
                              rejected=True)
        name = job.filename or (job.file.name if job.file else "upload")
        return {"files": {upload["field"]: (name, data)}, "data": job.form}

    def _send(self, method: str, path: str, stop: threading.Event, **kwargs: Any) -> requests.Response:
        """One request, retried on 429, 503, 409 idempotency_in_progress and lost connections."""
        response: requests.Response | None = None
        for attempt in range(self.retry.attempts + 1):
            try:
                response = self.session.request(method, self.url + path, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                response, failure = None, ClientError("unreachable", f"cannot reach the API at {self.url} "
                                                                     f"({type(exc).__name__})")
            else:
                if not _retryable(response):
                    return response
                failure = _error(response)
            if attempt == self.retry.attempts:
                break
            if stop.wait(self.retry.delay(attempt, _retry_after(response))):
                raise Stopped
        tries = f" (gave up after {self.retry.attempts} retries)" if self.retry.attempts else ""
        raise ClientError(failure.code, failure.message + tries)


def _retryable(response: requests.Response) -> bool:
    if response.status_code in RETRY_STATUSES:
        return _error(response).code not in FOR_GOOD
    return response.status_code == 409 and _error(response).code == "idempotency_in_progress"


def _retry_after(response: requests.Response | None) -> float | None:
    try:
        return float(response.headers["Retry-After"]) if response is not None else None
    except (KeyError, ValueError):
        return None


def _error(response: requests.Response) -> ClientError:
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{response.status_code}", f"HTTP {response.status_code} {response.reason}"
    return ClientError(code, message, rejected=400 <= response.status_code < 500 or code in FOR_GOOD)


def _body(response: requests.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 400:
        raise _error(response)
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        raise ClientError("bad_response", f"{what} answered something other than JSON") from None
    return body


def _parse(response: requests.Response) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """Server-Sent Events: (name, id, data as JSON) of each event; comments (keep-alives) and `retry:` skipped."""
    fields: dict[str, str] = {}
    for raw in response.iter_lines(chunk_size=None):
        line = raw.decode()
        if line and not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif not line and "data" in fields:
            yield fields.get("event", "message"), fields.get("id"), json.loads(fields["data"])
            fields = {}


def _read(path: Path | None) -> bytes:
    if path is None:
        raise ClientError("no_file", "the job names no file", rejected=True)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ClientError("unreadable", f"cannot read {path}: {exc.strerror}", rejected=True) from None
