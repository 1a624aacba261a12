"""Idempotency without orphans, with real failures: a Redis that refuses the record's write (an ACL), and an API
process killed (SIGKILL) while the broker had not confirmed its job."""

from __future__ import annotations

import secrets
import threading
import uuid
from typing import Any

import psutil
import pytest
import redis
import requests
from kombu import Connection

from support import services
from support.platforms import final, job_keys, platform_env, shared_vhost, stored_record, worker_pool
from support.private import PrivateBroker, private_rabbitmq, private_redis
from support.processes import Proc, start_api
from support.wait import until

SENTIMENT = {"text": "What a lovely, sunny day."}


def submit(api: str, key: str, timeout_s: float = 30) -> requests.Response:
    return requests.post(f"{api}/v1/jobs/sentiment", json=SENTIMENT, headers={"Idempotency-Key": key},
                         timeout=timeout_s)


def test_a_record_the_store_refuses_releases_its_idempotency_key() -> None:
    """The API's Redis user may write idempotency keys but not job records: the submit answers 503 and leaves no
    key behind. Once the user may write records, a retry with the same key creates the job, which runs."""
    with private_redis() as store, shared_vhost() as broker_url:
        admin = redis.Redis(host=store.host, port=store.port, password=store.password)
        env = platform_env(broker_url, store.url)
        prefix, password = env["KEY_PREFIX"], secrets.token_hex(8)
        admin.acl_setuser("api", enabled=True, passwords=[f"+{password}"], commands=["+@all"],
                          keys=[f"{prefix}idem:*", f"{prefix}uploads:*"], channels=["*"])
        api_env = {**env, "REDIS_URL": f"redis://api:{password}@{store.host}:{store.port}/0"}
        proc, api = start_api(api_env)
        try:
            key = str(uuid.uuid4())
            refused = submit(api, key)
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "store_unavailable", refused.text
            assert admin.keys(f"{prefix}*") == [], "the refused submit left a key behind"
            admin.acl_setuser("api", enabled=True, keys=["*"])
            with worker_pool(env, api, "sentiment"):
                again = submit(api, key)
                assert again.status_code == 202, again.text
                record = final(api, again.json()["job_id"])
            assert record["status"] == "SUCCESS" and record["result"]["label"] == "POSITIVE", record
        finally:
            proc.stop()


@pytest.mark.parametrize("broker_restarted", [True, False], ids=["message-lost", "message-routed-late"])
def test_a_retry_runs_the_job_whose_api_process_died_before_the_broker_confirmed_it(broker_restarted: bool) -> None:
    """The broker is under a disk alarm, so a submit's publish waits for its confirm; the API is killed (SIGKILL)
    meanwhile, with the job's record written. Then either the broker restarts (which drops the unread publish)
    or the alarm clears (the broker routes it late). A retry with the same Idempotency-Key reaches a new API
    and publishes the job again: it runs once, and a second message for it, if any, is dropped."""
    with private_rabbitmq() as broker:
        env = platform_env(broker.url, services.REDIS_URL, broker.management_url)
        prefix, key = env["KEY_PREFIX"], str(uuid.uuid4())
        proc, api = start_api(env)
        broker.node.ctl("set_disk_free_limit", "100000GB")
        job_id = submit_and_kill(api, key, proc, prefix)
        if broker_restarted:
            restart(broker)  # its disk limit is the configured one again: no alarm
        else:
            broker.node.ctl("set_disk_free_limit", "50MB")
            until(lambda: queue_depth(broker, "sentiment") == 1, 30, "the dead API's message routed")
        proc, api = start_api(env)
        try:
            (again,) = until(lambda: (a := submit(api, key)).status_code != 409 and (a,), 30,
                             "the retry (409 while the dead API's claim on the record lasts)")
            assert again.status_code == 200 and again.json()["job_id"] == job_id, again.text
            assert queue_depth(broker, "sentiment") == (1 if broker_restarted else 2)
            with worker_pool(env, api, "sentiment"):
                record = final(api, job_id)
                assert record["status"] == "SUCCESS" and record["attempts"] == 1, record
                until(lambda: queue_depth(broker, "sentiment") == 0, 30, "no message left for the job")
        finally:
            proc.stop()


def submit_and_kill(api: str, key: str, proc: Proc, prefix: str) -> str:
    """Submit, and SIGKILL the API once the job's record is written (its publish waits); the job's id."""
    outcome: list[Any] = []
    caller = threading.Thread(target=lambda: outcome.append(_try(lambda: submit(api, key, 60))))
    caller.start()
    job_id = until(lambda: next(iter(job_keys(services.REDIS_URL, prefix)), b"").decode().rsplit(":", 1)[-1],
                   4, "the job's record (written before the publish)")
    kill_api(proc)
    caller.join(30)
    assert outcome and isinstance(outcome[0], requests.ConnectionError), outcome
    assert (stored_record(services.REDIS_URL, prefix, job_id) or {}).get("status") == "PENDING"
    return str(job_id)


def _try(call: Any) -> Any:
    try:
        return call()
    except requests.RequestException as exc:
        return exc


def kill_api(proc: Proc) -> None:
    """SIGKILL gunicorn's master and workers at once, as when the machine or the container dies."""
    main = psutil.Process(proc.pid)
    for process in [*main.children(recursive=True), main]:
        process.kill()
    proc.popen.wait(10)


def restart(broker: PrivateBroker) -> None:
    broker.stop_app()
    broker.start_app()


def queue_depth(broker: PrivateBroker, queue: str) -> int:
    with Connection(broker.url) as conn:
        _, ready, _ = conn.default_channel.queue_declare(queue, passive=True)
    return int(ready)
