"""The package-spec's own test packages (../shared/fixtures/package-spec) and the new rules."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from package_storage.cli.build import inspect_package
from package_storage.packages.validation import schemas, specversions
from package_storage.packages.validation.documents import _expand

REPO = Path(__file__).resolve().parents[2]
SPEC_FIXTURES = REPO / ".." / "shared" / "fixtures" / "package-spec"
CASES: list[dict[str, Any]] = (
    json.loads((SPEC_FIXTURES / "cases.json").read_text())
    if (SPEC_FIXTURES / "cases.json").exists()
    else []
)
RULES: dict[str, list[list[str]]] = json.loads(
    (Path(__file__).parent / "data" / "spec_case_rules.json").read_text()
)


def _zip(folder: Path, tmp: Path) -> Path:
    """A built package as a registry receives it: the folder zipped under ``<name>/``."""
    out = tmp / f"{folder.name}.zip"
    with zipfile.ZipFile(out, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, f"{folder.name}/{file.relative_to(folder).as_posix()}")
    return out


def _problems(
    case: dict[str, Any], tmp: Path, *, warnings_as_errors: bool
) -> list[tuple[str, str, str]]:
    root = SPEC_FIXTURES / case["path"]
    if case["id"].startswith("built_packages/"):
        root = _zip(root, tmp)
    errors, _warnings, _pkg = inspect_package(root, warnings_as_errors=warnings_as_errors)
    return [(p.path, p.rule, p.message) for p in errors]


VALID = [c for c in CASES if c["expect"] == "valid" or c.get("warning_only")]
INVALID = [c for c in CASES if c["expect"] == "invalid"]


@pytest.mark.parametrize("case", VALID, ids=[c["id"] for c in VALID])
def test_valid_spec_package_is_accepted(case: dict[str, Any], tmp_path: Path) -> None:
    """Valid (and warning-only) cases: no error without --warnings-as-errors."""
    assert _problems(case, tmp_path, warnings_as_errors=False) == []


@pytest.mark.parametrize("case", INVALID, ids=[c["id"] for c in INVALID])
def test_invalid_spec_package_is_rejected_for_the_right_reason(
    case: dict[str, Any], tmp_path: Path
) -> None:
    """Each error the spec's tests require has a problem on the same file with our rule for it
    (tests/packages/data/spec_case_rules.json); warning-only cases with warnings as errors."""
    got = _problems(case, tmp_path, warnings_as_errors=bool(case.get("warning_only")))
    assert got, "accepted"
    wanted = RULES[case["id"]]
    for expected, rules in zip(case["errors"], wanted, strict=True):
        assert any(
            (expected["file"] is None or file == expected["file"]) and rule in rules
            for file, rule, _m in got
        ), (expected, got)


# --- format_version ---------------------------------------------------------------------------


@pytest.mark.parametrize("fv", ["999.0.0", "3.6.7", "0.1.0", "3.7.0-next", "x"])
def test_unknown_format_versions_are_refused(fv: str) -> None:
    problem = specversions.format_version_problem({"format_version": fv, "version": "1.0.0"})
    assert problem is not None and problem.rule == "format-version-unknown"


@pytest.mark.parametrize("fv", ["1.0.0", "2.13.0", "3.0.0", "3.6.6", "1.1.0"])
def test_known_format_versions_pass(fv: str) -> None:
    assert specversions.format_version_problem({"format_version": fv, "version": "1.0.0"}) is None


def test_ga_package_on_unreleased_spec_is_refused() -> None:
    problem = specversions.format_version_problem({"format_version": "3.7.0", "version": "1.0.0"})
    assert problem is not None and problem.rule == "format-version-unreleased"
    assert (
        specversions.format_version_problem({"format_version": "3.7.0", "version": "1.0.0-beta1"})
        is None
    )


@given(st.text(max_size=20))
def test_spec_version_lookup_never_raises(text: str) -> None:
    result = specversions.spec_version_for(text)
    assert result is None or result in specversions.SPEC_VERSIONS


# --- schemas per format_version ---------------------------------------------------------------


def _rules(name: str, fv: str, doc: Any) -> list[str]:
    return [m for _r, m in schemas.errors(name, fv, doc)]


def test_changelog_deprecation_type_since_3_6_0() -> None:
    doc = [
        {"version": "1.0.0", "changes": [{"description": "d", "type": "deprecation", "link": "l"}]}
    ]
    assert _rules("changelog", "3.6.0", doc) == []
    assert _rules("changelog", "3.5.0", doc) == [
        "field 0.changes.0.type: 0.changes.0.type must be one of the following: "
        '"breaking-change", "bugfix", "enhancement"'
    ]


def test_data_stream_type_profiles_since_2_7_0_and_type_optional() -> None:
    assert _rules("data_stream_manifest", "2.7.0", {"title": "t", "type": "profiles"}) == []
    assert _rules("data_stream_manifest", "2.6.0", {"title": "t", "type": "profiles"}) != []
    assert _rules("data_stream_manifest", "3.0.0", {"title": "t"}) == []


def test_owner_type_required_since_3_0_0() -> None:
    base = {
        "format_version": "1.0.0",
        "name": "a",
        "title": "t",
        "description": "d",
        "version": "1.0.0",
        "type": "integration",
        "owner": {"github": "elastic/x"},
    }
    assert "field owner: type is required" in _rules("integration_manifest", "3.0.0", base)
    assert "field owner: type is required" not in _rules("integration_manifest", "2.13.0", base)


def test_release_key_only_before_2_3_0() -> None:
    base = {
        "format_version": "1.0.0",
        "name": "a",
        "title": "t",
        "description": "d",
        "version": "1.0.0",
        "type": "integration",
        "owner": {"github": "elastic/x"},
        "release": "ga",
    }
    assert "field (root): Additional property release is not allowed" in _rules(
        "integration_manifest", "2.3.0", base
    )
    assert not any("release" in m for m in _rules("integration_manifest", "2.2.0", base))


def test_input_without_type_with_dynamic_signal_types() -> None:
    base = {
        "format_version": "3.6.0",
        "name": "a",
        "title": "t",
        "description": "d",
        "version": "1.0.0",
        "type": "input",
        "owner": {"github": "e", "type": "elastic"},
        "policy_templates": [
            {
                "name": "n",
                "title": "t",
                "description": "d",
                "input": "otelcol",
                "template_path": "i.yml.hbs",
                "dynamic_signal_types": True,
            }
        ],
    }
    assert _rules("input_manifest", "3.6.0", base) == []


def test_schemas_are_compiled_once_per_format_version() -> None:
    assert schemas.validator("changelog", "3.0.0") is schemas.validator("changelog", "3.0.0")


@given(st.dictionaries(st.text(alphabet="abc", min_size=1, max_size=3), st.integers(), max_size=5))
def test_expanding_undotted_keys_is_identity(doc: dict[str, int]) -> None:
    assert _expand(doc) == doc


@given(
    st.lists(st.text(alphabet="ab", min_size=1, max_size=2), min_size=1, max_size=3), st.integers()
)
def test_expanding_a_dotted_key_nests_it(parts: list[str], value: int) -> None:
    nested: Any = value
    for part in reversed(parts):
        nested = {part: nested}
    assert _expand({".".join(parts): value}) == nested
