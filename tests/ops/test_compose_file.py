"""docker-compose.yaml, checked offline: Debian's docker-compose 1.29 validates and resolves it, then
each service is held to the deployment rules (images, healthchecks, grace periods, ports, credentials)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.catalog import CATALOG
from common.settings_table import rows
from launcher.commands import longest_job_s

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
SECRETS = {"RABBITMQ_PASSWORD": "rabbit-Secret-1", "REDIS_PASSWORD": "redis-Secret-2"}
NO_TORCH_TARGETS = {"api", "worker-light"}
HEAVY = ("torch", "torchvision", "ultralytics", "ultralytics-opencv-headless", "transformers")
# Settings Compose does not pass the same way to every service: each on its own service, set by the images,
# or meaningful to `make up` only. Every other setting reaches every platform service.
API_ONLY = {"API_KEYS", "RATE_LIMIT", "TRUSTED_PROXIES", "CLIENT_READ_TIMEOUT_S", "API_WORKERS",
            "API_THREADS"}
PER_SERVICE = {"API_HOST", "API_PORT", "FLOWER_HOST", "FLOWER_PORT", "FLOWER_USER", "FLOWER_PASSWORD"}
SET_BY_IMAGES = {"RUN_DIR", "MODELS_DIR", "DETECTION_MODEL", "ALLOW_DOWNLOADS"}
MAKE_UP_ONLY = {"ALLOW_ANONYMOUS", "DEMO_PAGES_PORT"}
BUILT_HERE = {"BROKER_URL", "REDIS_URL", "RABBITMQ_MANAGEMENT_URL"}
COMPOSE_DEFAULTS = {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "WORKER_EVENTS": "false", "API_WORKERS": "2"}


def setting_names() -> set[str]:
    return {row.variable for row in rows()}


def shared_settings() -> set[str]:
    return setting_names() - API_ONLY - PER_SERVICE - SET_BY_IMAGES - MAKE_UP_ONLY - BUILT_HERE


def compose(env_file: Path | None, project: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`docker-compose config`: with `env_file`, or with `project` as the project folder (and its `.env`)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: `apt-get install docker-compose` (.ci/run does it)",
                    pytrace=False)
    args = [binary, "-f", str(ROOT / "docker-compose.yaml"), *(["--env-file", str(env_file)] if env_file else []),
            *(["--project-directory", str(project)] if project else []), "config"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, check=False)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env_file = tmp_path_factory.mktemp("compose") / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    done = compose(env_file)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)  # type: ignore[no-any-return]


def stages() -> set[str]:
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE.read_text(), flags=re.M | re.I))


def seconds(duration: str) -> int:
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, duration
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target → source, from compose 1.29's short syntax `source:target[:mode]`."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def host_ips(service: dict[str, Any]) -> list[str]:
    """From compose 1.29's short syntax `ip:host_port:container_port/proto`."""
    return [p.split(":")[0] if p.count(":") == 2 else "0.0.0.0" for p in service.get("ports", [])]


def workers(resolved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in resolved["services"].items() if "worker" in s.get("command", [])}


def test_credentials_are_required_and_never_guest(resolved: dict[str, Any]) -> None:
    done = compose(None)
    assert done.returncode != 0 and "RABBITMQ_PASSWORD" in done.stderr
    assert "guest" not in yaml.safe_dump(resolved)


def test_every_service_has_a_dockerfile_target_or_a_pinned_image(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        build = service.get("build")
        if build:
            assert (Path(build["context"]) / build["dockerfile"]).resolve() == DOCKERFILE, name
            assert build["target"] in stages(), f"{name}: no stage {build['target']} in {DOCKERFILE}"
        else:
            image = service["image"]
            assert re.fullmatch(r"[a-z0-9./-]+:[\w.-]+", image) and not image.endswith(":latest"), name
    assert (ROOT / "deploy" / "docker" / "Dockerfile.dockerignore").exists()


def test_one_worker_service_per_catalog_queue_and_one_for_webhooks(resolved: dict[str, Any]) -> None:
    found = workers(resolved)
    assert set(found) == {t.name for t in CATALOG} | {"webhooks"}
    for name, queue in [*((t.name, t.queue) for t in CATALOG), ("webhooks", "webhooks")]:
        command = found[name]["command"]
        assert command[command.index("-Q") + 1] == queue
        assert found[name]["environment"]["WORKER_TYPE"] == name  # its healthcheck's ping
    assert resolved["services"]["webhooks"]["build"]["target"] in NO_TORCH_TARGETS


def test_the_api_and_light_workers_carry_no_torch(resolved: dict[str, Any]) -> None:
    targets = {name: s["build"]["target"] for name, s in resolved["services"].items() if s.get("build")}
    for name in ("api", "flower", "client", "audio_length", "scrape"):
        assert targets[name] in NO_TORCH_TARGETS, name
    pipfile = tomllib.loads((ROOT / "Pipfile").read_text())
    for category in ("packages", "workers"):
        assert not set(pipfile[category]) & set(HEAVY), category
    text = DOCKERFILE.read_text()
    assert 'requirements --categories "packages" > api.txt' in text
    assert 'requirements --categories "packages workers" > light.txt' in text


def test_health_order_restarts_and_grace(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, service in services.items():
        if "client" in service.get("profiles", []):
            continue
        assert "healthcheck" in service and service.get("restart") == "unless-stopped", name
        for dependency, how in service.get("depends_on", {}).items():
            assert how["condition"] == "service_healthy", (name, dependency)
    for name, service in workers(resolved).items():
        assert set(service["depends_on"]) == {"rabbitmq", "redis"}
        assert seconds(service["stop_grace_period"]) > longest_job_s(), name
        assert service.get("init") is True, name
    assert services["client"]["profiles"] == ["client"]


def test_no_broker_or_redis_port_and_loopback_by_default(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert "ports" not in services["rabbitmq"] and "ports" not in services["redis"]
    for name in ("api", "flower"):
        assert host_ips(services[name]) == ["127.0.0.1"], name


def test_durable_broker_and_redis_that_never_evicts(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    rabbit_mounts = mounts(services["rabbitmq"])
    assert rabbit_mounts["/var/lib/rabbitmq"] in resolved["volumes"]
    config = Path(rabbit_mounts["/etc/rabbitmq/conf.d/90-platform.conf"])
    assert config == ROOT / "deploy" / "rabbitmq" / "rabbitmq.conf"
    timeout_ms = int(re.search(r"^consumer_timeout\s*=\s*(\d+)", config.read_text(), flags=re.M)[1])  # type: ignore[index]
    assert timeout_ms > 2 * longest_job_s() * 1000
    assert "management" in services["rabbitmq"]["image"]
    redis_command = " ".join(services["redis"]["command"])
    for option in ("--appendonly yes", "--maxmemory-policy noeviction", "--maxmemory ", "requirepass"):
        assert option in redis_command, option
    # the password reaches redis-server on stdin, not in its argv, which `ps` on the host shows
    assert "redis-server - " in redis_command and "--requirepass" not in redis_command
    assert SECRETS["REDIS_PASSWORD"] not in redis_command
    assert mounts(services["redis"]) == {"/data": "redis-data"} and "redis-data" in resolved["volumes"]


def test_flower_runs_as_make_up_runs_it(resolved: dict[str, Any]) -> None:
    flower = resolved["services"]["flower"]
    assert flower["command"] == ["python", "-m", "launcher", "flower"]
    assert flower["environment"]["RABBITMQ_MANAGEMENT_URL"].endswith("@rabbitmq:15672/api/")


def test_every_setting_in_dot_env_reaches_the_services_and_api_keys_only_the_api(tmp_path: Path) -> None:
    project = tmp_path / "project"  # the project folder, so Compose reads its `.env`, as `cp .env.example .env` does
    project.mkdir()
    from_dotenv = {name: f"from-env-{name.lower()}" for name in shared_settings() | API_ONLY}
    from_dotenv.update(API_KEYS="k-one,k-two", RATE_LIMIT="7/second", API_KEY="k-one")
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in {**SECRETS, **from_dotenv}.items()))
    done = compose(None, project)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    services = resolved["services"]
    api = services["api"]["environment"]
    assert (api["API_KEYS"], api["RATE_LIMIT"]) == ("k-one,k-two", "7/second")
    assert {name: api.get(name) for name in shared_settings() | API_ONLY} == {
        name: from_dotenv[name] for name in shared_settings() | API_ONLY}
    for name in [*workers(resolved), "flower"]:
        environment = services[name]["environment"]
        assert {n: environment.get(n) for n in shared_settings()} == {n: from_dotenv[n] for n in shared_settings()}
        assert not set(environment) & API_ONLY, name
    assert services["client"]["environment"]["API_KEY"] == "k-one"


def test_a_setting_not_in_dot_env_keeps_its_documented_default(resolved: dict[str, Any]) -> None:
    api = resolved["services"]["api"]["environment"]
    unset = {name for name in shared_settings() | API_ONLY if name not in COMPOSE_DEFAULTS}
    assert {name: api.get(name, "missing") for name in unset} == dict.fromkeys(unset)  # null: not set, the default
    assert {name: api[name] for name in COMPOSE_DEFAULTS} == COMPOSE_DEFAULTS
