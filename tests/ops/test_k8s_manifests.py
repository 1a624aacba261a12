"""deploy/k8s: valid YAML, one worker Deployment per catalog queue, each scaled by a KEDA ScaledObject
on that same queue, with a grace period longer than the longest job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from common.broker import WEBHOOKS_QUEUE
from common.catalog import CATALOG
from launcher.commands import longest_job_s

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def queue_of(deployment: dict[str, Any]) -> str | None:
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    return command[command.index("-Q") + 1] if "-Q" in command else None


def test_every_manifest_is_valid_yaml_with_a_kind() -> None:
    docs = documents()
    assert docs and all({"apiVersion", "kind"} <= set(d) for d in docs)
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_one_worker_deployment_per_queue_that_finishes_its_job_on_scale_down() -> None:
    by_queue = {queue_of(d): d for d in of_kind("Deployment").values() if queue_of(d)}
    assert set(by_queue) == {t.queue for t in CATALOG} | {WEBHOOKS_QUEUE}
    for queue, deployment in by_queue.items():
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > longest_job_s(), queue


def test_keda_scales_each_worker_on_its_own_queue() -> None:
    deployments = of_kind("Deployment")
    scaled = of_kind("ScaledObject")
    auth = of_kind("TriggerAuthentication")
    queues = set()
    for name, obj in scaled.items():
        target = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "rabbitmq" and trigger["metadata"]["mode"] == "QueueLength", name
        assert trigger["metadata"]["queueName"] == queue_of(target), name
        assert trigger["authenticationRef"]["name"] in auth, name
        assert int(trigger["metadata"]["value"]) >= 1 and obj["spec"]["minReplicaCount"] >= 1, name
        queues.add(trigger["metadata"]["queueName"])
    assert queues == {t.queue for t in CATALOG}


def secret_refs(deployment: dict[str, Any]) -> dict[str, set[str]]:
    """Secret name → the variables taken from it (`*` for all of them, by envFrom), over every container."""
    refs: dict[str, set[str]] = {}
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                refs.setdefault(source["secretRef"]["name"], set()).add("*")
        for variable in container.get("env", []):
            key_ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if key_ref:
                assert not key_ref.get("optional", False), variable
                refs.setdefault(key_ref["name"], set()).add(variable["name"])
    return refs


def test_the_api_takes_its_keys_and_settings_from_a_secret_no_other_pod_reads() -> None:
    deployments = of_kind("Deployment")
    api = secret_refs(deployments["api"])
    holding_keys = [name for name, variables in api.items() if "API_KEYS" in variables]
    assert holding_keys, "API_KEYS must come from a Secret (secretKeyRef), required"
    (secret,) = holding_keys
    assert "*" in api[secret], "RATE_LIMIT and the other API settings come from the same Secret (envFrom)"
    for config_map in of_kind("ConfigMap").values():
        assert not {"API_KEYS", "RATE_LIMIT"} & set(config_map.get("data", {})), "API settings are not in a ConfigMap"
    for name, deployment in deployments.items():
        if name != "api":
            assert secret not in secret_refs(deployment), f"{name} reads the API's Secret {secret}"
            containers = deployment["spec"]["template"]["spec"]["containers"]
            assert not [v for c in containers for v in c.get("env", []) if v["name"] == "API_KEYS"], name


def test_api_probes_keep_pods_serving_through_a_broker_outage_and_a_busy_moment() -> None:
    (api,) = of_kind("Deployment")["api"]["spec"]["template"]["spec"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready?scope=api"  # the store, not the broker
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["livenessProbe"]["timeoutSeconds"] >= 5 and api["livenessProbe"]["failureThreshold"] >= 3
