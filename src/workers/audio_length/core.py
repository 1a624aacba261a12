"""Measure an audio file: duration (librosa), sample rate, channels and container format."""

from __future__ import annotations

import io

from common.errors import InputError


def measure(data: bytes) -> dict[str, object]:
    import librosa
    import soundfile

    try:
        info = soundfile.info(io.BytesIO(data))
        duration = librosa.get_duration(path=io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, EOFError) as exc:
        raise InputError(f"The file is not audio that can be decoded (WAV, FLAC, OGG, Opus, MP3): {exc}",
                         code="undecodable_audio") from None
    return {
        "duration_seconds": round(float(duration), 6),
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "format": str(info.format),
    }
