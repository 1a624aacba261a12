"""Retries of 503 and 429 through a fault proxy in front of the real API: never a second job for one input."""

from __future__ import annotations

import json

import pytest
import redis

from client.cli import main
from client.demo import tone
from common.settings import get_settings

pytestmark = pytest.mark.usefixtures("workers")

INPUTS = 12


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def count_jobs() -> int:
    settings = get_settings()
    with redis.Redis.from_url(settings.redis_url) as r:
        return sum(1 for _ in r.scan_iter(match=f"{settings.key_prefix}job:*", count=1000))


@pytest.fixture
def tones(tmp_path):
    folder = tmp_path / "tones"
    folder.mkdir()
    for i in range(INPUTS):
        (folder / f"tone-{i:02}.wav").write_bytes(tone(0.1 + i / 100))
    return folder


def check_one_job_per_input(lines: list[dict], proxy, before: int) -> None:
    assert len(lines) == INPUTS
    assert all(line["status"] == "SUCCESS" for line in lines), lines
    assert len({line["job_id"] for line in lines}) == INPUTS
    assert proxy.created == INPUTS
    assert count_jobs() - before == INPUTS
    for line in lines:  # every answer the API gave for an input's key names the job the client reports
        assert proxy.job_ids[line["idempotency_key"]] == {line["job_id"]}


@pytest.mark.parametrize("status", [503, 429])
def test_refused_submits_are_retried_without_duplicates(run_client, fault_proxy, tones, tmp_path, status) -> None:
    proxy, url = fault_proxy(faults=INPUTS, status=status)
    before = count_jobs()
    run = run_client("audio_length", str(tones), "-c", "4", "-o", str(tmp_path / "out.jsonl"), api=url)
    assert run.code == 0, run.err
    assert proxy.refused == INPUTS
    assert proxy.replayed == 0
    check_one_job_per_input(read_jsonl(tmp_path / "out.jsonl"), proxy, before)


def test_a_lost_answer_is_retried_with_the_same_key_and_gets_the_same_job(run_client, fault_proxy, tones,
                                                                         tmp_path) -> None:
    proxy, url = fault_proxy(faults=INPUTS // 2, lose=True)
    before = count_jobs()
    run = run_client("audio_length", str(tones), "-c", "4", "-o", str(tmp_path / "out.jsonl"), api=url)
    assert run.code == 0, run.err
    assert proxy.replayed == INPUTS // 2  # each retry of a lost answer was answered with the earlier job
    check_one_job_per_input(read_jsonl(tmp_path / "out.jsonl"), proxy, before)


def test_giving_up_after_the_retries_fails_the_input_readably(run_client, fault_proxy, tones, tmp_path) -> None:
    proxy, url = fault_proxy(faults=1000)
    run = run_client("audio_length", str(tones / "tone-00.wav"), "--retries", "2", "-o", str(tmp_path / "o.jsonl"),
                     api=url)
    assert run.code == 1
    assert proxy.refused == 3 and proxy.created == 0
    [line] = read_jsonl(tmp_path / "o.jsonl")
    assert line["job_id"] is None
    assert line["status"] == "ERROR"
    assert line["error"]["code"] == "fault_proxy"
    assert "gave up after 2 retries" in line["error"]["message"]
    assert "fault_proxy" in run.out


def test_api_url_and_api_key_come_from_the_environment(fault_proxy, monkeypatch, capsys) -> None:
    proxy, url = fault_proxy(faults=0)
    monkeypatch.setenv("API_URL", url)
    monkeypatch.setenv("API_KEY", "s3cret")
    assert main(["sentiment", "hello", "-q"]) == 0, capsys.readouterr()
    assert proxy.created == 1
    assert proxy.authorizations == {"Bearer s3cret"}


def test_a_model_no_worker_has_is_not_retried(run_client, fault_proxy, tones, tmp_path) -> None:
    """503 `model_unavailable` (no worker has the type's model) would answer the same to every retry."""
    proxy, url = fault_proxy(faults=1000, code="model_unavailable")
    run = run_client("audio_length", str(tones / "tone-00.wav"), "-o", str(tmp_path / "o.jsonl"), api=url)
    assert run.code == 1
    assert proxy.refused == 1 and proxy.created == 0
    [line] = read_jsonl(tmp_path / "o.jsonl")
    assert (line["status"], line["error"]["code"]) == ("REJECTED", "model_unavailable")
