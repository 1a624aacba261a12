"""Each worker child's memory is bounded while a job runs, not only between jobs.

Celery's `worker_max_memory_per_child` replaces a child only after a job, by its peak RSS. A job that
grows without end (a page of millions of tiny tags) would meanwhile take the machine, and the kernel's
OOM killer would end the child: the job is delivered again and again until it is parked as poison.
So each child also gets a hard cap, `<TYPE>_MAX_MEMORY_MB`, as its data limit (`RLIMIT_DATA`: heap and
private writable mappings; shared libraries and torch's mapped weights files are not counted, unlike
`RLIMIT_AS`, which torch's and OpenMP's address-space reservations would exhaust). An allocation past it
fails inside the job: Python raises `MemoryError` (torch a `RuntimeError` "can't allocate memory"), which
`JobTask` turns into `OutOfMemory`, in the body or in a hook (starting it, storing its result): the job ends
FAILURE `out_of_memory`, its child is replaced after it (its peak passed `REPLACE_AT`), and no other job is
touched (each child runs one job at a time).
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Iterable

from common.errors import PlatformError
from common.settings import Settings

log = logging.getLogger(__name__)
REPLACE_AT = 0.75  # a child whose peak RSS passed this share of its cap is replaced after its job
_NO_MEMORY = ("can't allocate memory", "cannot allocate memory")  # torch's CPU allocator, errno ENOMEM


def cap_mb(settings: Settings, queues: Iterable[str]) -> int:
    """The cap of a worker consuming `queues` (the largest of theirs; 0: none)."""
    caps = (settings.types[queue].max_memory_mb for queue in queues if queue in settings.types)
    return max(caps, default=0)


def replace_after_kib(cap: int) -> int:
    """Celery's `worker_max_memory_per_child` (KiB) for a cap in MB."""
    return int(cap * 1024 * REPLACE_AT)


def limit_this_process(cap: int) -> None:
    """Cap this process's data segment at `cap` MB (never above a limit already in force)."""
    if cap <= 0:
        return
    wanted = cap * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (wanted, wanted))


def limit_mb() -> int | None:
    """The data cap in force in this process, in MB (None: none)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_DATA)
    return None if soft == resource.RLIM_INFINITY else soft // (1024 * 1024)


def is_out_of_memory(exc: BaseException) -> bool:
    """A `MemoryError`, torch's "can't allocate memory", or an error raised while handling one (redis-py
    reports a reply it ran out of memory reading as `ValueError: I/O operation on closed file`). An error of
    ours (`PlatformError`) is the job's own word and is left as it is."""
    seen: BaseException | None = exc
    for _ in range(10):  # a chain is short; a looped one ends here
        if seen is None or isinstance(seen, PlatformError):
            return False
        if isinstance(seen, MemoryError) or (isinstance(seen, RuntimeError) and any(
                words in str(seen).lower() for words in _NO_MEMORY)):
            return True
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return False


class OutOfMemory(PlatformError):
    code = "out_of_memory"

    def __init__(self, job_type: str, doing: str = "", cap: int | None = None) -> None:
        """`doing`: what the job was doing past the cap outside its body ("to store its result"); `cap`: the
        child's, in MB, when told from its worker's main process (by default this process's)."""
        cap = cap or limit_mb()
        limit = f"the {cap} MB its worker process may use ({job_type.upper()}_MAX_MEMORY_MB)" if cap else \
            "the memory its worker process could get"
        doing = f" {doing}" if doing else ""
        super().__init__(f"The job needed more memory than {limit}{doing} and was stopped; "
                         f"other jobs were not affected.")


__all__ = ["REPLACE_AT", "OutOfMemory", "cap_mb", "is_out_of_memory", "limit_mb", "limit_this_process",
           "replace_after_kib"]
