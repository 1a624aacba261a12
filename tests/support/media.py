"""Inputs the tests make themselves: audio of a known length in several formats."""

from __future__ import annotations

import io

import numpy as np
import soundfile

FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def tone(seconds: float, fmt: str = "wav", sample_rate: int = 16000, channels: int = 1) -> bytes:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    out = io.BytesIO()
    container, subtype = FORMATS[fmt]
    soundfile.write(out, data, sample_rate, format=container, subtype=subtype)
    return out.getvalue()


def euromillions_page(numbers: list[int], stars: list[int]) -> str:
    balls = "".join(f'<li class="resultBall ball">{n}</li>' for n in numbers)
    lucky = "".join(f'<li class="resultBall lucky-star">{s}</li>' for s in stars)
    body = f'<div id="ballsDrawn"><ul>{balls}{lucky}</ul></div>'
    return f"<html><head><title>Results</title></head><body>{body}</body></html>"
