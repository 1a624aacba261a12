"""`make up`'s one try at the default YOLO weights, so that a connected machine detects out of the box.

When the configured detection weights are a published name (`yolov8n.pt`) found in no folder the worker
searches, and the network answers within a few seconds, `python -m workers.detection.weights` fetches them
into `MODELS_DIR`. It runs as a subprocess, so the launcher never imports torch or ultralytics. Offline,
this says so in one line and `up` goes on: the detection workers then report the model unavailable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

from common.catalog import BY_NAME
from common.settings import PROJECT_ROOT, Settings

PROBE_URL = "https://github.com"  # where ultralytics publishes its weights
PROBE_TIMEOUT_S = 5.0
FETCH_TIMEOUT_S = 120.0


def ensure_default_weights(settings: Settings, env: dict[str, str]) -> str | None:
    """One line on what was done, or None when there is nothing to fetch (no detection type, weights
    present, a path or a file format that `make models` makes)."""
    if "detection" not in BY_NAME:
        return None
    name = settings.types["detection"].model
    if Path(name).name != name or not name.endswith(".pt"):
        return None
    folders = [settings.models_dir, *_ultralytics_weights_dir(env)]
    if any((folder / name).is_file() for folder in folders):
        return None
    hint = f"detection jobs fail until {name} is in {settings.models_dir}/ (`make models` on a machine with internet)"
    if not _online():
        return f"{name} is missing and {PROBE_URL} does not answer (offline?): {hint}"
    argv = [sys.executable, "-m", "workers.detection.weights", name, "--folder", str(settings.models_dir)]
    try:
        done = subprocess.run(argv, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=FETCH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"{name} is missing and fetching it took over {FETCH_TIMEOUT_S:.0f} s: {hint}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{name} is missing and could not be fetched ({last}): {hint}"
    return f"{name} was missing: fetched it into {settings.models_dir}/"


def _online() -> bool:
    try:
        requests.head(PROBE_URL, timeout=PROBE_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException:
        return False
    return True


def _ultralytics_weights_dir(env: dict[str, str]) -> list[Path]:
    """ultralytics' own weights folder, from the settings file in the children's YOLO_CONFIG_DIR, if any."""
    config = env.get("YOLO_CONFIG_DIR")
    try:
        folder = json.loads(Path(config, "Ultralytics", "settings.json").read_text())["weights_dir"] if config else None
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [Path(folder)] if isinstance(folder, str) else []
