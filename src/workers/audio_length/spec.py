"""The `audio_length` job type: an audio file or URL → its duration in seconds."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from common import media
from common.catalog import JobType, Model, TypeSettings, Upload
from common.schemas import UrlInput


class AudioLengthSettings(TypeSettings):
    env_aliases: ClassVar[dict[str, str]] = {"AUDIO_MAX_BYTES": "max_bytes", "AUDIO_MAX_SECONDS": "max_seconds"}

    max_bytes: int = Field(default=50 * 1024 * 1024, ge=1, description="largest audio upload or download")
    max_seconds: float = Field(default=3600.0, gt=0, description="longest audio a job measures, in seconds (read "
                                                                  "from the header, before decoding)")


class AudioLengthResult(BaseModel):
    duration_seconds: float
    sample_rate: int
    channels: int
    format: str


JOB_TYPE = JobType(
    name="audio_length",
    summary="Audio file or URL → duration in seconds (librosa).",
    settings_model=AudioLengthSettings,
    input_model=UrlInput,
    result_model=AudioLengthResult,
    image="worker-light",
    upload=Upload("audio", media.sniff_audio, "WAV, FLAC, OGG, Opus or MP3", lambda s: s.max_bytes),
    model=Model("librosa and soundfile come with the `workers` packages (`make install`).", setting=None),
    example={"url": "https://example.com/sound.wav"},
)
