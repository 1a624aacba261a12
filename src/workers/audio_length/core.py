"""Measure an audio file: duration (librosa), sample rate, channels and container format."""

from __future__ import annotations

import io
import wave

from common.errors import InputError


def load_model() -> str:
    """Import librosa and soundfile and measure a tiny silent WAV, so that their first-use cost (lazy
    imports, several seconds) is paid when the worker starts, not by its first job."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as silent:
        silent.setnchannels(1)
        silent.setsampwidth(2)
        silent.setframerate(8000)
        silent.writeframes(b"\0\0" * 80)
    measure(buffer.getvalue())
    return "librosa"


def measure(data: bytes, max_seconds: float | None = None) -> dict[str, object]:
    """Read the header (refusing audio longer than `max_seconds` before decoding any of it), prove the
    last frame decodes (a cut file fails here), then ask librosa the duration."""
    import librosa
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            sample_rate, channels, container, frames = sound.samplerate, sound.channels, sound.format, sound.frames
            _check_length(frames / sample_rate if sample_rate else 0.0, max_seconds)
            sound.seek(max(frames - 1, 0))
            last = sound.read(1)
        duration = librosa.get_duration(path=io.BytesIO(data))  # type: ignore[arg-type]  # soundfile reads file objects
    except (soundfile.LibsndfileError, RuntimeError, EOFError, ValueError) as exc:
        raise InputError(f"The file is not audio that can be decoded (WAV, FLAC, OGG, Opus, MP3): {exc}",
                         code="undecodable_audio") from None
    if frames == 0 or len(last) == 0:
        raise InputError("The audio file is empty or cut short: its last frame cannot be decoded.",
                         code="undecodable_audio")
    return {
        "duration_seconds": round(float(duration), 6),
        "sample_rate": int(sample_rate),
        "channels": int(channels),
        "format": str(container),
    }


def _check_length(seconds: float, max_seconds: float | None) -> None:
    if max_seconds is not None and seconds > max_seconds:
        raise InputError(f"The audio lasts {seconds:.6g} s, longer than the {max_seconds:g} s this platform measures "
                         "(AUDIO_LENGTH_MAX_SECONDS).", code="audio_too_long")
