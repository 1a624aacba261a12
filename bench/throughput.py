"""Small-job throughput: N audio_length jobs (a 0.1 s WAV) submitted over HTTP, then run by a worker
pool, jobs finished per second; next to N no-op Celery tasks sent with `apply_async`, then run by a
pool of the same settings (same concurrency, same Celery configuration, same flags).

    .venv/bin/python -m bench.throughput [--size small|full] [--jobs 2000] [--repeat 5]

Both pools run from the start. Each measure pauses its pool's consumer (Celery's `cancel_consumer`),
queues its N jobs (4 HTTP clients, or 4 `apply_async` threads), then resumes it, so the figure is the
pool's: the rate comes from the jobs' own finish stamps (the job record's `finished_at`; the Celery
result's `date_done`), the first 10 % left out. The submit figure measures the API's side. Each
repetition runs the platform, then the baseline; 5 of them, as this figure's runs spread the widest on
shared cores (one run of 3 gave 0.51, 0.80 and 0.87).
"""

from __future__ import annotations

from bench.figures import arguments, repeats, row, write_result
from bench.jobs import celery_drained_rate, drained_rate, multipart, submit_many
from bench.platform import Stack, platform
from tests.support.media import tone

CLIENTS = 4


def submit_over_http(url: str, n: int) -> list[str]:
    """n audio_length jobs of a 0.1 s WAV through `POST /v1/jobs/audio_length`; their ids."""
    body, content_type = multipart("audio", "tiny.wav", tone(0.1))
    return submit_many(url, n, "audio_length", body, content_type, CLIENTS)


def platform_rate(stack: Stack, n: int) -> float:
    return drained_rate(stack, "audio_length", lambda: submit_over_http(str(stack.url), n))


def baseline_rate(stack: Stack, n: int) -> float:
    from bench.noop_app import noop

    return celery_drained_rate(stack, noop, {}, n, CLIENTS)


def main() -> None:
    parser = arguments(__doc__, repeat=5)
    parser.add_argument("--jobs", type=int, default=None, help="jobs per measure (default 2000; small: 60)")
    parser.add_argument("--concurrency", type=int, default=2, help="processes of each pool (default 2)")
    args = parser.parse_args()
    n = args.jobs or (60 if args.size == "small" else 2000)
    ours: list[float] = []
    base: list[float] = []
    with platform({"audio_length": args.concurrency, "noop": args.concurrency}) as stack:
        platform_rate(stack, 20), baseline_rate(stack, 20)  # warm up both pools and this process's connections
        for run in range(1, repeats(args) + 1):
            ours.append(platform_rate(stack, n))
            base.append(baseline_rate(stack, n))
            print(f"run {run}: platform {ours[-1]:7.1f} jobs/s   baseline {base[-1]:7.1f} tasks/s", flush=True)
    rows = [row("small-job throughput", "jobs/s", ours, base, target=(">=", 0.8),
                platform_label=f"audio_length jobs, queued over HTTP, -c {args.concurrency}",
                baseline_label=f"no-op tasks, queued by apply_async, -c {args.concurrency}")]
    write_result(args, "throughput", "Small-job throughput", rows, method=__doc__.split("\n\n")[0].replace("\n", " "),
                 extra={"jobs": n, "concurrency": args.concurrency, "clients": CLIENTS})


if __name__ == "__main__":
    main()
