"""audio_length jobs end to end: HTTP → RabbitMQ → a real worker → Redis → HTTP."""

import pytest

from support.jobs import run_job
from support.media import tone


@pytest.fixture(autouse=True)
def _workers(workers: object) -> None:
    pass


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_uploaded_audio_has_its_length(http, fmt: str) -> None:
    record = run_job(http, "audio_length", files={"audio": (f"tone.{fmt}", tone(3.25, fmt))})
    assert record["status"] == "SUCCESS", record
    assert record["result"]["duration_seconds"] == pytest.approx(3.25, abs=0.001)
    assert record["result"]["sample_rate"] == 16000
    assert record["attempts"] == 1
    assert record["progress"] == 100


def test_audio_url_is_fetched_and_measured(http, site) -> None:
    url = site.add("/audio/two.wav", tone(2.0, "wav", channels=2), "audio/wav")
    record = run_job(http, "audio_length", json={"url": url})
    assert record["status"] == "SUCCESS", record
    assert record["result"] == {"duration_seconds": 2.0, "sample_rate": 16000, "channels": 2, "format": "WAV"}


def test_missing_url_fails_with_the_status(http, site) -> None:
    record = run_job(http, "audio_length", json={"url": f"{site.url}/audio/missing.wav"})
    assert record["status"] == "FAILURE"
    assert record["error"]["code"] == "fetch_failed"
    assert "404" in record["error"]["message"]


def test_url_that_is_not_audio_fails_readably(http, site) -> None:
    url = site.add("/audio/fake.mp3", "<html>not audio</html>")
    record = run_job(http, "audio_length", json={"url": url})
    assert record["status"] == "FAILURE"
    assert record["error"]["code"] == "undecodable_audio"
    assert "not audio" in record["error"]["message"]


def test_truncated_upload_fails_readably(http) -> None:
    record = run_job(http, "audio_length", files={"audio": ("cut.flac", tone(2.0, "flac")[:300])})
    assert record["status"] == "FAILURE"
    assert record["error"]["code"] == "undecodable_audio"
