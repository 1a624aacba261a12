"""`python -m client <type>` end to end against the running platform: inputs, results, output, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from client.demo import drawn_photo
from support.media import euromillions_page, tone
from support.processes import ROOT, free_port

pytestmark = pytest.mark.usefixtures("workers")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_matches_api(http, lines: list[dict]) -> None:
    """Each line of --output is what the API itself says of that job."""
    for line in lines:
        record = http.get(f"/v1/jobs/{line['job_id']}").json()
        assert (record["type"], record["status"], record["result"], record["error"]) == \
            (line["type"], line["status"], line["result"], line["error"])


def test_audio_length_files_folders_globs_and_urls(run_client, http, site, tmp_path) -> None:
    (tmp_path / "one.wav").write_bytes(tone(0.5))
    (tmp_path / "more" / "deep").mkdir(parents=True)
    (tmp_path / "more" / "two.flac").write_bytes(tone(1.5, "flac"))
    (tmp_path / "more" / "deep" / "three.ogg").write_bytes(tone(2.25, "ogg"))
    (tmp_path / "more" / "notes.txt").write_text("not audio, and not picked from the folder")
    (tmp_path / "g1.mp3").write_bytes(tone(1.0, "mp3"))
    url = site.add("/client/four.wav", tone(0.75), "audio/wav")
    out = tmp_path / "out.jsonl"
    run = run_client("audio_length", str(tmp_path / "one.wav"), str(tmp_path / "more"), str(tmp_path / "g*.mp3"),
                     url, "-o", str(out))
    assert run.code == 0, run.err
    lines = read_jsonl(out)
    durations = {Path(line["input"]).name: line["result"]["duration_seconds"] for line in lines}
    assert durations == pytest.approx({"four.wav": 0.75, "one.wav": 0.5, "two.flac": 1.5, "three.ogg": 2.25,
                                       "g1.mp3": 1.0}, abs=0.05)
    assert_matches_api(http, lines)
    assert "audio_length" in run.out and "5 jobs" in run.out


def test_scrape_selectors_and_euromillions(run_client, http, site, tmp_path) -> None:
    shop = site.add("/client/shop.html", "<html><title>Shop</title><ul><li>tea</li><li>mug</li></ul></html>")
    news = site.add("/client/news.html", "<html><title>News</title><h2>one</h2></html>")
    site.add("/results/07-02-2025", euromillions_page([1, 2, 3, 4, 50], [5, 12]))
    out = tmp_path / "out.jsonl"
    run = run_client("scrape", shop, news, "--select", "title=title", "-s", "items=li",
                     "--euromillions", "2025-02-07", "-o", str(out))
    assert run.code == 0, run.err
    lines = {line["input"]: line for line in read_jsonl(out)}
    assert lines[shop]["result"]["fields"] == {"title": ["Shop"], "items": ["tea", "mug"]}
    assert lines[news]["result"]["fields"] == {"title": ["News"], "items": []}
    assert lines["euromillions 2025-02-07"]["result"] == {"draw_date": "2025-02-07", "numbers": [1, 2, 3, 4, 50],
                                                          "stars": [5, 12]}
    assert_matches_api(http, list(lines.values()))


def test_sentiment_from_arguments_a_file_and_a_csv_column(run_client, http, tmp_path) -> None:
    (tmp_path / "texts.txt").write_text("What a lovely day.\n\nThis is awful.\n")
    (tmp_path / "reviews.csv").write_text('id,review\n1,"Great, I love it"\n2,Terrible service\n')
    out = tmp_path / "out.jsonl"
    run = run_client("sentiment", "I am happy", "--file", str(tmp_path / "texts.txt"), "--csv",
                     str(tmp_path / "reviews.csv"), "--column", "review", "-o", str(out), "--json")
    assert run.code == 0, run.out
    lines = read_jsonl(out)
    assert [line["input"] for line in lines] == ["I am happy", "What a lovely day.", "This is awful.",
                                                 "Great, I love it", "Terrible service"]
    assert run.json()["summary"]["sentiment"]["succeeded"] == 5
    assert_matches_api(http, lines)


def test_sentiment_batches_texts_into_fewer_jobs(run_client, tmp_path) -> None:
    run = run_client("sentiment", "good", "bad", "fine", "--batch", "2", "--json")
    assert run.code == 0, run.out
    jobs = run.json()["jobs"]
    assert [job["input"] for job in jobs] == ["good (+1)", "fine (+0)"]


def test_detection_files_folders_and_globs(run_client, http, tmp_path) -> None:
    (tmp_path / "photos").mkdir()
    for name in ("a.jpg", "photos/b.jpg", "photos/c.jpeg", "d1.jpg"):
        (tmp_path / name).write_bytes(drawn_photo())
    out = tmp_path / "out.jsonl"
    run = run_client("detection", str(tmp_path / "a.jpg"), str(tmp_path / "photos"), str(tmp_path / "d?.jpg"),
                     "--confidence", "0.5", "--max-detections", "5", "-o", str(out))
    assert run.code == 0, run.out
    lines = read_jsonl(out)
    assert sorted(Path(line["input"]).name for line in lines) == ["a.jpg", "b.jpg", "c.jpeg", "d1.jpg"]
    assert_matches_api(http, lines)


def test_run_a_jsonl_file_of_mixed_types(run_client, http, site, tmp_path) -> None:
    (tmp_path / "clip.wav").write_bytes(tone(1.25))
    page = site.add("/client/mixed.html", "<html><title>Mixed</title></html>")
    jobs = [{"type": "audio_length", "file": "clip.wav"}, {"type": "scrape", "url": page, "selectors": {"t": "title"}},
            {"type": "audio_length", "url": site.add("/client/mixed.wav", tone(0.25), "audio/wav")}]
    (tmp_path / "jobs.jsonl").write_text("# a comment\n" + "\n".join(json.dumps(j) for j in jobs) + "\n\n")
    out = tmp_path / "out.jsonl"
    run = run_client("run", str(tmp_path / "jobs.jsonl"), "-o", str(out), "--json")
    assert run.code == 0, run.out
    lines = read_jsonl(out)
    assert [line["type"] for line in lines] == ["audio_length", "scrape", "audio_length"]
    assert lines[0]["result"]["duration_seconds"] == pytest.approx(1.25)
    assert lines[1]["result"]["title"] == "Mixed"
    assert set(run.json()["summary"]) == {"audio_length", "scrape"}
    assert_matches_api(http, lines)


def test_a_failed_job_and_a_rejected_input_exit_1_with_their_reasons(run_client, site, tmp_path) -> None:
    (tmp_path / "fake.wav").write_text("hello, I am not audio at all" * 20)
    missing = f"{site.url}/client/missing.wav"
    out = tmp_path / "out.jsonl"
    run = run_client("audio_length", missing, str(tmp_path / "fake.wav"), "-o", str(out))
    assert run.code == 1
    failed, rejected = read_jsonl(out)
    assert (failed["status"], failed["error"]["code"]) == ("FAILURE", "fetch_failed")
    assert (rejected["status"], rejected["job_id"]) == ("REJECTED", None)
    assert rejected["error"]["code"] == "unsupported_media_type" or "not" in rejected["error"]["message"]
    assert "2 failed" in run.out
    assert f"{missing} (job {failed['job_id']}): FAILURE fetch_failed" in run.out


def test_an_unreachable_api_is_one_red_line_and_exit_2(run_client) -> None:
    run = run_client("sentiment", "hello", "--retries", "0", api=f"http://127.0.0.1:{free_port()}")
    assert run.code == 2
    assert run.err.strip().startswith("error: cannot reach the API")
    assert len(run.err.strip().splitlines()) == 1


def test_usage_errors_exit_2_before_anything_is_submitted(run_client, tmp_path) -> None:
    (tmp_path / "jobs.jsonl").write_text('{"type": "no_such_type", "x": 1}\n')
    assert run_client("run", str(tmp_path / "jobs.jsonl")).code == 2
    assert run_client("scrape", "http://example.invalid/").code == 2  # no --select
    run = run_client("audio_length", str(tmp_path / "nothing-here.wav"))
    assert (run.code, run.err.strip()) == (2, f"error: no such file or folder: {tmp_path / 'nothing-here.wav'}")


def test_the_client_speaks_http_only() -> None:
    code = ("import sys, client, client.cli, client.demo\n"
            "client.demo.photos()\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'common', 'api', 'workers', 'ultralytics',"
            " 'flask', 'celery', 'redis', 'numpy'}))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_job_slower_than_the_timeout_fails_and_goes_on(run_client, site, tmp_path) -> None:
    page = site.add("/client/slower.html", "<html><title>slower</title></html>") + "?delay=3"
    out = tmp_path / "out.jsonl"
    run = run_client("scrape", page, "-s", "t=title", "--timeout", "0.5", "-o", str(out))
    assert run.code == 1
    [line] = read_jsonl(out)
    assert line["status"] in ("PENDING", "STARTED") and line["job_id"]
    assert line["error"]["code"] == "client_timeout"
