"""The bundled parallel client: submit many jobs at once, watch them, collect every result.

It speaks HTTP only (no `common`, `api` or `workers`) and learns the job types from `GET /v1/job-types`.
Run it with `python -m client --help`.
"""

from client.cli import main
from client.session import Api, ClientError
from client.sources import Job, Plan

__all__ = ["Api", "ClientError", "Job", "Plan", "main"]
