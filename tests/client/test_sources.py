"""Inputs → jobs, without any service: folders, globs, CSV columns, JSON Lines, selectors, batches."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from client import sources
from client.sources import UsageError


def test_folders_are_searched_for_their_kind_and_globs_expand(tmp_path) -> None:
    for name in ("a.jpg", "sub/b.PNG", "sub/c.txt", "d.webp", "e.mp3"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    jobs = sources.detection([str(tmp_path / "sub"), str(tmp_path / "*.jpg")], {"confidence": "0.4"})
    assert [(j.file.name, j.form) for j in jobs] == [("b.PNG", {"confidence": "0.4"}), ("a.jpg", {"confidence": "0.4"})]
    audio = sources.audio_length([str(tmp_path), "https://example.com/x.ogg"])
    assert [j.label for j in audio] == ["https://example.com/x.ogg", str(tmp_path / "e.mp3")]
    assert audio[0].body == {"url": "https://example.com/x.ogg"}
    with pytest.raises(UsageError, match="no file matches"):
        sources.expand([str(tmp_path / "*.flac")], sources.AUDIO_SUFFIXES)


def test_each_input_has_its_own_idempotency_key(tmp_path) -> None:
    jobs = list(sources.sentiment(["a", "a", "b"]))
    assert len({j.key for j in jobs}) == 3


def test_texts_come_from_a_csv_column(tmp_path) -> None:
    (tmp_path / "r.csv").write_text("id,review\n1,Good\n2,\n3,Bad\n")
    assert sources.read_column(str(tmp_path / "r.csv"), "review") == ["Good", "Bad"]
    with pytest.raises(UsageError, match="no column 'text'"):
        sources.read_column(str(tmp_path / "r.csv"), "text")


def test_batches_send_texts() -> None:
    jobs = list(sources.sentiment(["a", "b", "c"], batch=2))
    assert [j.body for j in jobs] == [{"texts": ["a", "b"]}, {"texts": ["c"]}]


def test_scrape_needs_selectors_for_urls_and_takes_draw_dates() -> None:
    with pytest.raises(UsageError, match="--select"):
        sources.scrape(["https://example.com"], [], [])
    with pytest.raises(UsageError, match="name=css"):
        sources.scrape(["https://example.com"], ["title"], [])
    [page, draw] = sources.scrape(["https://example.com"], ["t = h1 a"], [dt.date(2024, 1, 2)])
    assert page.body == {"url": "https://example.com", "selectors": {"t": "h1 a"}}
    assert draw.body == {"preset": "euromillions", "draw_date": "2024-01-02"}


def test_jsonl_lines_are_bodies_or_uploads_next_to_the_file(tmp_path) -> None:
    lines = [{"type": "sentiment", "text": "hi"}, {"type": "detection", "file": "img/a.jpg", "confidence": 0.5}]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n# done\n")
    text, image = sources.jsonl(str(tmp_path / "jobs.jsonl"))
    assert (text.type, text.body) == ("sentiment", {"text": "hi"})
    assert (image.type, image.file, image.form) == ("detection", tmp_path / "img" / "a.jpg", {"confidence": "0.5"})


@pytest.mark.parametrize("line, message", [("not json", "is not JSON"), ('{"text": "no type"}', 'needs a "type"')])
def test_bad_jsonl_lines_name_their_line(tmp_path, line: str, message: str) -> None:
    (tmp_path / "jobs.jsonl").write_text('{"type": "sentiment", "text": "ok"}\n' + line + "\n")
    with pytest.raises(UsageError, match=f"jobs.jsonl:2 {message}"):
        list(sources.jsonl(str(tmp_path / "jobs.jsonl")))
