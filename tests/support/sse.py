"""Read a Server-Sent Events stream as the wire carries it (fields, comments, the close), independently of the
bundled client's reader."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass
class Event:
    name: str
    id: str | None
    data: Any
    at: float = field(default_factory=time.time)  # wall clock when its blank line arrived


@dataclass
class Seen:
    """What a stream carried: its events, its comments and its `retry:`."""
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)


def events(response: requests.Response, seen: Seen | None = None) -> Iterator[Event]:
    """Each event of the stream as it arrives, until the server closes it."""
    seen = seen if seen is not None else Seen()
    fields: dict[str, str] = {}
    for raw in response.iter_lines(chunk_size=None):
        line = raw.decode()
        if line.startswith(":"):
            seen.comments.append(line)
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            if name == "retry":
                seen.retry.append(fields.pop(name))
        elif "data" in fields:
            event = Event(fields.get("event", "message"), fields.get("id"), json.loads(fields["data"]))
            seen.events.append(event)
            fields = {}
            yield event


def read_all(response: requests.Response) -> Seen:
    """The whole stream, until the server closes it."""
    seen = Seen()
    for _ in events(response, seen):
        pass
    return seen


__all__ = ["Event", "Seen", "events", "read_all"]
