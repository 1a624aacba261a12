"""Measure an audio file: duration (librosa), sample rate, channels and container format."""

from __future__ import annotations

import io

from common.errors import InputError


def measure(data: bytes) -> dict[str, object]:
    """Read the header, prove the last frame decodes (a cut file fails here), then ask librosa the duration."""
    import librosa
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            sample_rate, channels, container, frames = sound.samplerate, sound.channels, sound.format, sound.frames
            sound.seek(max(frames - 1, 0))
            last = sound.read(1)
        duration = librosa.get_duration(path=io.BytesIO(data))
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
