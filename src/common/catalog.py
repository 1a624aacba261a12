"""The catalog of job types: the only contract between the API and the workers.

Each job type has one identifier, spelled the same as its folder under `src/workers/`, its queue,
its task name prefix (`<type>.run`), its URL segment (`/v1/jobs/<type>`) and its metric label.
Adding a type takes one folder and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from common import media
from common.schemas import DetectionOptions, ScrapeInput, SentimentInput, UrlInput
from common.settings import Settings

MAX_TIME_LIMIT_S = 25 * 60
HARD_LIMIT_GRACE_S = 15  # after the soft limit, for the job to clean up


@dataclass(frozen=True)
class Upload:
    """A file sent as one multipart field, checked by content before it is queued."""

    field: str
    sniff: Callable[[bytes], str | None]
    kinds: str
    max_bytes: Callable[[Settings], int]
    options_model: type[BaseModel] | None = None
    check: Callable[[bytes, Settings], None] | None = None


@dataclass(frozen=True)
class JobType:
    name: str
    summary: str
    input_model: type[BaseModel] | None
    time_limit_s: int
    upload: Upload | None = None

    @property
    def queue(self) -> str:
        return self.name

    @property
    def task_name(self) -> str:
        return f"{self.name}.run"

    @property
    def task_module(self) -> str:
        return f"workers.{self.name}.task"

    def soft_time_limit_s(self, settings: Settings) -> int:
        """`<TYPE>_TIME_LIMIT_S` when set, else the catalog's; the hard limit is 15 s later."""
        limit = int(getattr(settings, f"{self.name}_time_limit_s", 0)) or self.time_limit_s
        if not 0 < limit < MAX_TIME_LIMIT_S:
            raise ValueError(f"{self.name.upper()}_TIME_LIMIT_S={limit}: a time limit must be positive and stay "
                             f"under {MAX_TIME_LIMIT_S} s, well under RabbitMQ's 30 min consumer_timeout")
        return limit

    def hard_time_limit_s(self, settings: Settings) -> int:
        return self.soft_time_limit_s(settings) + HARD_LIMIT_GRACE_S


CATALOG: tuple[JobType, ...] = (
    JobType(
        name="sentiment",
        summary="Text → POSITIVE, NEGATIVE or NEUTRAL with a score (VADER, or a transformers model).",
        input_model=SentimentInput,
        time_limit_s=120,
    ),
    JobType(
        name="detection",
        summary="Image → labelled boxes (ultralytics YOLO).",
        input_model=None,
        time_limit_s=120,
        upload=Upload("image", media.sniff_image, "JPEG, PNG or WebP", lambda s: s.image_max_bytes,
                      options_model=DetectionOptions, check=media.check_image),
    ),
    JobType(
        name="audio_length",
        summary="Audio file or URL → duration in seconds (librosa).",
        input_model=UrlInput,
        time_limit_s=120,
        upload=Upload("audio", media.sniff_audio, "WAV, FLAC, OGG, Opus or MP3", lambda s: s.audio_max_bytes),
    ),
    JobType(
        name="scrape",
        summary="Web page → extracted fields by CSS selector, or a EuroMillions draw (beautifulsoup4).",
        input_model=ScrapeInput,
        time_limit_s=60,
    ),
)

BY_NAME: dict[str, JobType] = {t.name: t for t in CATALOG}


def longest_hard_limit_s(settings: Settings) -> int:
    """The longest hard time limit in force, overrides included: what a worker's stop grace must exceed."""
    return max(t.hard_time_limit_s(settings) for t in CATALOG)


def get(name: str) -> JobType | None:
    return BY_NAME.get(name)


def _check(catalog: tuple[JobType, ...]) -> None:
    names = [t.name for t in catalog]
    if len(set(names)) != len(names):
        raise RuntimeError(f"job type names must be unique: {names}")
    for t in catalog:
        if not t.name.isidentifier() or t.name != t.name.lower():
            raise RuntimeError(f"job type {t.name!r} must be a lower-case identifier")
        if t.time_limit_s >= MAX_TIME_LIMIT_S:
            raise RuntimeError(f"{t.name}: time limit must stay well under RabbitMQ's 30 min consumer_timeout")


_check(CATALOG)

__all__ = ["BY_NAME", "CATALOG", "JobType", "Upload", "get", "longest_hard_limit_s"]
