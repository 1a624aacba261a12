"""`python -m client demo`: every job type from inputs the client makes itself, and pages `make up` serves
(`launcher.demo_pages`, served here on a free port the way the launcher serves them)."""

from __future__ import annotations

import io
import json
import threading
import wave
from collections.abc import Iterator

import pytest

from client.demo import TONES_S, demo_jobs, drawn_photo, hint, photos, tone
from launcher import demo_pages
from support.processes import free_port


@pytest.fixture(scope="module")
def pages_url() -> Iterator[str]:
    """The demo pages, served by the launcher's own server (what `make up` runs) on a free port."""
    server = demo_pages.server(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tones_are_wav_files_of_their_length() -> None:
    with wave.open(io.BytesIO(tone(1.25))) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (1, 16000, 20000)


def test_photos_are_jpegs() -> None:
    found = photos()
    assert found
    assert all(data.startswith(b"\xff\xd8\xff") for _, data in found)
    assert drawn_photo().startswith(b"\xff\xd8\xff")


def test_demo_has_jobs_for_every_type_it_knows_and_skips_others() -> None:
    jobs = demo_jobs(["sentiment", "detection", "audio_length", "scrape", "unheard_of"], "http://pages.example:81/")
    assert {job.type for job in jobs} == {"sentiment", "detection", "audio_length", "scrape"}
    assert len({job.key for job in jobs}) == len(jobs)
    urls = {job.body["url"] for job in jobs if job.body and "url" in job.body}
    assert urls == {f"http://pages.example:81/{page}" for page in ("shop.html", "news.html", "tone.wav")}


@pytest.mark.usefixtures("workers")
def test_demo_runs_every_job_type_offline(run_client, http, tmp_path, pages_url) -> None:
    out = tmp_path / "demo.jsonl"
    run = run_client("demo", "-o", str(out), "--pages", pages_url)
    assert run.code == 0, run.out
    lines = read_jsonl(out)
    catalog = {t["type"] for t in http.get("/v1/job-types").json()["job_types"]}
    assert {line["type"] for line in lines} == catalog
    assert all(line["status"] == "SUCCESS" for line in lines)


@pytest.mark.usefixtures("workers")
def test_demo_audio_and_scrape_results(run_client, tmp_path, pages_url) -> None:
    out = tmp_path / "demo.jsonl"
    run = run_client("demo", "--only", "audio_length,scrape", "-o", str(out), "--pages", pages_url)
    assert run.code == 0, run.out
    lines = read_jsonl(out)
    durations = [line["result"]["duration_seconds"] for line in lines if line["type"] == "audio_length"]
    assert durations == pytest.approx([*TONES_S, 0.75])
    fields = [line["result"]["fields"] for line in lines if line["type"] == "scrape"]
    assert fields == [{"products": ["Tea pot", "Mug", "Kettle"], "prices": ["12.50", "4.00", "29.90"]},
                      {"headlines": ["Queues keep the platform calm", "Workers scale per type"]}]


@pytest.mark.usefixtures("workers")
def test_the_client_serves_no_pages_itself(run_client, tmp_path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "demo.jsonl"
    run = run_client("demo", "--only", "scrape", "-o", str(out), "--pages", nowhere)
    assert run.code == 1
    assert {line["error"]["code"] for line in read_jsonl(out)} == {"fetch_failed"}
    assert "DEMO_PAGES_PORT" in run.err + run.out


def test_a_page_the_workers_could_not_fetch_comes_with_what_to_do() -> None:
    assert hint(["model_unavailable"]) is None
    assert "FETCH_ALLOWLIST" in (hint(["fetch_failed", "address_refused"], "http://127.0.0.1:8099") or "")
    assert "DEMO_PAGES_PORT" in (hint(["fetch_failed"], "http://127.0.0.1:8099") or "")
