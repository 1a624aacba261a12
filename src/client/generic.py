"""`submit TYPE key=value … [FILE …]`: jobs of any type the API lists, built from its `GET /v1/job-types` entry.

Each `key=value` is a field: its value is JSON when it parses as JSON (`3`, `0.5`, `true`, `["a", "b"]`,
`{"h": "h1"}`), else the text as typed; `key=@path` reads the value from a file the same way. Without a
file the fields are the JSON body (one job). Each FILE is one upload in the type's multipart field, with the
fields as form fields. A word is a field when what comes before its first `=` is an identifier, else a file
(`./a=b.jpg` names a file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from client.sources import Job, UsageError


def jobs(job_type: str, words: Iterable[str], listing: dict[str, Any]) -> list[Job]:
    """The jobs `words` ask for, checked against what `listing` (the type's `/v1/job-types` entry) accepts."""
    fields: dict[str, str] = {}
    files: list[Path] = []
    for word in words:
        key, sep, raw = word.partition("=")
        if sep and key.isidentifier():
            fields[key] = _read(raw[1:], word) if raw.startswith("@") else raw
        else:
            files.append(Path(word))
    inputs = listing.get("inputs", {})
    upload = inputs.get("multipart")
    if files:
        if not upload:
            raise UsageError(f"{job_type} takes no file; give its fields as key=value ({_fields_of(listing)})")
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise UsageError(f"no such file: {', '.join(missing)}")
        return [Job(job_type, str(f), file=f, form=fields) for f in files]
    if "json" not in inputs:
        field = upload["field"] if upload else "?"
        raise UsageError(f"{job_type} takes a file (sent as its {field!r} field): name one after the key=value fields")
    if not fields:
        raise UsageError(f"say what to send to {job_type} as key=value ({_fields_of(listing)})")
    body = {key: value_of(raw) for key, raw in fields.items()}
    return [Job(job_type, json.dumps(body, ensure_ascii=False), body=body)]


def value_of(raw: str) -> Any:
    """JSON when `raw` parses as JSON, else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _read(name: str, word: str) -> str:
    try:
        return Path(name).read_text(encoding="utf-8").removesuffix("\n")
    except OSError as exc:
        raise UsageError(f"{word}: cannot read {name}: {exc.strerror}") from None


def _fields_of(listing: dict[str, Any]) -> str:
    """What the type's JSON body takes, and its example when the API gives one."""
    schema = listing.get("inputs", {}).get("json") or {}
    shapes = [schema, *schema.get("$defs", {}).values()]  # a union of shapes keeps each in `$defs`
    names = list(dict.fromkeys(name for shape in shapes for name in shape.get("properties", {})))
    takes = f"it takes {', '.join(names)}" if names else "see GET /v1/job-types"
    example = listing.get("example")
    if isinstance(example, dict) and example:
        takes += "; e.g. " + " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in example.items())
    return takes
