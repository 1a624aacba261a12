"""OpenAPI request bodies for the submit routes, made from the catalog's pydantic models.

The submit routes accept JSON, a multipart upload, or either (audio_length), so their request
bodies are written here from the same models that `api.inputs` validates with.
"""

from __future__ import annotations

from typing import Any

from flask_openapi3.models import Schema
from pydantic import BaseModel

from common.catalog import JobType
from common.settings import Settings

REF = "#/components/schemas/{model}"
# A JSON body's `webhook` is told in the operation's description: an `allOf` around the input model here made
# openapi-python-client drop the operation.
WEBHOOK = {"type": "string", "format": "uri", "description": (
    "Optional: an http(s) URL the job's record is posted to, signed, when it ends (docs/webhooks.md); refused "
    "with 400 `webhook_refused` where the SSRF guard never lets it through."), "examples": ["https://example.com/hook"]}


def register(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=REF)
    for name, sub in [*schema.pop("$defs", {}).items(), (model.__name__, schema)]:
        known = components.get(name)
        if known is not None and known != Schema(**sub):  # two types' models named alike: one would hide the other
            raise RuntimeError(f"two different schemas are both named {name} in /openapi.json: rename one")
        components[name] = Schema(**sub)
    return {"$ref": REF.format(model=model.__name__)}


def request_body(job_type: JobType, settings: Settings, components: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    input_model = job_type.input_schema(settings)
    if input_model is not None:
        content["application/json"] = {"schema": register(input_model, components)}
    if job_type.upload is not None:
        upload = job_type.upload
        properties: dict[str, Any] = {upload.field: {"type": "string", "format": "binary",
                                                      "description": f"{upload.kinds}, recognised by content."}}
        if upload.options_model is not None:
            properties.update(upload.options_model.model_json_schema()["properties"])
        properties["webhook"] = WEBHOOK
        content["multipart/form-data"] = {"schema": {"type": "object", "required": [upload.field],
                                                     "properties": properties}}
    return {"required": True, "content": content}
