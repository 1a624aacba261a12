"""The platform's one command: `python -m launcher up` (what `make up` runs).

`services` makes RabbitMQ (with its management API) and Redis ready, starting private ones under
`run/` when nothing answers at the configured URLs. `up` does that, then runs the API, one Celery
worker pool per catalog entry, Flower and the demo's pages (`demo_pages`, the one local address its
jobs may fetch) as child processes, interleaves their output and stops them all on Ctrl-C or SIGTERM.
It refuses first what would expose the platform (`guards`).
"""

from launcher.services import ServiceError, ensure_services, stop_private_services
from launcher.up import run_up

__all__ = ["ServiceError", "ensure_services", "run_up", "stop_private_services"]
