"""The deployment files, written from the catalog: Compose's worker services, the Kubernetes worker Deployments
and their KEDA ScaledObjects, one of each per job type.

    python -m launcher.deploy_files           # rewrite docker-compose.yaml, deploy/k8s/workers.yaml and keda.yaml
    python -m launcher.deploy_files --check   # exit 1, naming them, when the committed files differ

Each file is its template in deploy/templates/ with the `@@part@@` lines filled in: the per-type blocks and
Compose's list of the settings every platform service receives. Everything else is the template's text.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import settings_table
from common.broker import WEBHOOKS_QUEUE
from common.catalog import CATALOG, JobType
from common.settings import PROJECT_ROOT, Settings

WEBHOOK_CONCURRENCY = int(Settings.model_fields["webhook_concurrency"].default)

TEMPLATES = Path("deploy") / "templates"
OUTPUTS = (Path("docker-compose.yaml"), Path("deploy") / "k8s" / "workers.yaml", Path("deploy") / "k8s" / "keda.yaml")
PART = re.compile(r"^\s*@@([a-z-]+)@@$")

# Settings Compose does not pass through to every service alike: the template builds the service URLs and
# gives the LOG_* and WORKER_EVENTS defaults, the api and flower services set their own, the images set
# theirs, and some concern `make up` only.
NOT_SHARED = {
    "BROKER_URL", "REDIS_URL", "RABBITMQ_MANAGEMENT_URL", "LOG_FORMAT", "LOG_LEVEL", "WORKER_EVENTS",
    "API_KEYS", "RATE_LIMIT", "TRUSTED_PROXIES", "CLIENT_READ_TIMEOUT_S",
    "API_WORKERS", "API_THREADS", "API_HOST", "API_PORT",
    "FLOWER_HOST", "FLOWER_PORT", "FLOWER_USER", "FLOWER_PASSWORD",
    "RUN_DIR", "MODELS_DIR", "DETECTION_MODEL", "ALLOW_DOWNLOADS", "ALLOW_ANONYMOUS", "DEMO_PAGES_PORT",
}


@dataclass(frozen=True)
class Sizing:
    """What one worker pod asks Kubernetes for, and how many queued jobs KEDA gives each pod."""

    cpu: str
    memory: str
    memory_limit: str
    jobs_per_replica: int
    max_replicas: int


SIZING_BY_IMAGE = {
    "worker-ml": Sizing("1", "1Gi", "2Gi", jobs_per_replica=8, max_replicas=6),
    "worker-detection": Sizing("2", "2Gi", "3Gi", jobs_per_replica=2, max_replicas=8),
    "worker-light": Sizing("500m", "512Mi", "1Gi", jobs_per_replica=10, max_replicas=6),
}
SIZING_BY_TYPE = {"scrape": Sizing("250m", "256Mi", "512Mi", jobs_per_replica=20, max_replicas=6)}  # waits on I/O

def image(job_type: JobType) -> str:
    """The Dockerfile target the type's worker runs in."""
    return job_type.image


def default_concurrency(job_type: JobType) -> int:
    """The pool size when `<TYPE>_CONCURRENCY` is unset: the declaration's default."""
    return int(job_type.settings_model.model_fields["concurrency"].default)


def shared_settings() -> list[str]:
    """Settings Compose passes from the shell or .env to every platform service, unset when unset there: the
    global ones, each type's, and the former names a type still reads (an old .env keeps working)."""
    names = [row.variable for row in settings_table.rows()]
    formerly = [old for t in CATALOG for old in getattr(t.settings_model, "env_aliases", {})]
    return [name for name in [*names, *formerly] if name not in NOT_SHARED]


def sizing(job_type: JobType) -> Sizing:
    return SIZING_BY_TYPE.get(job_type.name) or SIZING_BY_IMAGE[image(job_type)]


def k8s_name(job_type: JobType) -> str:
    return f"{job_type.name.replace('_', '-')}-worker"


def compose_service(t: JobType) -> str:
    target, brought = image(t), t.model.brought if t.model is not None else None
    models_dir = ", MODELS_DIR: /models" if brought else ""
    lines = [f"  {t.name}:", "    <<: *worker",
             f"    build: {{context: ., dockerfile: deploy/docker/Dockerfile, target: {target}}}",
             f'    image: "ml-platform/{target}:${{TAG:-latest}}"',
             f"    environment: {{<<: *platform-env, WORKER_TYPE: {t.name}{models_dir}}}"]
    if brought:
        lines.append(f'    volumes: ["./models:/models:ro"]  # {brought}')
    lines += [f'    command: ["celery", "-A", "workers.celery_app", "worker", "-Q", "{t.queue}", "-n", "{t.name}@%h",',
              f'              "-c", "${{{t.name.upper()}_CONCURRENCY:-{default_concurrency(t)}}}", '
              '"--loglevel", "${LOG_LEVEL:-INFO}"]']
    return "\n".join(lines)


def webhooks_service() -> str:
    """The completion webhooks' pool (`workers.webhook_delivery`): light, waits on receivers."""
    return "\n".join([
        "  webhooks:", "    <<: *worker",
        "    build: {context: ., dockerfile: deploy/docker/Dockerfile, target: worker-light}",
        '    image: "ml-platform/worker-light:${TAG:-latest}"',
        "    environment: {<<: *platform-env, WORKER_TYPE: webhooks}",
        f'    command: ["celery", "-A", "workers.celery_app", "worker", "-Q", "{WEBHOOKS_QUEUE}", "-n", "webhooks@%h",',
        f'              "-c", "${{WEBHOOK_CONCURRENCY:-{WEBHOOK_CONCURRENCY}}}", '
        '"--loglevel", "${LOG_LEVEL:-INFO}"]'])


def webhooks_deployment() -> str:
    return _deployment("webhooks-worker", "worker-light", WEBHOOKS_QUEUE, "webhooks", WEBHOOK_CONCURRENCY,
                       SIZING_BY_TYPE["scrape"])


def deployment(t: JobType) -> str:
    return _deployment(k8s_name(t), image(t), t.queue, t.name, default_concurrency(t), sizing(t))


def _deployment(name: str, target: str, queue: str, node: str, concurrency: int, size: Sizing) -> str:
    labels = f"{{app.kubernetes.io/part-of: ml-platform, app.kubernetes.io/component: {name}}}"
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {labels}
spec:
  replicas: 1
  selector:
    matchLabels: {{app.kubernetes.io/component: {name}}}
  template:
    metadata:
      labels: {labels}
    spec:
      terminationGracePeriodSeconds: 180
      securityContext: {{runAsNonRoot: true, runAsUser: 10001}}
      containers:
        - name: worker
          image: ml-platform/{target}:latest
          command: ["celery", "-A", "workers.celery_app", "worker", "-Q", "{queue}", "-n", "{node}@%h", \
"-c", "{concurrency}"]
          envFrom:
            - configMapRef: {{name: platform-config}}
            - secretRef: {{name: platform-secrets}}
          resources:
            requests: {{cpu: "{size.cpu}", memory: {size.memory}}}
            limits: {{memory: {size.memory_limit}}}"""


def scaled_object(t: JobType) -> str:
    name, size = k8s_name(t), sizing(t)
    return f"""---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {name}
spec:
  scaleTargetRef: {{name: {name}}}
  minReplicaCount: 1
  maxReplicaCount: {size.max_replicas}
  pollingInterval: 10
  cooldownPeriod: 300
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:  # one pod a minute at most, after 5 min of a shorter queue
          stabilizationWindowSeconds: 300
          policies: [{{type: Pods, value: 1, periodSeconds: 60}}]
  triggers:
    - type: rabbitmq
      metadata:
        protocol: http
        mode: QueueLength
        value: "{size.jobs_per_replica}"  # jobs per replica
        queueName: {t.queue}
        vhostName: "/"
      authenticationRef: {{name: rabbitmq-management}}"""


def parts(catalog: tuple[JobType, ...] = CATALOG) -> dict[str, str]:
    def each(render: Callable[[JobType], str], joiner: str = "\n") -> str:
        return joiner.join(render(t) for t in catalog)

    return {"platform-env": "\n".join(f"  {name}:" for name in shared_settings()),
            "worker-services": each(compose_service, "\n\n") + "\n\n" + webhooks_service(),
            "deployments": each(deployment) + "\n" + webhooks_deployment(),
            "scaled-objects": each(scaled_object)}


def fill(template: str, values: dict[str, str]) -> str:
    """The template with each line that is only `@@part@@` replaced by that part."""
    lines = []
    for line in template.splitlines():
        found = PART.match(line)
        lines.append(values[found[1]] if found else line)
    return "\n".join(lines) + "\n"


def render(root: Path = PROJECT_ROOT) -> dict[Path, str]:
    """Each output file (relative to the checkout) → its text."""
    values = parts()
    return {out: f"# Written by `make deploy-files` from {template_of(out)} and the catalog\n"
                 "# (src/launcher/deploy_files.py): edit those, not this file.\n"
                 + fill((root / template_of(out)).read_text(), values) for out in OUTPUTS}


def template_of(output: Path) -> Path:
    return TEMPLATES / (output.relative_to("deploy") if output.parts[0] == "deploy" else output)


def stale(root: Path = PROJECT_ROOT) -> list[Path]:
    """The output files whose committed text is not what the catalog and templates give."""
    return [out for out, text in render(root).items()
            if not (root / out).is_file() or (root / out).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launcher.deploy_files", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    outdated = stale()
    if args.check:
        for out in outdated:
            print(f"{out} differs from what the catalog gives: run `make deploy-files`", file=sys.stderr)
        return 1 if outdated else 0
    for out, text in render().items():
        if out in outdated:
            (PROJECT_ROOT / out).write_text(text)
            print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
