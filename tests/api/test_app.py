"""The API process stays light: it publishes by task name and never loads a model library."""

import json
import subprocess
import sys

from support.processes import ROOT


def test_api_imports_no_worker_or_model_library() -> None:
    code = ("import sys, json; import api.wsgi; "
            "print(json.dumps([m for m in ('torch', 'ultralytics', 'librosa', 'transformers', 'workers') "
            "if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src")},
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_catalog_names_one_identifier_everywhere(client) -> None:
    types = client.get("/v1/job-types").get_json()["job_types"]
    assert {t["type"] for t in types} == {"sentiment", "detection", "audio_length", "scrape"}
    for t in types:
        assert t["queue"] == t["type"]
        assert t["task"] == f"{t['type']}.run"
        assert t["url"] == f"/v1/jobs/{t['type']}"
        assert (ROOT / "src" / "workers" / t["type"] / "task.py").exists()
        assert (ROOT / "src" / "workers" / t["type"] / "core.py").exists()
