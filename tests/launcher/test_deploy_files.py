"""`make deploy-files`: the committed Compose and Kubernetes files are exactly what the catalog and the templates
give, and the generated Compose file is one docker-compose accepts."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from common.catalog import CATALOG
from launcher import deploy_files
from launcher.deploy_files import OUTPUTS, TEMPLATES, render, stale

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_files_are_the_generated_ones() -> None:
    for out, text in render().items():
        assert (ROOT / out).read_text() == text, f"{out} is stale: run `make deploy-files`"
    done = subprocess.run([sys.executable, "-m", "launcher.deploy_files", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, check=False)
    assert done.returncode == 0, done.stderr


def test_a_hand_edit_or_a_new_type_makes_check_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(ROOT / TEMPLATES, tmp_path / TEMPLATES)
    for out, text in render().items():
        (tmp_path / out).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / out).write_text(text)
    assert stale(tmp_path) == []
    workers = tmp_path / OUTPUTS[1]
    workers.write_text(workers.read_text().replace('"-c", "2"', '"-c", "3"', 1))
    assert stale(tmp_path) == [OUTPUTS[1]]
    extra = dataclasses.replace(CATALOG[0], name="audio_length_two")
    monkeypatch.setattr(deploy_files, "CATALOG", (*CATALOG, extra))
    monkeypatch.setattr(deploy_files, "image", lambda t: "worker-light")
    assert set(stale(tmp_path)) == set(OUTPUTS)


def test_every_type_gets_a_service_a_deployment_and_a_scaled_object() -> None:
    files = render()
    services = yaml.safe_load(files[OUTPUTS[0]])["services"]
    k8s = [d for out in OUTPUTS[1:] for d in yaml.safe_load_all(files[out]) if d]
    deployments = {d["metadata"]["name"] for d in k8s if d["kind"] == "Deployment"}
    scaled_queues = {d["spec"]["triggers"][0]["metadata"]["queueName"] for d in k8s if d["kind"] == "ScaledObject"}
    for t in CATALOG:
        command = services[t.name]["command"]
        assert command[command.index("-Q") + 1] == t.queue
        assert f"{t.name.replace('_', '-')}-worker" in deployments
        assert t.queue in scaled_queues
    command = services["webhooks"]["command"]
    assert command[command.index("-Q") + 1] == "webhooks" and "webhooks-worker" in deployments


def test_docker_compose_accepts_the_generated_file(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: `apt-get install docker-compose` (.ci/run does it)",
                    pytrace=False)
    generated = tmp_path / "docker-compose.yaml"
    generated.write_text(render()[OUTPUTS[0]])
    (tmp_path / "test.env").write_text("RABBITMQ_PASSWORD=rabbit-Secret-1\nREDIS_PASSWORD=redis-Secret-2\n")
    done = subprocess.run([binary, "-f", str(generated), "--project-directory", str(ROOT), "--env-file",
                           str(tmp_path / "test.env"), "config", "--services"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}, check=False)
    assert done.returncode == 0, done.stderr
    assert {t.name for t in CATALOG} <= set(done.stdout.split())
