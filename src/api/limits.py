"""How large each route's request body may be, computed from the catalog.

A submit route allows its upload's limit plus the multipart framing, or the largest JSON body its input
schema can validate; every other route a small body. The API checks `Content-Length` against the route's
limit before it reads a byte (`check_content_length`), and bounds a body sent without one (chunked) while
reading it (`request.max_content_length`). gunicorn closes the connection after such a request, instead of
reading the rest of the body to keep it alive (`api.gunicorn_conf.pre_request`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from common.catalog import CATALOG, JobType
from common.settings import Settings

MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers (with the file's name) and the option fields
SMALL_BODY = 64 * 1024  # every route that takes no job: none needs a body
CHAR_BYTES = 6  # a JSON encoder may write any character as \uXXXX (Python's and requests' do, for non-ASCII)
OPEN_STRING_CHARS = 1024  # a string whose schema sets no maxLength (a URL, a CSS selector)
OPEN_COLLECTION_ITEMS = 100  # an array or a map whose schema sets no maximum
VALUE_SLACK = 16  # quotes, colon, comma and whitespace around one value
SCALAR_BYTES = 32  # a number, true, false or null


def json_max_bytes(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> int:
    """The longest JSON text that `schema` (a pydantic JSON schema) can accept, with pretty-printing slack."""
    defs = schema.get("$defs", defs or {})
    if "$ref" in schema:
        return json_max_bytes(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    choices = schema.get("oneOf") or schema.get("anyOf")
    if choices:
        return max(json_max_bytes(choice, defs) for choice in choices)
    kind = schema.get("type")
    if kind == "string":
        chars = len(schema["const"]) if "const" in schema else schema.get("maxLength", OPEN_STRING_CHARS)
        return chars * CHAR_BYTES + 2
    if kind == "array":
        item = json_max_bytes(schema.get("items", {}), defs)
        return schema.get("maxItems", OPEN_COLLECTION_ITEMS) * (item + VALUE_SLACK) + 2
    if kind == "object":
        return _object_max_bytes(schema, defs)
    return SCALAR_BYTES


def _object_max_bytes(schema: dict[str, Any], defs: dict[str, Any]) -> int:
    total = 2
    for name, value in schema.get("properties", {}).items():
        total += len(name) * CHAR_BYTES + VALUE_SLACK + json_max_bytes(value, defs)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        key = OPEN_STRING_CHARS * CHAR_BYTES + 2
        total += schema.get("maxProperties", OPEN_COLLECTION_ITEMS) * (key + VALUE_SLACK + json_max_bytes(extra, defs))
    return total


def submit_limit(job_type: JobType, settings: Settings) -> int:
    """A job type's body: its JSON input, or its upload in a multipart form, whichever may be larger."""
    input_model = job_type.input_schema(settings)
    limit = json_max_bytes(input_model.model_json_schema()) if input_model is not None else 0
    if job_type.upload is not None:
        limit = max(limit, job_type.upload.max_bytes(job_type.settings(settings)) + MULTIPART_OVERHEAD)
    return limit


@cache
def _submit_limits(settings: Settings) -> dict[str, int]:
    return {f"/v1/jobs/{t.name}": submit_limit(t, settings) for t in CATALOG}


def body_limit(method: str, path: str, settings: Settings) -> int:
    return _submit_limits(settings).get(path, SMALL_BODY) if method == "POST" else SMALL_BODY


def largest_limit(settings: Settings) -> int:
    """What any route may take at most: the app's `MAX_CONTENT_LENGTH`, a second guard."""
    return max(SMALL_BODY, *_submit_limits(settings).values())


def over_limit(method: str, path: str, content_length: int | None, settings: Settings) -> int | None:
    """The route's limit if `content_length` passes it, else None."""
    limit = body_limit(method, path, settings)
    return limit if content_length is not None and content_length > limit else None


__all__ = ["body_limit", "json_max_bytes", "largest_limit", "over_limit", "submit_limit"]
