import pytest

from common.errors import InputError
from support.media import tone
from workers.audio_length.core import load_model, measure


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_measures_duration_of_each_format(fmt: str) -> None:
    result = measure(tone(3.25, fmt, channels=2))
    assert result["duration_seconds"] == pytest.approx(3.25, abs=0.001)
    assert result["sample_rate"] == 16000
    assert result["channels"] == 2
    assert result["format"] == {"ogg": "OGG", "mp3": "MP3", "wav": "WAV", "flac": "FLAC"}[fmt]


def test_text_is_not_audio() -> None:
    with pytest.raises(InputError, match="not audio"):
        measure(b"hello, I am a text file pretending to be audio" * 10)


def test_truncated_file_is_an_input_error() -> None:
    with pytest.raises(InputError):
        measure(tone(2.0, "flac")[:200])
    with pytest.raises(InputError, match="cut short"):
        measure(tone(2.0, "mp3")[: len(tone(2.0, "mp3")) // 2])


def test_load_model_warms_librosa_up() -> None:
    assert load_model() == "librosa"


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_audio_longer_than_the_limit_is_refused_from_its_header(fmt: str) -> None:
    with pytest.raises(InputError, match=r"lasts 2 s, longer than the 1\.5 s") as refused:
        measure(tone(2.0, fmt), max_seconds=1.5)
    assert refused.value.code == "audio_too_long"
    assert measure(tone(2.0, fmt), max_seconds=2.0)["duration_seconds"] == pytest.approx(2.0, abs=0.001)
