"""The long-poll: wait for a job's record to be final, woken by the publish of the script that ends it
(`records.finish` publishes on `job_channel`, as every change of the record)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.client import PubSub

from common.records import JobStatus, job_channel, load


def wait_final(r: redis.Redis, job_id: str, timeout_s: float) -> dict[str, Any] | None:
    """Return the record as soon as it is final, or as it stands after `timeout_s`.

    Subscribes before reading, so a job finishing in between is never missed. Any message only makes
    it read the record again, so one left over from an earlier wait on the same connection is harmless.
    """
    deadline = time.monotonic() + timeout_s
    with subscribed(r, job_id, deadline) as pubsub:
        record = load(r, job_id)
        while record is not None and not JobStatus(record["status"]).is_final:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if pubsub.get_message(timeout=remaining) is not None:
                record = load(r, job_id)
        return record


@contextmanager
def subscribed(r: redis.Redis, job_id: str, deadline: float) -> Iterator[PubSub]:
    """This thread's pub/sub connection, subscribed to the job's changes (confirmed by Redis, or `deadline`
    passed); unsubscribed afterwards, or dropped if anything went wrong meanwhile."""
    pubsub, channel = _pubsub(r), job_channel(job_id)
    try:
        pubsub.subscribe(channel)
        _await_subscription(pubsub, channel, deadline)
        yield pubsub
        pubsub.unsubscribe(channel)
    except BaseException:
        _waiting.pubsub = None
        pubsub.close()
        raise


def _await_subscription(pubsub: PubSub, channel: str, deadline: float) -> None:
    """Wait for Redis to confirm the subscription: reading the record before that could miss a job
    finishing in between (its publish would reach no one). Leftovers of earlier waits are skipped."""
    while time.monotonic() < deadline:
        response = pubsub.parse_response(block=False, timeout=min(1.0, max(deadline - time.monotonic(), 0.01)))
        if response is None:
            continue
        pubsub.handle_message(response)  # redis-py's own bookkeeping of the subscription
        if response[0] in (b"subscribe", "subscribe") and response[1] in (channel, channel.encode()):
            return


_waiting = threading.local()


def _pubsub(r: redis.Redis) -> PubSub:
    """This thread's pub/sub connection, kept from one wait to the next: a new one per wait would cost a
    TCP connect and redis-py's handshake on every long-poll (`close()` disconnects)."""
    pubsub: PubSub | None = getattr(_waiting, "pubsub", None)
    if pubsub is None or pubsub.connection_pool is not r.connection_pool:
        pubsub = _waiting.pubsub = r.pubsub(ignore_subscribe_messages=True)
    return pubsub


__all__ = ["subscribed", "wait_final"]
