"""The API process stays light: it publishes by task name and never loads a model library."""

import json
import subprocess
import sys

from support.processes import ROOT

TYPES = {spec.parent.name for spec in (ROOT / "src" / "workers").glob("*/spec.py")}  # each type's folder


def test_api_imports_no_worker_or_model_library() -> None:
    """Of the workers, the API loads the job types' declarations (`workers.<type>.spec`) and nothing else:
    no core, no task, no Celery worker app, no model library."""
    code = ("import sys, json; import api.wsgi; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'ultralytics', 'librosa', 'transformers', 'workers'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src")},
                         capture_output=True, text=True, timeout=60, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    declarations = {"workers"} | {f"workers.{t}" for t in TYPES} | {f"workers.{t}.spec" for t in TYPES}
    assert set(loaded) == declarations


def test_catalog_names_one_identifier_everywhere(client) -> None:
    types = client.get("/v1/job-types").get_json()["job_types"]
    assert {t["type"] for t in types} == TYPES >= {"sentiment", "detection", "audio_length", "scrape"}
    for t in types:
        assert t["queue"] == t["type"]
        assert t["task"] == f"{t['type']}.run"
        assert t["url"] == f"/v1/jobs/{t['type']}"
        assert (ROOT / "src" / "workers" / t["type"] / "task.py").exists()
        assert (ROOT / "src" / "workers" / t["type"] / "core.py").exists()
