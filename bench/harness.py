"""Start the pieces a benchmark measures: its own vhost and key prefix, the API, worker pools."""

from __future__ import annotations

import statistics
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from support import services  # noqa: E402
from support.processes import Proc, env_for, start_api, start_worker  # noqa: E402
from support.wait import until  # noqa: E402


@contextmanager
def platform(queues: dict[str, int]) -> Iterator[tuple[str, dict[str, str], dict[str, Proc]]]:
    """Yield (api_url, env, workers) with one worker per queue name → concurrency."""
    services.require_services()
    vhost = services.create_vhost()
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    env = env_for(vhost, prefix)
    with ExitStack() as stack:
        stack.callback(services.delete_vhost, vhost)
        stack.callback(services.delete_keys, prefix)
        api, url = start_api(env)
        stack.callback(api.stop)
        workers = {}
        for queue, concurrency in queues.items():
            app = "bench.noop_app" if queue == "noop" else "workers.celery_app"
            proc = start_worker({**env, "PYTHONPATH": f"{ROOT}:{env['PYTHONPATH']}"}, queue, f"bench-{queue}",
                                concurrency, "--without-mingle", "--without-gossip", app=app)
            workers[queue] = proc
            stack.callback(proc.stop)
        yield url, env, workers


def summary(name: str, samples_ms: list[float]) -> str:
    qs = statistics.quantiles(samples_ms, n=100)
    return f"{name:<34} p50 {statistics.median(samples_ms):7.2f} ms   p99 {qs[98]:7.2f} ms   n={len(samples_ms)}"


__all__ = ["ROOT", "platform", "summary", "until"]
