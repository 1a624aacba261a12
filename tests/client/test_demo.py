"""`python -m client demo`: every job type from inputs the client makes itself, and pages `make up` serves
(`launcher.demo_pages`, served here on a free port the way the launcher serves them)."""

from __future__ import annotations

import io
import json
import threading
import wave
from collections.abc import Iterator

import pytest
import requests

from client.cli import main
from client.demo import TONES_S, demo_jobs, drawn_photo, hint, models_unavailable, photos, tone
from launcher import demo_pages
from support import services
from support.platforms import platform_env, shared_vhost, worker_pool
from support.processes import free_port, start_api
from support.wait import until


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


def test_a_type_is_skipped_only_when_every_worker_lacks_its_model() -> None:
    types = {t: {"queue": t} for t in ("detection", "sentiment", "scrape")}
    types["detection"]["model_hint"] = "`make models` fetches them."
    lost = {"status": "unavailable", "message": "The weights are not here: put them in models/.",
            "workers": {"loaded": 0, "unavailable": 2}}
    ready = {"queues": {"detection": {"consumers": 2, "model": lost},
                        "sentiment": {"consumers": 2, "model": {"status": "loaded", "model": "vader"}},
                        "scrape": {"consumers": 1}}}
    assert models_unavailable(types, ready) == {"detection": f"{lost['message']} `make models` fetches them."}
    ready["queues"]["detection"]["model"] = {"status": "loaded", "workers": {"loaded": 1, "unavailable": 1}}
    assert models_unavailable(types, ready) == {}
    assert models_unavailable(types, None) == {}


def test_the_demo_skips_a_type_whose_model_no_worker_has(capsys) -> None:
    """A detection pool without its weights: the demo runs the rest, says in one line why detection was left
    out and how to install it, and exits 0; with --strict, the skip fails the demo."""
    with shared_vhost() as broker_url:
        env = platform_env(broker_url, services.REDIS_URL, DETECTION_MODEL="absent-weights.pt",
                           SENTIMENT_MODEL="vader", ALLOW_DOWNLOADS="0")
        proc, api = start_api(env)
        try:
            with worker_pool(env, api, "detection"), worker_pool(env, api, "sentiment"):
                until(lambda: requests.get(f"{api}/ready", timeout=10).json()["queues"]["detection"].get("model"),
                      60, "the detection pool reporting its model")
                capsys.readouterr()
                code = main(["demo", "--only", "sentiment,detection", "--json", "--api", api])
                out, err = capsys.readouterr()
                assert code == 0, out + err
                assert {job["type"] for job in json.loads(out)["jobs"]} == {"sentiment"}
                [skip] = [line for line in err.splitlines() if line.startswith("skipped")]
                assert skip.startswith("skipped detection: its model is unavailable on every worker: ")
                assert "absent-weights.pt" in skip and "make models" in skip
                assert main(["demo", "--only", "sentiment,detection", "--strict", "-q", "--api", api]) == 1
                # Only skipped types asked for: nothing ran, so nothing failed (the skip line says why).
                assert main(["demo", "--only", "detection", "-q", "--api", api]) == 0
                assert main(["demo", "--only", "detection", "--strict", "-q", "--api", api]) == 1
        finally:
            proc.stop()
            services.delete_keys(env["KEY_PREFIX"])
