"""The catalog of job types: the only contract between the API and the workers.

Each job type declares itself once, in `src/workers/<type>/spec.py` (`JOB_TYPE = JobType(...)`); the
catalog is the list of those declarations, found by walking the `workers` package (as Celery's
`autodiscover_tasks` finds `tasks` modules), never by naming them. A type's identifier is spelled the
same as its folder, its queue, its task name prefix (`<type>.run`), its URL segment (`/v1/jobs/<type>`)
and the prefix of its settings (`<TYPE>_CONCURRENCY`, ...).

A spec is light: pydantic, the stdlib and `common` (PIL at most, inside functions); the API imports
every spec and nothing else of the workers.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import redis

    from common.settings import Settings

MAX_TIME_LIMIT_S = 25 * 60
HARD_LIMIT_GRACE_S = 15  # after the soft limit, for the job to clean up
SPEC_PACKAGE = "workers"


class TypeSettings(BaseModel):
    """The settings every job type has, read from `<TYPE>_<FIELD>`; a spec subclasses it to add its own
    fields and to change these defaults. `{type}` in a description is the type's name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    concurrency: int = Field(default=2, ge=1, description="processes of each {type} worker pool")
    time_limit_s: int = Field(default=120, gt=0, lt=MAX_TIME_LIMIT_S, description=(
        "soft time limit of each {type} job in seconds (hard limit 15 s later); under 1500 (RabbitMQ's consumer "
        "timeout is 30 min)"))
    max_memory_mb: int = Field(default=1024, ge=0, description=(
        "memory cap of each {type} worker child (MB, its data segment): a job that needs more ends FAILURE "
        "`out_of_memory`; a child whose peak passed 3/4 of it is replaced after its job (0: none)"))
    prefetch: int = Field(default=1, ge=1, description="messages each {type} worker process reserves ahead "
                                                       "(Celery's prefetch multiplier)")
    batch_max: int = Field(default=1, ge=1, le=256, description=(
        "most {type} jobs a worker process runs in one call of its engine, each still acked on its own "
        "(docs/batching.md); 1: one job at a time. Above 1 only for a type whose engine takes batches"))
    batch_wait_ms: int = Field(default=5, ge=0, le=10_000, description=(
        "with {type} batching on, how long a worker process holding one job waits for more before it runs them"))


@dataclass(frozen=True)
class Upload:
    """A file sent as one multipart field, checked by content before it is queued."""

    field: str
    sniff: Callable[[bytes], str | None]
    kinds: str
    max_bytes: Callable[[Any], int]  # of the type's settings
    options_model: type[BaseModel] | None = None
    check: Callable[[bytes, Any], None] | None = None  # the data and the type's settings: pixels, duration


@dataclass(frozen=True)
class Model:
    """The model a type's workers load: which of its settings names it (None: a library, no file), and
    the one sentence that says how to make it available (`/ready`, a submit's 503, the demo's skip)."""

    install_hint: str
    setting: str | None = "model"
    brought: str | None = None  # what an operator may bring as a folder in MODELS_DIR (Compose mounts ./models)


class Renderer(Protocol):
    """What draws an artifact, imported by the API only when one is asked for."""

    def cached(self, r: redis.Redis, job_id: str) -> bytes | None: ...

    def draw(self, r: redis.Redis, job_id: str, result: dict[str, Any], settings: Any) -> bytes: ...


@dataclass(frozen=True)
class Artifact:
    """A file made from a successful job on request: `GET /v1/jobs/<id>/<name>`."""

    name: str
    media_type: str
    description: str
    renderer: str  # "module:attribute", a `Renderer`
    max_at_once_setting: str  # the type setting bounding renderings at once per API process
    missing_code: str  # the error code when a job has none (not succeeded, or another type)
    operation_id: str  # the OpenAPI `operationId` of its GET, a name for generated clients: `getAnnotatedImage`

    def load_renderer(self) -> Renderer:
        module, _, attribute = self.renderer.partition(":")
        renderer: Renderer = getattr(importlib.import_module(module), attribute)
        return renderer


@dataclass(frozen=True)
class JobType:
    name: str
    summary: str
    settings_model: type[TypeSettings]
    result_model: type[BaseModel]
    image: str  # the Dockerfile target its workers run in
    input_model: type[BaseModel] | None = None
    input_factory: Callable[[Any], type[BaseModel]] | None = None  # from the type's settings: limits in the schema
    upload: Upload | None = None
    model: Model | None = None
    artifacts: tuple[Artifact, ...] = ()
    example: dict[str, Any] = field(default_factory=dict)
    keeps_upload: bool = False  # kept past a successful end, as long as the record (for an artifact)
    batches: bool = False  # its engine takes many jobs' inputs in one call (`<TYPE>_BATCH_MAX` > 1 allowed)

    @property
    def queue(self) -> str:
        return self.name

    @property
    def submit_operation(self) -> str:
        """The OpenAPI `operationId` of its submit, a name a generated client can use: `submitAudioLengthJob`."""
        return "submit" + "".join(part.capitalize() for part in self.name.split("_")) + "Job"

    @property
    def task_name(self) -> str:
        return f"{self.name}.run"

    @property
    def task_module(self) -> str:
        return f"{SPEC_PACKAGE}.{self.name}.task"

    @property
    def env_prefix(self) -> str:
        return f"{self.name.upper()}_"

    def settings(self, settings: Settings) -> Any:
        """This type's settings (its `settings_model`) in `settings`."""
        return settings.types[self.name]

    def input_schema(self, settings: Settings) -> type[BaseModel] | None:
        """The model a JSON submit is validated with; built once per settings when its limits come from them."""
        if self.input_factory is not None:
            return _built_input(self.input_factory, self.settings(settings))
        return self.input_model

    def artifact(self, name: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.name == name), None)

    def soft_time_limit_s(self, settings: Settings) -> int:
        """`<TYPE>_TIME_LIMIT_S`, the spec's by default; the hard limit is 15 s later."""
        limit = int(self.settings(settings).time_limit_s)
        if not 0 < limit < MAX_TIME_LIMIT_S:
            raise ValueError(f"{self.env_prefix}TIME_LIMIT_S={limit}: a time limit must be positive and stay "
                             f"under {MAX_TIME_LIMIT_S} s, well under RabbitMQ's 30 min consumer_timeout")
        return limit

    def hard_time_limit_s(self, settings: Settings) -> int:
        return self.soft_time_limit_s(settings) + HARD_LIMIT_GRACE_S


@cache
def _built_input(factory: Callable[[Any], type[BaseModel]], type_settings: Any) -> type[BaseModel]:
    return factory(type_settings)


def discover(package: str = SPEC_PACKAGE) -> tuple[JobType, ...]:
    """`JOB_TYPE` of every `<package>.<folder>.spec`, in folder order, checked."""
    root = importlib.import_module(package)
    found = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name):
        # Looked up on disk, not with find_spec: that imports the folder's package, which need not be light.
        if not info.ispkg or not any((Path(p) / info.name / "spec.py").is_file() for p in root.__path__):
            continue
        spec = importlib.import_module(f"{package}.{info.name}.spec")
        job_type = getattr(spec, "JOB_TYPE", None)
        if not isinstance(job_type, JobType):
            raise RuntimeError(f"{spec.__name__} must define JOB_TYPE = JobType(...)")
        if job_type.name != info.name:
            raise RuntimeError(f"{spec.__name__} declares {job_type.name!r}; a type is named as its folder")
        found.append(job_type)
    return check(tuple(found))


def check(catalog: tuple[JobType, ...]) -> tuple[JobType, ...]:
    names = [t.name for t in catalog]
    if len(set(names)) != len(names):
        raise RuntimeError(f"job type names must be unique: {names}")
    for t in catalog:
        if not t.name.isidentifier() or t.name != t.name.lower():
            raise RuntimeError(f"job type {t.name!r} must be a lower-case identifier")
        default = t.settings_model.model_fields["time_limit_s"].default
        if not 0 < default < MAX_TIME_LIMIT_S:
            raise RuntimeError(f"{t.name}: time limit must stay well under RabbitMQ's 30 min consumer_timeout")
    prefixes = [t.env_prefix for t in catalog]
    for a in prefixes:
        clash = [b for b in prefixes if b != a and b.startswith(a)]
        if clash:
            raise RuntimeError(f"the settings prefix {a} of one type starts another's: {clash}")
    return catalog


CATALOG: tuple[JobType, ...] = discover()
BY_NAME: dict[str, JobType] = {t.name: t for t in CATALOG}


def longest_hard_limit_s(settings: Settings) -> int:
    """The longest hard time limit in force, overrides included: what a worker's stop grace must exceed."""
    return max(t.hard_time_limit_s(settings) for t in CATALOG)


def get(name: str) -> JobType | None:
    return BY_NAME.get(name)


__all__ = ["BY_NAME", "CATALOG", "Artifact", "JobType", "Model", "Renderer", "TypeSettings", "Upload", "check",
           "discover", "get", "longest_hard_limit_s"]
