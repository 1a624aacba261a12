"""The catalog is the list of the job types' declarations, found from their folders, never named one by one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from common.catalog import CATALOG, discover
from common.settings import SettingsError, read_types
from support.processes import ROOT

SPEC = '''
from pydantic import BaseModel, Field

from common.catalog import JobType, TypeSettings
from common.schemas import StrictModel


class EchoSettings(TypeSettings):
    time_limit_s: int = Field(default=30, gt=0, lt=1500)
    max_words: int = Field(default=7, description="most words echoed")


class EchoInput(StrictModel):
    words: list[str]


class EchoResult(BaseModel):
    words: list[str]


JOB_TYPE = JobType(name="{name}", summary="Words → the same words.", settings_model=EchoSettings,
                   input_model=EchoInput, result_model=EchoResult, image="worker-light")
'''


def make_package(root: Path, package: str, folders: dict[str, str]) -> None:
    """`package/<folder>/spec.py` declaring a type named as given, and a folder with no spec."""
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    for folder, name in folders.items():
        (root / package / folder).mkdir()
        (root / package / folder / "__init__.py").write_text("")
        (root / package / folder / "spec.py").write_text(textwrap.dedent(SPEC.replace("{name}", name)))
    (root / package / "helpers").mkdir()  # a folder without a spec.py is not a job type
    (root / package / "helpers" / "__init__.py").write_text("")


def test_a_type_is_found_from_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_package(tmp_path, "found_types", {"echo": "echo"})
    monkeypatch.syspath_prepend(str(tmp_path))
    catalog = discover("found_types")
    assert [t.name for t in catalog] == ["echo"]
    echo = catalog[0]
    assert (echo.queue, echo.task_name, echo.env_prefix) == ("echo", "echo.run", "ECHO_")
    settings = read_types({"ECHO_MAX_WORDS": "3"}, catalog)["echo"]
    assert (settings.max_words, settings.time_limit_s, settings.concurrency) == (3, 30, 2)
    with pytest.raises(SettingsError, match="ECHO_MAX_WORD "):
        read_types({"ECHO_MAX_WORD": "3"}, catalog)


def test_a_type_named_other_than_its_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_package(tmp_path, "misnamed_types", {"echo": "echoes"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="declares 'echoes'; a type is named as its folder"):
        discover("misnamed_types")


def test_the_platform_catalog_is_every_folder_with_a_spec() -> None:
    folders = {spec.parent.name for spec in (ROOT / "src" / "workers").glob("*/spec.py")}
    assert {t.name for t in CATALOG} == folders >= {"sentiment", "detection", "audio_length", "scrape"}
    for job_type in CATALOG:
        assert job_type.image in {"worker-light", "worker-ml", "worker-detection"}


def test_two_types_whose_schemas_share_a_name_are_refused_in_the_api_docs() -> None:
    """Two types' inputs with different limits under one component name: one would silently state the other's."""
    from api.openapi_docs import register
    from common.schemas import texts_input

    components: dict = {}
    register(texts_input("Same", 2, 10, many="texts"), components)
    register(texts_input("Same", 2, 10, many="texts"), components)  # the same schema again: fine
    with pytest.raises(RuntimeError, match="both named Same"):
        register(texts_input("Same", 3, 10, many="texts"), components)


def test_the_readme_keeps_its_generated_tables() -> None:
    from common.readme_tables import rewrite

    with pytest.raises(ValueError, match="job-types"):
        rewrite("# A README whose tables were deleted by hand\n")
