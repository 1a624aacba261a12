"""`AUDIO_LENGTH_MAX_SECONDS`: audio longer than the limit fails `audio_too_long`, read from its header before
it is decoded; shorter audio is measured as usual (an isolated platform with a 1 s limit)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.isolated import isolated_platform
from support.jobs import ApiSession, follow, submit
from support.media import tone


@pytest.fixture(scope="module")
def one_second() -> Iterator[ApiSession]:
    with isolated_platform("audio_length", AUDIO_LENGTH_MAX_SECONDS="1") as (url, _), ApiSession(url) as http:
        yield http


def test_audio_over_the_limit_fails_naming_both_durations(one_second: ApiSession) -> None:
    record = follow(one_second, submit(one_second, "audio_length", files={"audio": ("long.flac", tone(2.5, "flac"))}))
    assert record["status"] == "FAILURE", record
    assert record["error"] == {"code": "audio_too_long", "message": "The audio lasts 2.5 s, longer than the 1 s this "
                                                                    "platform measures (AUDIO_LENGTH_MAX_SECONDS)."}
    short = follow(one_second, submit(one_second, "audio_length", files={"audio": ("short.wav", tone(0.75))}))
    assert short["status"] == "SUCCESS" and short["result"]["duration_seconds"] == pytest.approx(0.75), short
