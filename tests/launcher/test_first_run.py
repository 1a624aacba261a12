"""An honest first run: `make up` tries once to fetch the default YOLO weights (one line when it cannot), and
every process it starts keeps ultralytics' settings in the checkout's own run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.settings import Settings
from launcher import first_weights
from launcher.commands import base_env
from support.processes import ROOT
from support.web import Site

FIRST_WEIGHTS = ("from common.settings import get_settings\n"
                 "from launcher.commands import base_env\n"
                 "from launcher.first_weights import ensure_default_weights\n"
                 "print(ensure_default_weights(get_settings(), base_env()))\n")


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter, as the launcher runs: `src` on the path, the operator's env plus `env`."""
    full = {k: v for k, v in os.environ.items() if k not in ("YOLO_CONFIG_DIR", "DETECTION_MODEL")}
    full.update(PYTHONPATH=str(ROOT / "src"), **env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=300, check=False)


def test_missing_weights_offline_are_one_line_and_no_traceback(tmp_path: Path) -> None:
    """This machine has no internet: the one try fails within its short timeout and says so in one line."""
    done = python(FIRST_WEIGHTS, MODELS_DIR=str(tmp_path / "models"), RUN_DIR=str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    [line] = done.stdout.splitlines()
    assert line.startswith("yolov8n.pt is missing and "), line
    assert line.endswith(f"detection jobs fail until yolov8n.pt is in {tmp_path / 'models'}/ (`make models` on a "
                         "machine with internet)")
    assert not (tmp_path / "models" / "yolov8n.pt").exists()


def test_a_network_that_answers_but_serves_no_weights_is_one_line_too(tmp_path: Path, site: Site,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capfd: pytest.CaptureFixture[str]) -> None:
    """The probe answers (a local page stands in for github.com), so `python -m workers.detection.weights` runs,
    and fails offline: its output stays in the pipe, and one line says what happened."""
    monkeypatch.setattr(first_weights, "PROBE_URL", site.add("/probe", "ok"))
    env = {**base_env(), "YOLO_CONFIG_DIR": str(tmp_path / "run")}
    line = first_weights.ensure_default_weights(Settings(models_dir=tmp_path / "models"), env)
    assert line is not None and "\n" not in line
    assert line.startswith("yolov8n.pt is missing and could not be fetched (yolov8n.pt could not be downloaded "), line
    assert "Traceback" not in line and line.endswith("(`make models` on a machine with internet)")
    assert capfd.readouterr() == ("", "")  # the fetch's own output went nowhere else


def test_present_weights_are_not_fetched_again(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "yolov8n.pt").write_bytes(b"weights")
    done = python(FIRST_WEIGHTS, MODELS_DIR=str(tmp_path / "models"), RUN_DIR=str(tmp_path / "run"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "None\n", "")
    done = python(FIRST_WEIGHTS, MODELS_DIR=str(tmp_path / "models"), DETECTION_MODEL="yolov8n.onnx")
    assert (done.returncode, done.stdout) == (0, "None\n")  # `make models` exports it; nothing to fetch


def test_workers_keep_ultralytics_settings_under_the_run_folder(tmp_path: Path) -> None:
    """Each worker spec `make up` runs gets YOLO_CONFIG_DIR=RUN_DIR, and ultralytics, started with that
    environment, writes its settings (and the weights folder it names in messages) there, not in $HOME."""
    code = ("import json, subprocess, sys\n"
            "from common.settings import get_settings\n"
            "from launcher.commands import flower_login, plan\n"
            "specs = plan(get_settings(), flower_login(get_settings()))\n"
            "print(json.dumps({s.name: s.env.get('YOLO_CONFIG_DIR') for s in specs}))\n"
            "[detection] = [s for s in specs if s.name == 'detection']\n"
            "probe = 'from ultralytics.utils import SETTINGS_FILE; print(SETTINGS_FILE)'\n"
            "print(subprocess.run([sys.executable, '-c', probe], env=detection.env, capture_output=True, text=True,"
            " check=True).stdout.strip().splitlines()[-1])\n")
    done = python(code, RUN_DIR=str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    dirs, settings_file = done.stdout.splitlines()[-2:]
    assert set(json.loads(dirs).values()) == {str(tmp_path / "run")}
    assert Path(settings_file) == tmp_path / "run" / "Ultralytics" / "settings.json"
    assert Path(settings_file).is_file()
