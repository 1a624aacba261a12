"""Celery workers: one folder per job type, each with a pure `core.py` and a thin `task.py`."""
