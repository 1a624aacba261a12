"""Pydantic building blocks the job types' declarations share (each spec holds its own models)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    Tag,
    create_model,
    model_validator,
)


class StrictModel(BaseModel):
    """An input that refuses fields it does not name."""

    model_config = ConfigDict(extra="forbid")


class UrlInput(StrictModel):
    url: AnyHttpUrl = Field(description="An http(s) URL the worker fetches.")


def texts_input(name: str, max_texts: int, max_chars: int, many: str) -> type[BaseModel]:
    """`<name>Input`: either `text` (one text) or `texts` (a list of at most `max_texts`), each text with at
    most `max_chars` characters and one non-space; `many` describes what a list is made into. Built from the
    limits in force, so that /openapi.json states them exactly."""
    text = Annotated[str, Field(min_length=1, max_length=max_chars, pattern=r"\S",
                                description="A text with at least one non-space character.")]
    # Named per type: two types' schemas with different limits must not share a component in /openapi.json.
    single = create_model(f"{name}Text", __base__=StrictModel, text=(text, ...))
    texts_field = Field(min_length=1, max_length=max_texts, description=many)
    several = create_model(f"{name}Texts", __base__=StrictModel, texts=(list[text], texts_field))  # type: ignore[valid-type]

    def kind(data: Any) -> str:
        return "texts" if isinstance(data, dict) and "texts" in data else "text"

    class TextsInput(RootModel[Annotated[
        Annotated[single, Tag("text")] | Annotated[several, Tag("texts")],  # type: ignore[valid-type]
        Discriminator(kind),
    ]]):
        """Either `text` (one text) or `texts` (a list)."""

        @model_validator(mode="before")
        @classmethod
        def _readable_limits(cls, data: Any) -> Any:
            """Say what is wrong in the user's words before the schema's own checks do it in pydantic's."""
            if not isinstance(data, dict) or ("text" in data) == ("texts" in data):
                raise ValueError("send exactly one of 'text' (a string) or 'texts' (a list of strings)")
            texts = data.get("texts") if "texts" in data else [data.get("text")]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                return data  # the schema's type errors say it well
            if len(texts) > max_texts:
                raise ValueError(f"at most {max_texts} texts per job, got {len(texts)}")
            for i, one in enumerate(texts):
                if not one.strip():
                    raise ValueError(f"text {i} is empty")
                if len(one) > max_chars:
                    raise ValueError(f"text {i} has {len(one)} characters; the limit is {max_chars}")
            return data

    TextsInput.__name__ = TextsInput.__qualname__ = f"{name}Input"
    TextsInput.model_rebuild(force=True)
    return TextsInput


__all__ = ["StrictModel", "UrlInput", "texts_input"]
