"""The `webhooks` pool: it moves due webhooks from the schedule into Celery tasks and posts them.

- `Dispatcher`, a worker bootstep that runs only in a worker consuming the `webhooks` queue, claims due
  entries as soon as a job's end says so, else every `POLL_S` (`common.webhooks.claim_due`, atomic, with a
  lease: several webhooks workers never send one entry twice within a lease, and an entry whose claimer died
  is due again after it) and publishes a `webhooks.deliver` task for each.
- `deliver` posts the job's record, signed per the Standard Webhooks spec, to the address the SSRF guard
  checked (`common.addresses`), following no redirect, within `WEBHOOK_TIMEOUT_S`, reading at most
  `MAX_READ` bytes of the answer, and stores the outcome (`common.webhooks.store_outcome`).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import urllib3
from celery import bootsteps
from standardwebhooks import Webhook

from common import records, webhooks
from common.addresses import Allowlist, check_address
from common.broker import DELIVER_TASK, WEBHOOKS_QUEUE
from common.errors import InputError
from common.settings import Settings, get_settings
from common.store import get_redis
from workers.celery_app import app

log = logging.getLogger(__name__)
POLL_S = 0.25
CLAIM_LIMIT = 100
RETRY_S = 2.0
MAX_READ = 1024
MAX_DELAY_S = 86400  # a Retry-After longer than a day is taken as a day
JITTER = 0.2


def lease_s(settings: Settings) -> float:
    """How long a claimed entry stays out of the schedule: its publish, its wait in the queue and its post."""
    return max(120.0, 3 * settings.webhook_timeout_s + 60)


@dataclass(frozen=True)
class Attempt:
    status: int | None
    error: str
    retry_after_s: float | None = None
    final: bool = False  # no further attempt whatever the schedule says (410, a refused address)

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def message_id(job_id: str) -> str:
    """The `webhook-id`: one per job, the same on every attempt and redelivery (receivers deduplicate on it)."""
    return f"msg_{job_id}"


def signed(body: bytes, msg_id: str, at: dt.datetime, settings: Settings) -> dict[str, str]:
    """The Standard Webhooks headers; during a rotation, one signature per secret, the current one first."""
    secrets = [s for s in (settings.webhook_secret, settings.webhook_secret_previous) if s]
    signature = " ".join(Webhook(secret).sign(msg_id, at, body.decode()) for secret in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}


def backoff_s(attempts: int, settings: Settings) -> float:
    """Delay after the `attempts`-th failed attempt: WEBHOOK_BACKOFF_S doubled each time, ±20 %."""
    return float(settings.webhook_backoff_s * 2 ** (attempts - 1) * random.uniform(1 - JITTER, 1 + JITTER))


def post(url: str, body: bytes, headers: dict[str, str], settings: Settings) -> Attempt:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = check_address(host, port, Allowlist.parse(settings.webhook_allowlist, "WEBHOOK_ALLOWLIST"))
    except (InputError, ValueError) as exc:
        refused = isinstance(exc, ValueError) or exc.code == "address_refused"
        return Attempt(None, str(exc).replace("Fetching", "Posting to"), final=refused)
    timeout = urllib3.Timeout(total=settings.webhook_timeout_s)
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(str(address), port, timeout=timeout, retries=False, maxsize=1,
                                           server_hostname=host, assert_hostname=host)
    else:
        pool = urllib3.HTTPConnectionPool(str(address), port, timeout=timeout, retries=False, maxsize=1)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {**headers, "Host": parts.netloc.rsplit("@", 1)[-1], "Content-Type": "application/json",
               "User-Agent": "ml-job-platform-webhooks/1.0"}
    try:
        with pool:
            with deadline(settings.webhook_timeout_s):
                response = pool.urlopen("POST", target, body=body, headers=headers, redirect=False,
                                        preload_content=False)
                # Only an error's first bytes are read, for `last_error`; a 2xx is delivered whatever its body.
                ok = 200 <= response.status < 300
                answer = b"" if ok else response.read(MAX_READ)  # the rest is dropped with the connection
            return _answered(response.status, response.headers.get("Retry-After"), answer)
    except AnswerTimedOut:
        return Attempt(None, f"no whole answer within {settings.webhook_timeout_s:g} s (WEBHOOK_TIMEOUT_S)")
    except urllib3.exceptions.NewConnectionError:  # a subclass of ConnectTimeoutError: test it first
        return Attempt(None, f"could not connect to {parts.netloc}")
    except urllib3.exceptions.TimeoutError:
        return Attempt(None, f"no answer within {settings.webhook_timeout_s:g} s (WEBHOOK_TIMEOUT_S)")
    except urllib3.exceptions.HTTPError as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:300])


class AnswerTimedOut(Exception):
    """`WEBHOOK_TIMEOUT_S` ran out while the receiver was answering (urllib3 bounds each read, not the answer)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise `AnswerTimedOut` in this thread when `seconds` run out (SIGALRM: the task runs in its pool child's
    main thread). Elsewhere (another thread) only urllib3's per-read timeout bounds the answer."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(*_: Any) -> None:
        raise AnswerTimedOut()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _answered(status: int, retry_after: str | None, answer: bytes) -> Attempt:
    if 200 <= status < 300:
        return Attempt(status, "")
    said = answer[:200].decode(errors="replace").strip()
    error = f"HTTP {status}" + (f": {said}" if said else "")
    if status == 410:
        return Attempt(status, error + " (410 Gone: no further attempts)", final=True)
    return Attempt(status, error, retry_after_s=_retry_after(retry_after))


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isascii() and value.strip().isdigit():  # not "²": str.isdigit takes any Unicode digit
        return min(float(value), MAX_DELAY_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds()), MAX_DELAY_S)


def outcome_of(attempt: Attempt, attempts: int, settings: Settings) -> tuple[str, float]:
    """('delivered' | 'retry' | 'failed', delay before the next attempt) after the `attempts`-th attempt."""
    if attempt.delivered:
        return "delivered", 0.0
    if attempt.final or attempts >= settings.webhook_max_attempts:
        return "failed", 0.0
    if attempt.retry_after_s is not None:
        return "retry", attempt.retry_after_s
    return "retry", backoff_s(attempts, settings)


# The post is bounded by WEBHOOK_TIMEOUT_S, the name lookup before it is not: a task cut by its limit leaves its
# entry leased, so it is claimed again when the lease ends.
@app.task(name=DELIVER_TASK, ignore_result=True, acks_late=True,  # routed to `webhooks` by task_routes
          soft_time_limit=get_settings().webhook_timeout_s + 30, time_limit=get_settings().webhook_timeout_s + 45)
def deliver(job_id: str) -> str:
    """Post one attempt of a job's webhook; running it twice at most posts it twice (same `webhook-id`)."""
    settings, r = get_settings(), get_redis()
    earlier = webhooks.begin(r, job_id, lease_s(settings))
    record = records.load(r, job_id) if earlier >= 0 else None
    if record is None or record["webhook"] is None:
        return "nothing to send"
    at = dt.datetime.now(dt.UTC)
    payload = {"type": "job.finished", "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "data": records.public(record)}
    body = json.dumps(payload, separators=(",", ":")).encode()
    unusable = "WEBHOOK_SECRET is not set" if not settings.webhook_secret else webhooks.unusable_secret(settings)
    if unusable:
        attempt = Attempt(None, f"{unusable} on the webhooks workers: nothing is sent unsigned")
    else:
        try:
            attempt = post(record["webhook"]["url"], body, signed(body, message_id(job_id), at, settings), settings)
        except Exception as exc:  # counted as a failed attempt, never an attempt that leaves no trace
            log.exception("webhook of job %s: the attempt failed", job_id)
            attempt = Attempt(None, f"{type(exc).__name__}: {exc}"[:300])
    outcome, delay = outcome_of(attempt, earlier + 1, settings)
    left_s = int(r.ttl(records.job_key(job_id)))  # type: ignore[arg-type]
    if outcome == "retry" and 0 <= left_s < delay + 60:  # the record (and its result) would be gone by then
        outcome, attempt = "failed", Attempt(attempt.status, f"{attempt.error}; the next attempt would come after "
                                                             f"the job's record expires")
    webhooks.store_outcome(r, job_id, earlier, outcome, attempt.status, attempt.error, delay)
    log.info("webhook of job %s: attempt %d %s%s", job_id, earlier + 1, outcome,
             f" ({attempt.error}; next in {delay:.1f} s)" if outcome == "retry" else
             f" ({attempt.error})" if attempt.error else "")
    return outcome


class Dispatcher(bootsteps.StartStopStep):
    """In a worker consuming `webhooks`, a thread of its main process that turns due webhooks into `deliver`
    tasks: at once when a job's end (or a redelivery) publishes on `records.webhook_wake_channel`, and every
    `POLL_S` for retries and expired leases. A thread, not the worker's timer: publishing a burst of tasks
    (a broker confirm each) must not hold up the event loop that consumes them."""

    requires: ClassVar[set[str]] = {"celery.worker.components:Pool"}  # started once the children are forked

    def __init__(self, worker: Any, **_: Any) -> None:
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def include_if(self, worker: Any) -> bool:
        return WEBHOOKS_QUEUE in (worker.app.amqp.queues.consume_from or {})

    def start(self, worker: Any) -> None:
        self.thread = threading.Thread(target=dispatch_loop, args=(self.stopping,), name="webhooks-dispatch",
                                       daemon=True)
        self.thread.start()

    def stop(self, worker: Any) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=5)


def dispatch_loop(stopping: threading.Event) -> None:
    while not stopping.is_set():
        try:
            with get_redis().pubsub(ignore_subscribe_messages=True) as wake:
                wake.subscribe(records.webhook_wake_channel())
                while not stopping.is_set():
                    if dispatch_due() < CLAIM_LIMIT:  # a full claim: more may be due already
                        wake.get_message(timeout=POLL_S)
                        while wake.get_message(timeout=0) is not None:  # one claim serves a burst of ends
                            pass
        except Exception as exc:  # Redis or the broker away: claimed entries are due again after their lease
            log.warning("due webhooks not dispatched (retrying in %s s): %s", RETRY_S, exc)
            stopping.wait(RETRY_S)


def dispatch_due() -> int:
    """Publish a `deliver` task for each due webhook (at most `CLAIM_LIMIT`)."""
    due = webhooks.claim_due(get_redis(), lease_s(get_settings()), CLAIM_LIMIT)
    for job_id in due:
        deliver.apply_async((job_id,))
    return len(due)


app.steps["worker"].add(Dispatcher)

__all__ = ["Attempt", "Dispatcher", "backoff_s", "deliver", "dispatch_due", "message_id", "outcome_of", "post",
           "signed"]
