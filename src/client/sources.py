"""Where jobs come from: texts, files, folders, globs, URLs, CSV columns and JSON Lines, one `Job` per input."""

from __future__ import annotations

import csv
import datetime as dt
import glob
import json
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".opus", ".mp3"})


class UsageError(Exception):
    """The command line or an input file cannot be turned into jobs."""


@dataclass
class Job:
    """One input: a JSON body, or a file (`file` on disk, or `content` in memory) with form fields."""

    type: str
    label: str
    body: dict[str, Any] | None = None
    file: Path | None = None
    content: bytes | None = None
    filename: str = ""
    form: dict[str, str] = field(default_factory=dict)
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # the Idempotency-Key of every attempt


@dataclass
class Plan:
    """The jobs to run; `total` is None when they stream in (stdin) and the count is not known yet."""

    jobs: Iterable[Job]
    total: int | None
    skipped: list[str] = field(default_factory=list)  # job types left out (the demo's, for want of a model)


def listed(jobs: list[Job]) -> Plan:
    if not jobs:
        raise UsageError("nothing to do: no inputs were given")
    return Plan(jobs, len(jobs))


def read_lines(name: str) -> Iterator[str]:
    """Non-empty lines of a file, or of stdin for `-` (read as they come)."""
    if name == "-":
        yield from (line.strip() for line in sys.stdin if line.strip())
        return
    try:
        with open(name, encoding="utf-8") as handle:
            yield from (line.strip() for line in handle if line.strip())
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None


def read_column(name: str, column: str) -> list[str]:
    try:
        with open(name, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if column not in (reader.fieldnames or []):
                raise UsageError(f"{name} has no column {column!r} (it has: {', '.join(reader.fieldnames or [])})")
            return [row[column].strip() for row in reader if (row[column] or "").strip()]
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None


def sentiment(texts: Iterable[str], batch: int = 1) -> Iterator[Job]:
    """One job per text, or per `batch` texts (sent as `texts`)."""
    chunk: list[str] = []
    for text in texts:
        if batch <= 1:
            yield Job("sentiment", text, body={"text": text})
            continue
        chunk.append(text)
        if len(chunk) == batch:
            yield Job("sentiment", f"{chunk[0]} (+{batch - 1})", body={"texts": chunk})
            chunk = []
    if chunk:
        yield Job("sentiment", f"{chunk[0]} (+{len(chunk) - 1})", body={"texts": chunk})


def expand(items: Iterable[str], suffixes: frozenset[str]) -> list[Path]:
    """Files as given; folders searched recursively for `suffixes`; globs (quoted on the shell) expanded."""
    paths: list[Path] = []
    for item in items:
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        if not matches:
            raise UsageError(f"no file matches {item!r}")
        for match in map(Path, matches):
            if match.is_dir():
                paths += sorted(p for p in match.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            elif match.is_file():
                paths.append(match)
            else:
                raise UsageError(f"no such file or folder: {match}")
    return paths


def detection(items: Iterable[str], options: dict[str, str]) -> list[Job]:
    return [Job("detection", str(p), file=p, form=options) for p in expand(items, IMAGE_SUFFIXES)]


def audio_length(items: Iterable[str]) -> list[Job]:
    urls = [i for i in items if i.startswith(("http://", "https://"))]
    files = expand([i for i in items if i not in urls], AUDIO_SUFFIXES)
    return [Job("audio_length", u, body={"url": u}) for u in urls] + \
        [Job("audio_length", str(p), file=p) for p in files]


def parse_select(pair: str) -> tuple[str, str]:
    name, sep, css = pair.partition("=")
    if not sep or not name.strip() or not css.strip():
        raise UsageError(f"--select takes name=css, not {pair!r}")
    return name.strip(), css.strip()


def scrape(urls: Iterable[str], selects: Iterable[str], draws: Iterable[dt.date]) -> list[Job]:
    selectors = dict(parse_select(s) for s in selects)
    urls = list(urls)
    if urls and not selectors:
        raise UsageError("say what to extract from each page with --select name=css (e.g. --select title=h1)")
    jobs = [Job("scrape", u, body={"url": u, "selectors": selectors}) for u in urls]
    return jobs + [Job("scrape", f"euromillions {d.isoformat()}",
                       body={"preset": "euromillions", "draw_date": d.isoformat()}) for d in draws]


def jsonl(name: str) -> Iterator[Job]:
    """`{"type": ..., <the JSON body>}` per line, or `{"type": ..., "file": PATH, <form fields>}` for an upload.

    A relative `file` is read from the JSONL file's folder. Blank lines and lines starting with # are skipped.
    """
    base = Path.cwd() if name == "-" else Path(name).parent
    for number, line in enumerate(read_lines(name), 1):
        if not line.startswith("#"):
            yield _jsonl_job(line, f"{name}:{number}", base)


def _jsonl_job(line: str, where: str, base: Path) -> Job:
    try:
        item = json.loads(line)
    except ValueError:
        raise UsageError(f"{where} is not JSON") from None
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        raise UsageError(f'{where} needs a "type", like {{"type": "sentiment", "text": "..."}}')
    job_type = item.pop("type")
    if "file" not in item:
        return Job(job_type, json.dumps(item, ensure_ascii=False)[:80], body=item)
    path = base / str(item.pop("file"))
    return Job(job_type, str(path), file=path, form={k: str(v) for k, v in item.items()})
