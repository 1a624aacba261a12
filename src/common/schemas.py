"""Pydantic building blocks the job types' declarations share (each spec holds its own models)."""

from __future__ import annotations

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """An input that refuses fields it does not name."""

    model_config = ConfigDict(extra="forbid")


class UrlInput(StrictModel):
    url: AnyHttpUrl = Field(description="An http(s) URL the worker fetches.")


__all__ = ["StrictModel", "UrlInput"]
