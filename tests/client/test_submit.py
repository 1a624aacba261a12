"""`python -m client submit TYPE key=value … [FILE …]`: any job type the API lists, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.demo import drawn_photo
from client.generic import jobs, value_of
from client.sources import UsageError
from support.media import tone

SENTIMENT = {"type": "sentiment", "inputs": {"json": {"properties": {"text": {}, "texts": {}}}},
             "example": {"text": "I love it"}}
DETECTION = {"type": "detection", "inputs": {"multipart": {"field": "image"}}}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(("raw", "value"), [("3", 3), ("0.5", 0.5), ("true", True), ('["a", "b"]', ["a", "b"]),
                                            ('{"h": "h1"}', {"h": "h1"}), ("I love it", "I love it"), ("", "")])
def test_values_are_json_when_they_parse_else_text(raw: str, value: object) -> None:
    assert value_of(raw) == value


def test_fields_make_one_json_job_and_files_one_upload_each(tmp_path: Path) -> None:
    (tmp_path / "texts.json").write_text('["fine", "awful"]\n')
    [job] = jobs("sentiment", ["text=I love it", f"texts=@{tmp_path / 'texts.json'}"], SENTIMENT)
    assert job.body == {"text": "I love it", "texts": ["fine", "awful"]}
    for name in ("a.jpg", "b=c.jpg"):
        (tmp_path / name).write_bytes(b"x")
    uploads = jobs("detection", ["confidence=0.5", str(tmp_path / "a.jpg"), str(tmp_path / "b=c.jpg")], DETECTION)
    assert [(j.file, j.form) for j in uploads] == [(tmp_path / n, {"confidence": "0.5"}) for n in ("a.jpg", "b=c.jpg")]


@pytest.mark.parametrize(("words", "listing", "message"), [
    (["a.jpg"], SENTIMENT, "sentiment takes no file; give its fields as key=value (it takes text, texts; e.g. "
                           'text="I love it")'),
    ([], SENTIMENT, "say what to send to sentiment as key=value"),
    (["confidence=0.5"], DETECTION, "detection takes a file (sent as its 'image' field)"),
    (["nothing-here.jpg"], DETECTION, "no such file: nothing-here.jpg"),
    (["text=@nothing-here.txt"], SENTIMENT, "text=@nothing-here.txt: cannot read nothing-here.txt"),
])
def test_what_a_type_cannot_take_is_a_usage_error(words: list[str], listing: dict, message: str) -> None:
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        jobs(str(listing["type"]), words, listing)


@pytest.mark.usefixtures("workers")
def test_submit_a_sentiment_job_from_key_value_fields(run_client, tmp_path) -> None:
    out = tmp_path / "out.jsonl"
    run = run_client("submit", "sentiment", "texts=[\"I love it, wonderful!\", \"This is awful.\"]", "-o", str(out))
    assert run.code == 0, run.out + run.err
    [line] = read_jsonl(out)
    assert line["status"] == "SUCCESS"
    assert [r["label"] for r in line["result"]["results"]] == ["POSITIVE", "NEGATIVE"]


@pytest.mark.usefixtures("workers")
def test_submit_files_of_an_upload_type_with_form_fields(run_client, tmp_path) -> None:
    (tmp_path / "clip.wav").write_bytes(tone(1.25))
    (tmp_path / "photo.jpg").write_bytes(drawn_photo())
    out = tmp_path / "out.jsonl"
    assert run_client("submit", "audio_length", str(tmp_path / "clip.wav"), "-o", str(out)).code == 0
    assert read_jsonl(out)[0]["result"]["duration_seconds"] == pytest.approx(1.25)
    run = run_client("submit", "detection", "max_detections=2", str(tmp_path / "photo.jpg"), "-o", str(out))
    assert run.code == 0, run.out + run.err
    [line] = read_jsonl(out)
    assert len(line["result"]["detections"]) == 2  # the test weights see a few dozen people in any image


@pytest.mark.usefixtures("workers")
def test_an_unknown_type_is_a_usage_error_naming_the_known_ones(run_client, http) -> None:
    run = run_client("submit", "horoscope", "sign=leo")
    assert run.code == 2
    known = ", ".join(t["type"] for t in http.get("/v1/job-types").json()["job_types"])
    assert run.err.strip() == f"error: the API has no job type 'horoscope' (it has: {known})"


@pytest.mark.usefixtures("workers")
def test_the_apis_refusal_is_shown_as_it_said_it(run_client, tmp_path) -> None:
    out = tmp_path / "out.jsonl"
    run = run_client("submit", "sentiment", "texts=[]", "mood=cheerful", "-o", str(out))
    assert run.code == 1
    [line] = read_jsonl(out)
    assert (line["status"], line["job_id"]) == ("REJECTED", None)
    assert line["error"]["code"] and line["error"]["message"]
    assert f"REJECTED {line['error']['code']}: {line['error']['message'][:40]}" in " ".join(run.out.split())
