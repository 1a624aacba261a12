"""The README's generated tables (`make docs`): the job types, from the catalog, and the settings, from their
descriptions. A new type's folder is all it takes to appear in both."""

from __future__ import annotations

import json
import re
from pathlib import Path

from common import settings_table
from common.catalog import CATALOG, JobType

README = Path(__file__).resolve().parents[2] / "README.md"


def _submit(job_type: JobType) -> str:
    ways = []
    if job_type.upload is not None:
        ways.append(f"multipart `{job_type.upload.field}` ({job_type.upload.kinds})")
    if job_type.input_model is not None or job_type.input_factory is not None:
        # An upload type's example is its form; its JSON alternative is its plain input model.
        names = job_type.input_model.model_fields if job_type.upload and job_type.input_model else job_type.example
        ways.append(f"JSON like `{{{', '.join(json.dumps(name) for name in names)}}}`")
    return " or ".join(ways)


def job_types() -> str:
    lines = ["| job type | what it does | `POST /v1/jobs/<type>` takes |", "|---|---|---|"]
    lines += [f"| `{t.name}` | {t.summary} | {_submit(t)} |" for t in CATALOG]
    return "\n".join(lines) + "\n"


TABLES = {"job-types": job_types, "settings": settings_table.markdown}


def rewrite(text: str) -> str:
    """`text` with each `<!-- name -->…<!-- /name -->` block holding its table as generated now."""
    for name, table in TABLES.items():
        if f"<!-- {name} -->" not in text or f"<!-- /{name} -->" not in text:
            raise ValueError(f"README.md lost its <!-- {name} --> … <!-- /{name} --> markers: put them back")
        block = f"<!-- {name} -->\n{table()}<!-- /{name} -->"
        text = re.sub(rf"(?s)<!-- {name} -->.*?<!-- /{name} -->", block.replace("\\", "\\\\"), text)
    return text


if __name__ == "__main__":
    README.write_text(rewrite(README.read_text()))
