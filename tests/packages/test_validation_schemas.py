"""The parsed copies of the schemas (``packages/validation/schemas/NAME.json``): each is its
YAML file parsed, for a quicker load in a new process (issue 15); a stale copy is never used."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from package_storage.packages.validation import schemas

FOLDER = resources.files("package_storage.packages.validation").joinpath("schemas")
REWRITE = (
    "python -c 'from package_storage.packages.validation.schemas import write_parsed_copies"
    " as w; w()'"
)


@pytest.mark.parametrize("name", schemas.schema_names())
def test_each_schema_has_a_current_parsed_copy(name: str) -> None:
    copy = FOLDER.joinpath(f"{name}.json")
    assert copy.is_file(), f"schemas/{name}.json is missing: run {REWRITE}"
    assert copy.read_text("utf-8") == schemas.parsed_copy(name), (
        f"schemas/{name}.json is not {name}.yml as it is now: run {REWRITE}"
    )


@pytest.mark.parametrize("name", schemas.schema_names())
def test_a_loaded_schema_is_its_yaml(name: str) -> None:
    text = FOLDER.joinpath(f"{name}.yml").read_text("utf-8")
    parsed = schemas._parse(text)
    assert schemas._load(name) == parsed
    # Same types and key order (JSON keeps both; True is not 1 here).
    assert json.dumps(schemas._load(name)) == json.dumps(parsed)


def test_a_stale_or_foreign_copy_is_not_used() -> None:
    text = FOLDER.joinpath("changelog.yml").read_text("utf-8")
    copy = schemas.parsed_copy("changelog")
    assert schemas.from_parsed_copy(text, copy) == (True, schemas._parse(text))
    assert schemas.from_parsed_copy(text + "\n# edited\n", copy) == (False, None)
    assert schemas.from_parsed_copy(text, "not json") == (False, None)
    assert schemas.from_parsed_copy(text, "[1, 2]") == (False, None)
