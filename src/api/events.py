"""`GET /v1/jobs/<id>/events`: a job's changes as Server-Sent Events, from the Redis pub/sub of the long-poll.

Each change of a record (a start, progress, an end) counts one more `version` of it and is published on the
job's channel by the script that makes it (`records.CHANGE_LUA`). A stream subscribes first, then reads the
record: it sends it if its version is newer than the client's `Last-Event-ID`, then one event per published
change, with the version as its `id:`, until the job's end (the whole record, as GET shows it), after which it
closes. It holds one of the process's waits (`MAX_WAITING_PER_PROCESS`, shared with long-polls) and a thread,
for at most `EVENTS_MAX_S`, or until this API process stops; the client then resumes with `Last-Event-ID`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import Field
from redis.client import PubSub

from api.jobs import CachedSchema, JobPath, find, public
from api.models import ErrorBody
from common import records, store
from common.records import JobStatus
from common.store import get_redis
from common.waiting import subscribed

log = logging.getLogger(__name__)
KEEPALIVE_S = 15.0  # a comment on a quiet stream, so that proxies and clients see it alive
TICK_S = 1.0  # how often a quiet stream looks at the clock (keep-alive, its end, this process stopping)
RETRY_MS = 1000  # the `retry:` a stream announces: how soon an EventSource reconnects after it closes
KEEPALIVE = b": keep-alive\n\n"
STOPPING = threading.Event()  # set when this API process stops (`read_deadline`): streams end, clients resume

api = APIBlueprint("events", __name__, url_prefix="/v1/jobs", abp_tags=[Tag(name="jobs")])

EVENTS_RESPONSE = {
    "description": "The job's changes as Server-Sent Events: `status`, `attempts` and `progress` (data: `job_id`, "
                   "`status`, `progress`, `attempts`), then `end` (data: the record as `GET /v1/jobs/<id>` shows it), "
                   "after which the stream closes. Each event's `id:` is the record's version.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}
NO_MORE = {"description": "The job has ended and the client has its end already (`Last-Event-ID`): nothing to "
                          "stream (an EventSource stops reconnecting)."}


class EventsHeader(CachedSchema):
    last_event_id: int | None = Field(default=None, ge=0, alias="Last-Event-ID", description=(
        "The `id:` of the last event received: the stream resumes after it."))


@api.get("/<job_id>/events", operation_id="getJobEvents",
         responses={200: EVENTS_RESPONSE, 204: NO_MORE, 400: ErrorBody, 404: ErrorBody, 503: ErrorBody})
def get_job_events(path: JobPath, header: EventsHeader) -> Any:
    """Follow a job's changes as Server-Sent Events
    One event per change of its status, attempts or progress, then its end (the whole record), after which the
    stream closes; a comment every 15 s while nothing happens. `Last-Event-ID` resumes after that event. A stream
    lasts at most `EVENTS_MAX_S`; when the API process already holds as many waits as it may, it answers at once
    with the record as it stands (if newer than `Last-Event-ID`) and `Retry-After: 1`. Either way it closes
    without an `end` event: reconnect with `Last-Event-ID`."""
    record = find(path.job_id)  # 404 unless it is the caller's
    last = -1 if header.last_event_id is None else header.last_event_id
    if last > record["version"]:  # not an id of this record's (a version only grows): resume from nothing
        last = -1
    final = JobStatus(record["status"]).is_final
    if final and record["version"] <= last:
        return Response(status=204)
    waiting = current_app.extensions["waiting"]
    slot = None if final or waiting is None or not waiting.acquire(blocking=False) else waiting
    stream = Stream(path.job_id, last, current_app.extensions["settings"].events_max_s, slot, record)
    response = Response(stream, mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    if slot is None and not final:
        response.headers["Retry-After"] = "1"  # every wait this process may hold is taken: come back
    return response


@dataclass(frozen=True)
class Change:
    """One published change: "<version> <name> <status> <progress> <attempts>" (`records.CHANGE_LUA`)."""
    version: int
    name: str
    status: str
    progress: int
    attempts: int

    @classmethod
    def parse(cls, data: bytes) -> Change:
        version, name, status, progress, attempts = data.decode().split(" ")
        return cls(int(version), name, status, int(progress), int(attempts))


class Stream:
    """One job's events, the body of its response. `close()` (by the server, also when the client is gone or the
    body was never read) ends it and gives its wait back."""

    def __init__(self, job_id: str, last: int, max_s: float, slot: threading.BoundedSemaphore | None,
                 record: dict[str, Any]) -> None:
        self.job_id, self.last, self.slot = job_id, last, slot
        self.ends_at = time.monotonic() + max_s
        self.events = self.follow(record) if slot is not None else self.once(record)

    def __iter__(self) -> Iterator[bytes]:
        return self.events

    def close(self) -> None:
        try:
            self.events.close()
        finally:
            if self.slot is not None:
                self.slot.release()
                self.slot = None

    def once(self, record: dict[str, Any]) -> Generator[bytes]:
        """The record as it stands, if newer than the client's last event (its end, or as a `status` event)."""
        yield f"retry: {RETRY_MS}\n\n".encode()
        if record["version"] > self.last:
            yield snapshot(record)

    def follow(self, record: dict[str, Any]) -> Generator[bytes]:
        r = get_redis()
        try:
            with subscribed(r, self.job_id, self.ends_at) as pubsub:
                current = records.load(r, self.job_id)  # read again once subscribed: no change falls in between
                if current is None or current["owner"] != record["owner"]:
                    return
                yield from self.once(current)
                if JobStatus(current["status"]).is_final:
                    return
                yield from self.changes(r, pubsub, max(self.last, current["version"]))
        except redis.RedisError as exc:  # the answer has begun: no 503 now; the client resumes (and gets it)
            if not store.is_outage(exc):
                raise
            log.warning("events of job %s: the store went away: %s: %s", self.job_id, type(exc).__name__, exc)

    def changes(self, r: redis.Redis, pubsub: PubSub, sent: int) -> Iterator[bytes]:
        """An event per change published after version `sent`, then the end; keep-alives while nothing happens."""
        channel, written = records.job_channel(self.job_id).encode(), time.monotonic()
        while not STOPPING.is_set() and (left := self.ends_at - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=min(TICK_S, left))
            if message is None or message["channel"] != channel:  # a leftover of an earlier wait on the connection
                if time.monotonic() - written >= KEEPALIVE_S:
                    yield KEEPALIVE
                    written = time.monotonic()
                continue
            change = Change.parse(message["data"])
            if change.version <= sent:
                continue
            if change.name == "end":
                record = records.load(r, self.job_id)
                if record is not None:
                    yield event("end", record["version"], public(record))
                return
            yield event(change.name, change.version, {"job_id": self.job_id, "status": change.status,
                                                      "progress": change.progress, "attempts": change.attempts})
            sent, written = change.version, time.monotonic()


def snapshot(record: dict[str, Any]) -> bytes:
    """The record as it stands: its end when final, else a `status` event."""
    if JobStatus(record["status"]).is_final:
        return event("end", record["version"], public(record))
    return event("status", record["version"], {name: record[name] for name in ("job_id", "status", "progress",
                                                                                 "attempts")})


def event(name: str, version: int, data: dict[str, Any]) -> bytes:
    return f"event: {name}\nid: {version}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


__all__ = ["KEEPALIVE_S", "STOPPING", "api"]
