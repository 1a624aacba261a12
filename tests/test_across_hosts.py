"""Scale-out across hosts, on one machine: two network namespaces each run an audio_length worker
against a broker and a store on the host's bridge address. One host's link is cut mid-job without a
word (no FIN): the job finishes on the other host, nothing is lost, and the cut-off worker rejoins
when its link comes back."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psutil
import pytest
import redis
import requests
from kombu import Connection

from launcher.platform import start_api, start_worker
from support.jobs import FINAL, ApiSession, submit, wait_final
from support.media import tone
from support.netns import Host, Network, two_hosts
from support.private import PrivateBroker, private_rabbitmq, private_redis
from support.processes import Proc, env_for
from support.wait import until
from support.web import Site

HEARTBEAT_S = 4  # BROKER_HEARTBEAT_S of these workers: a silent host is noticed in seconds, not minutes
DELAY_S = 6  # the slow page: the job is still fetching when its host is cut off
QUEUE = "audio_length"


@dataclass
class Cluster:
    net: Network
    broker: PrivateBroker
    store: redis.Redis
    site: Site
    http: ApiSession
    workers: dict[str, Proc]  # namespace → its worker

    def host_running(self, job_id: str) -> Host | None:
        """The host whose worker runs the job: the record names the child as `hostname:pid` and the
        namespaces share the hostname, so the pid is looked up among each worker's children."""
        pid = int((self.record(job_id).get("worker") or ":0").rsplit(":", 1)[1])
        return next((h for h in self.net.hosts if pid in children(self.workers[h.ns])), None)

    def record(self, job_id: str) -> dict[str, str]:
        raw = self.store.hgetall(f"job:{job_id}")  # the workers run with no key prefix (a private Redis)
        return {k.decode(): v.decode() for k, v in raw.items()}

    def final(self, job_id: str) -> dict[str, str] | None:
        record = self.record(job_id)
        return record if record.get("status") in FINAL else None

    def consumers(self) -> int:
        """Consumers of the queue now (a passive declare: exact, where the management API lags seconds)."""
        return int(self._declare().consumer_count)

    def waiting(self) -> int:
        return int(self._declare().message_count)

    def _declare(self) -> Any:
        with Connection(self.broker.url, connect_timeout=5) as conn:
            return conn.default_channel.queue_declare(QUEUE, passive=True)

    def consumer_hosts(self) -> list[str]:
        """Addresses of the connections consuming the queue, as the broker's management API lists them."""
        url = f"{self.broker.management_url}consumers/{quote(self.broker.node.vhost, safe='')}"
        consumers = requests.get(url, timeout=5).json()
        return sorted(c["channel_details"]["peer_host"] for c in consumers if c["queue"]["name"] == QUEUE)


def children(worker: Proc) -> set[int]:
    try:
        return {c.pid for c in psutil.Process(worker.pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with two_hosts() as net, private_rabbitmq(net.gateway) as broker, private_redis(net.gateway) as store:
        site, procs = Site(net.gateway), []
        env = {**env_for("", ""), "BROKER_URL": broker.url, "REDIS_URL": store.url, "KEY_PREFIX": "",
               "RABBITMQ_MANAGEMENT_URL": broker.management_url, "FETCH_ALLOWLIST": net.gateway,
               "BROKER_HEARTBEAT_S": str(HEARTBEAT_S)}
        try:
            api_proc, api = start_api({**env, "API_WORKERS": "1"}, f"api-{net.bridge}", wait=False)
            procs.append(api_proc)
            workers = {h.ns: start_worker(env, QUEUE, f"audio-{h.ns}", wrap=h.wrap) for h in net.hosts}
            procs += workers.values()
            with ApiSession(api) as http, redis.Redis.from_url(store.url) as r:
                found = Cluster(net, broker, r, site, http, workers)
                addresses = sorted(h.address for h in net.hosts)
                until(lambda: alive(procs) and found.consumer_hosts() == addresses, 120,
                      f"a worker in each namespace consuming {QUEUE} (logs: run/test-logs/audio-{net.hosts[0].ns}.log)")
                until(lambda: http.get("/health", timeout=2).ok, 60, "the API")
                yield found
        finally:
            for proc in procs:
                proc.stop()
            site.close()


def alive(procs: list[Proc]) -> bool:
    for proc in procs:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
    return True


def seconds_since(wall_start: float, stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp() - wall_start


def test_a_host_cut_off_mid_job_loses_nothing_and_rejoins(cluster: Cluster) -> None:
    url = cluster.site.add("/slow/across.wav", tone(0.5), "audio/wav") + f"?delay={DELAY_S}"
    job_id = submit(cluster.http, QUEUE, json={"url": url})
    victim = until(lambda: cluster.host_running(job_id), 60, "the job to start on one of the hosts")
    other = next(h for h in cluster.net.hosts if h is not victim)
    cut_at = time.time()
    victim.cut()
    try:
        during = [submit(cluster.http, QUEUE, files={"audio": (f"d{n}.wav", tone(0.2))}) for n in range(3)]
        until(lambda: cluster.host_running(job_id) is other, 60, "the broker to hand the job to the other host")
        handover_s = time.time() - cut_at
        record = until(lambda: cluster.final(job_id), 60, f"job {job_id} to finish on the other host")
        assert record["status"] == "SUCCESS" and record["attempts"] == "2", record
        for quick in during:
            assert wait_final(cluster.http, quick)["status"] == "SUCCESS"
            assert cluster.host_running(quick) is other
        assert cluster.consumers() == 1, "the broker still counts the cut-off worker's consumer"
    finally:
        restored_at = time.time()
        victim.restore()
    until(lambda: cluster.consumers() == 2, 120, "the cut-off worker to consume again")
    rejoin_s = time.time() - restored_at
    alive([cluster.workers[victim.ns]])

    cluster.workers[other.ns].stop()
    until(lambda: cluster.consumers() == 1, 60, "the cut-off worker alone on the queue")
    fresh = submit(cluster.http, QUEUE, files={"audio": ("fresh.wav", tone(0.3))})
    assert wait_final(cluster.http, fresh)["status"] == "SUCCESS"
    assert cluster.host_running(fresh) is victim
    assert cluster.record(job_id) == record, "the cut-off worker rewrote the record of the job it lost"
    assert cluster.waiting() == 0
    print(f"\nBROKER_HEARTBEAT_S={HEARTBEAT_S}: cut -> job handed over {handover_s:.1f} s, "
          f"-> done on the other host {seconds_since(cut_at, record['finished_at']):.1f} s; "
          f"link up -> consuming again {rejoin_s:.1f} s")
