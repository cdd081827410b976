"""Tests for validation.py: one example per rule on small in-memory trees, plus the fixtures."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from dict_tree import DictTree, folder_tree
from package_storage.packages.validation import Problem, validate, validate_for_publish

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / ".." / "shared" / "fixtures" / "epr"
EXAMPLES = REPO / "examples" / "packages"


def zip_tree(path: Path) -> DictTree:
    """The package inside a zip: the directory of the first ``D/manifest.yml`` entry (spec §7.3)."""
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        root = next(
            n.split("/")[0] for n in names if n.count("/") == 1 and n.endswith("/manifest.yml")
        )
        files: dict[str, bytes | str] = {
            n[len(root) + 1 :]: archive.read(n) for n in names if n.startswith(root + "/")
        }
    return DictTree(files, dir_entries=False, location=str(path))


# --- a small valid package -------------------------------------------------------------------

MANIFEST = """\
format_version: 3.0.0
name: sample
title: Sample
description: A sample package.
version: 1.2.3
type: integration
owner:
  github: elastic/integrations
  type: elastic
icons:
  - src: /img/icon.svg
screenshots:
  - src: /img/shot.png
    title: A screenshot
policy_templates:
  - name: sample
    title: Sample
    description: Sample logs.
    data_streams: [log]
    inputs:
      - type: logfile
        title: Logs
        description: Collect logs.
"""

DS_MANIFEST = """\
title: Sample logs
type: logs
streams:
  - input: logfile
    title: Log files
    description: Collect log files.
"""

BASE_FIELDS = """\
- name: data_stream.type
  type: constant_keyword
- name: data_stream.dataset
  type: constant_keyword
- name: data_stream.namespace
  type: constant_keyword
- name: "@timestamp"
  type: date
"""

CHANGELOG = """\
- version: 1.2.3
  changes:
    - description: Fix things.
      type: bugfix
      link: https://github.com/elastic/integrations/pull/2
- version: 1.0.0
  changes:
    - description: Initial release.
      type: enhancement
      link: https://github.com/elastic/integrations/pull/1
"""


def sample(**overrides: str | None) -> dict[str, bytes | str]:
    """The files of a valid package; ``overrides`` replace (str) or delete (None) files."""
    files: dict[str, bytes | str] = {
        "manifest.yml": MANIFEST,
        "changelog.yml": CHANGELOG,
        "docs/README.md": "# Sample\n",
        "img/icon.svg": "<svg/>",
        "img/shot.png": b"\x89PNG",
        "data_stream/log/manifest.yml": DS_MANIFEST,
        "data_stream/log/fields/base-fields.yml": BASE_FIELDS,
        "data_stream/log/agent/stream/stream.yml.hbs": "paths: {{paths}}\n",
    }
    for key, value in overrides.items():
        path = key.replace("__", "/")
        if value is None:
            files.pop(path, None)
        else:
            files[path] = value
    return files


def with_manifest(old: str, new: str, files: dict[str, bytes | str] | None = None) -> DictTree:
    files = dict(files or sample())
    text = files["manifest.yml"]
    assert isinstance(text, str) and old in text, old
    files["manifest.yml"] = text.replace(old, new, 1)
    return DictTree(files)


def with_file(path: str, content: str | bytes | None) -> DictTree:
    files = sample()
    if content is None:
        files.pop(path)
    else:
        files[path] = content
    return DictTree(files)


def rules(problems: list[Problem]) -> list[str]:
    return [p.rule for p in problems]


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# --- basics ----------------------------------------------------------------------------------


def test_valid_sample_passes_both_sets() -> None:
    tree = DictTree(sample())
    assert validate(tree) == []
    assert validate_for_publish(tree) == []


def test_problem_str() -> None:
    problem = Problem("manifest.yml", "title-missing", "no title set for package: x")
    assert str(problem) == "manifest.yml: no title set for package: x [title-missing]"


def test_missing_manifest() -> None:
    files = sample()
    del files["manifest.yml"]
    problem = only(validate(DictTree(files)))
    assert (problem.path, problem.rule) == ("manifest.yml", "manifest-missing")
    assert "manifest-missing" in rules(validate_for_publish(DictTree(files)))


@pytest.mark.parametrize("text", ["a: [", "- just\n- a list\n"])
def test_manifest_that_does_not_parse_as_a_map(text: str) -> None:
    problem = only(validate(DictTree(sample(manifest_yml=None) | {"manifest.yml": text})))
    assert (problem.path, problem.rule) == ("manifest.yml", "yaml-invalid")


# --- load-time rules: manifest -------------------------------------------------------------


def test_format_version_missing() -> None:
    problem = only(validate(with_manifest("format_version: 3.0.0\n", "")))
    assert (problem.path, problem.rule, problem.message) == (
        "manifest.yml",
        "format-version-missing",
        "no format_version set",
    )


@pytest.mark.parametrize("value", ["3.0", "v3.0.0", "03.0.0", "3.0.0-01"])
def test_format_version_not_strict(value: str) -> None:
    problem = only(validate(with_manifest("format_version: 3.0.0", f"format_version: {value}")))
    assert problem.rule == "format-version-invalid"
    assert repr(value) in problem.message


@pytest.mark.parametrize("value", ["1.2", "v1.2.3", "1.2.3.4", "a.b.c", '""'])
def test_version_not_strict(value: str) -> None:
    tree = with_manifest("version: 1.2.3", f"version: {value}")
    assert "version-invalid" in rules(validate(tree))


def test_prerelease_and_build_versions_are_strict() -> None:
    files = sample(changelog_yml=None)
    tree = with_manifest("version: 1.2.3", "version: 1.2.3-rc.1+build.5", files)
    assert validate(tree) == []


def test_title_missing_or_empty() -> None:
    for tree in (with_manifest("title: Sample\n", ""), with_manifest("title: Sample", 'title: ""')):
        problem = only(validate(tree))
        assert (problem.rule, problem.message) == (
            "title-missing",
            "no title set for package: sample",
        )


def test_description_missing() -> None:
    problem = only(validate(with_manifest("description: A sample package.\n", "")))
    assert (problem.rule, problem.message) == ("description-missing", "no description set")


def test_icon_and_screenshot_must_exist() -> None:
    files = sample()
    del files["img/icon.svg"]
    del files["img/shot.png"]
    problems = validate(DictTree(files))
    assert rules(problems) == ["icon-missing", "screenshot-missing"]
    assert all(p.path == "manifest.yml" for p in problems)
    assert "'/img/icon.svg'" in problems[0].message


def test_icon_src_without_leading_slash_and_escaping_src() -> None:
    assert validate(with_manifest("src: /img/icon.svg", "src: img/icon.svg")) == []
    tree = with_manifest("src: /img/icon.svg", "src: /../img/icon.svg")
    assert rules(validate(tree)) == ["icon-missing"]


def test_icon_found_in_zip_without_directory_entries() -> None:
    assert validate(DictTree(sample(), dir_entries=False)) == []


def test_version_dir_must_match_manifest_version() -> None:
    tree = DictTree(sample())
    assert validate(tree, version_dir="1.2.3") == []
    assert validate(tree, version_dir="not-a-version") == []  # zips and odd names: no check
    problem = only(validate(tree, version_dir="1.2.4"))
    assert problem.rule == "version-dir-mismatch"
    assert "path: 1.2.4, manifest: 1.2.3" in problem.message


def test_version_dir_compares_by_semver_precedence() -> None:
    tree = DictTree(sample())
    assert validate(tree, version_dir="v1.2.3") == []  # lenient parse of the directory name
    assert validate(tree, version_dir="1.2.3+meta") == []  # build metadata is ignored
    assert rules(validate(tree, version_dir="1.2.3-rc1")) == ["version-dir-mismatch"]


def test_policy_template_input_needs_exactly_one_of_type_or_package() -> None:
    both = with_manifest("- type: logfile\n", "- type: logfile\n        package: other\n")
    problem = only(validate(both))
    assert (problem.path, problem.rule) == ("manifest.yml", "input-type-or-package")
    assert "but not both" in problem.message

    neither = with_manifest("- type: logfile\n        title: Logs", "- title: Logs")
    problem = only(validate(neither))
    assert problem.rule == "input-type-or-package"
    assert "'Logs'" in problem.message

    package_only = with_manifest("- type: logfile\n", "- package: other\n")
    assert validate(package_only) == []


# --- load-time rules: data streams ----------------------------------------------------------

DS = "data_stream/log/manifest.yml"


def test_dataset_must_not_contain_dash() -> None:
    problem = only(validate(with_file(DS, DS_MANIFEST + "dataset: sample-log\n")))
    assert (problem.path, problem.rule) == (DS, "dataset-invalid")
    assert "sample-log" in problem.message


def test_default_dataset_uses_package_name() -> None:
    files = sample()
    tree = with_manifest("name: sample", "name: sam-ple", files)
    assert "dataset-invalid" in rules(validate(tree))


@pytest.mark.parametrize("ds_type", ["log", "events", ""])
def test_data_stream_type_must_be_known(ds_type: str) -> None:
    tree = with_file(DS, DS_MANIFEST.replace("type: logs", f"type: {ds_type}"))
    problem = only(validate(tree))
    assert (problem.path, problem.rule) == (DS, "data-stream-type-invalid")


@pytest.mark.parametrize("ds_type", ["logs", "metrics", "synthetics", "traces"])
def test_data_stream_types_accepted(ds_type: str) -> None:
    assert validate(with_file(DS, DS_MANIFEST.replace("type: logs", f"type: {ds_type}"))) == []


PIPELINES = "data_stream/log/elasticsearch/ingest_pipeline"


def test_declared_ingest_pipeline_must_exist() -> None:
    tree = with_file(DS, DS_MANIFEST + "ingest_pipeline: entry\n")
    problem = only(validate(tree))
    assert (problem.path, problem.rule) == (DS, "ingest-pipeline-missing")
    assert "'entry'" in problem.message


@pytest.mark.parametrize(
    ("name", "content"),
    [("entry.json", '{"processors": []}'), ("entry.yml", "processors: []\n"), ("entry.yml", "")],
)
def test_declared_ingest_pipeline_found(name: str, content: str) -> None:
    files = sample() | {
        DS: DS_MANIFEST + "ingest_pipeline: entry\n",
        f"{PIPELINES}/{name}": content,
    }
    assert validate(DictTree(files)) == []


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("entry.json", "{not json"),
        ("entry.json", "[1, 2]"),
        ("entry.json", '{"a": NaN}'),
        ("entry.yml", "processors: [\n"),
        ("entry.yml", "- a list\n"),
    ],
)
def test_declared_ingest_pipeline_must_parse_as_a_map(name: str, content: str) -> None:
    files = sample() | {
        DS: DS_MANIFEST + "ingest_pipeline: entry\n",
        f"{PIPELINES}/{name}": content,
    }
    problem = only(validate(DictTree(files)))
    assert (problem.path, problem.rule) == (f"{PIPELINES}/{name}", "ingest-pipeline-invalid")


def test_default_pipeline_is_checked_when_present() -> None:
    files = sample() | {f"{PIPELINES}/default.yml": "- not a map\n"}
    assert rules(validate(DictTree(files))) == ["ingest-pipeline-invalid"]
    files = sample() | {f"{PIPELINES}/default.json": "{}"}
    assert validate(DictTree(files)) == []


def test_default_pipeline_wins_when_elasticsearch_block_names_none() -> None:
    manifest = (
        DS_MANIFEST + "ingest_pipeline: missing\nelasticsearch:\n  index_template.settings: {}\n"
    )
    files = sample() | {DS: manifest, f"{PIPELINES}/default.json": "{}"}
    assert validate(DictTree(files)) == []  # "default" replaces the legacy name
    del files[f"{PIPELINES}/default.json"]
    assert rules(validate(DictTree(files))) == ["ingest-pipeline-missing"]


def test_pipeline_named_under_elasticsearch_is_not_checked_here() -> None:
    manifest = DS_MANIFEST + "elasticsearch:\n  ingest_pipeline.name: whatever\n"
    assert validate(with_file(DS, manifest)) == []


FIELDS = "data_stream/log/fields"


def test_base_fields_required() -> None:
    tree = with_file(f"{FIELDS}/base-fields.yml", None)
    problems = validate(tree)
    assert rules(problems) == ["base-field-missing"] * 4
    assert {p.path for p in problems} == {FIELDS}
    assert "'data_stream.type'" in problems[0].message
    assert "'@timestamp'" in problems[3].message


def test_base_field_with_wrong_type() -> None:
    tree = with_file(
        f"{FIELDS}/base-fields.yml", BASE_FIELDS.replace("type: date", "type: keyword")
    )
    problem = only(validate(tree))
    assert (problem.path, problem.rule) == (f"{FIELDS}/base-fields.yml", "base-field-type")
    assert problem.message == "wrong field type for '@timestamp' (expected: date, got: keyword)"


def test_base_fields_as_group_and_spread_over_files() -> None:
    group = """\
- name: data_stream
  type: group
  fields:
    - name: type
      type: constant_keyword
    - name: dataset
      type: constant_keyword
    - name: namespace
      type: constant_keyword
"""
    files = sample() | {
        f"{FIELDS}/base-fields.yml": group,
        f"{FIELDS}/ecs.yml": '- name: "@timestamp"\n  type: date\n',
    }
    assert validate(DictTree(files)) == []
    files[f"{FIELDS}/base-fields.yml"] = group.replace("constant_keyword", "keyword", 1)
    problem = only(validate(DictTree(files)))
    assert problem.rule == "base-field-type"
    assert "'data_stream.type'" in problem.message


def test_fields_in_subdirectories_do_not_count() -> None:
    files = sample()
    files[f"{FIELDS}/sub/base-fields.yml"] = files.pop(f"{FIELDS}/base-fields.yml")
    assert rules(validate(DictTree(files))) == ["base-field-missing"] * 4


def test_field_definition_without_name_breaks_the_lookup() -> None:
    tree = with_file(f"{FIELDS}/a.yml", "- type: keyword\n")
    problems = validate(tree)
    assert rules(problems) == ["base-field-missing"] * 4
    assert "has no name" in problems[0].message


@pytest.mark.parametrize("content", ["a: [", "name: x\ntype: keyword\n", "- just a string\n"])
def test_fields_file_must_parse_as_a_list(content: str) -> None:
    tree = with_file(f"{FIELDS}/extra.yml", content)
    problem = only(validate(tree))
    assert (problem.path, problem.rule) == (f"{FIELDS}/extra.yml", "fields-file-invalid")


def test_stream_needs_exactly_one_of_input_or_package() -> None:
    both = DS_MANIFEST.replace("- input: logfile", "- input: logfile\n    package: other")
    problem = only(validate(with_file(DS, both)))
    assert (problem.path, problem.rule) == (DS, "stream-input-or-package")
    assert "'Log files'" in problem.message and "but not both" in problem.message

    neither = DS_MANIFEST.replace("- input: logfile\n    title", "- title")
    assert rules(validate(with_file(DS, neither))) == ["stream-input-or-package"]


def test_data_stream_manifest_that_does_not_parse() -> None:
    problem = only(validate(with_file(DS, "title: [")))
    assert (problem.path, problem.rule) == (DS, "yaml-invalid")


def test_dotted_keys_in_manifests_are_paths() -> None:
    manifest = MANIFEST.replace("owner:\n  github: elastic/integrations\n  type: elastic\n", "")
    manifest += "owner.github: elastic/integrations\nowner.type: elastic\n"
    old = manifest.replace("format_version: 3.0.0", "format_version: 2.13.0")
    assert validate_for_publish(DictTree(sample() | {"manifest.yml": old})) == []
    # from format_version 3.0.0 on the package-spec takes a dotted key as written
    problems = validate_for_publish(DictTree(sample() | {"manifest.yml": manifest}))
    assert "field (root): Additional property owner.github is not allowed" in [
        p.message for p in problems
    ]
    assert validate(DictTree(sample() | {"manifest.yml": manifest})) == []


# --- publish-time rules ----------------------------------------------------------------------


def test_publish_is_a_superset_of_validate() -> None:
    tree = with_manifest("title: Sample\n", "")
    assert rules(validate(tree)) == ["title-missing"]
    assert "title-missing" in rules(validate_for_publish(tree))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("name: sample\n", "", "name"),
        ("type: integration\n", "", "type"),
        ("  github: elastic/integrations\n", "", "owner.github"),
        ("owner:\n  github: elastic/integrations\n  type: elastic\n", "", "owner.github"),
    ],
)
def test_required_manifest_fields(old: str, new: str, field: str) -> None:
    problems = [
        p
        for p in validate_for_publish(with_manifest(old, new))
        if p.rule == "manifest-field-missing"
    ]
    assert [p.message for p in problems] == [f"required field {field!r} is not set"]
    assert problems[0].path == "manifest.yml"


@pytest.mark.parametrize("name", ["Sample", "sam ple", "sam.ple", "sämple"])
def test_name_format(name: str) -> None:
    problems = validate_for_publish(with_manifest("name: sample", f"name: {name}"))
    assert "name-invalid" in rules(problems)


def test_name_length() -> None:
    long_name = "a" * 65
    problems = validate_for_publish(with_manifest("name: sample", f"name: {long_name}"))
    assert rules(problems) == ["name-too-long"]
    assert validate_for_publish(with_manifest("name: sample", f"name: {'a' * 64}")) == []


def test_owner_values() -> None:
    tree = with_manifest("github: elastic/integrations", "github: not a user")
    assert "owner-github-invalid" in rules(validate_for_publish(tree))
    tree = with_manifest("  type: elastic", "  type: someone")
    assert "owner-type-invalid" in rules(validate_for_publish(tree))


def test_type_must_be_known() -> None:
    problem = only(validate_for_publish(with_manifest("type: integration", "type: solution")))
    assert (problem.path, problem.rule) == ("manifest.yml", "type-invalid")
    assert "'solution'" in problem.message


def test_integration_policy_template_data_streams_must_exist() -> None:
    tree = with_manifest("data_streams: [log]", "data_streams: [log, metrics]")
    problem = only(validate_for_publish(tree))
    assert (problem.path, problem.rule) == ("manifest.yml", "policy-template-data-stream-missing")
    assert "'metrics'" in problem.message


INPUT_MANIFEST = """\
format_version: 3.0.0
name: sample_input
title: Sample input
description: An input package.
version: 1.2.3
type: input
owner:
  github: elastic/integrations
  type: elastic
policy_templates:
  - name: sample
    title: Sample
    description: Collect things.
    input: logfile
    type: logs
    template_path: input.yml.hbs
conditions:
  kibana:
    version: ^8.8.0
"""


def input_package(**overrides: str | None) -> dict[str, bytes | str]:
    files = sample(**overrides)
    files["manifest.yml"] = INPUT_MANIFEST
    files["agent/input/input.yml.hbs"] = "paths: {{paths}}\n"
    files["fields/base-fields.yml"] = BASE_FIELDS  # a fields folder is required before 3.5.0
    for path in list(files):
        if path.startswith("data_stream/"):
            del files[path]
    return files


def test_input_package_layout() -> None:
    files = input_package()
    assert validate_for_publish(DictTree(files)) == []

    tree = with_manifest("    input: logfile\n", "", files)
    problems = validate_for_publish(tree)
    # one problem, from the input manifest schema (which owns each template's keys)
    assert [(p.rule, p.message) for p in problems if "input" in p.message] == [
        ("schema-required", "field policy_templates.0: input is required")
    ]

    tree = with_manifest("    type: logs\n", "    type: events\n", files)
    assert rules(validate_for_publish(tree)) == ["schema-enum"]

    tree = with_manifest(INPUT_MANIFEST[INPUT_MANIFEST.index("policy_templates") :], "", files)
    assert "input-policy-templates-missing" in rules(validate_for_publish(tree))

    with_ds = files | {DS: DS_MANIFEST, f"{FIELDS}/base-fields.yml": BASE_FIELDS}
    problem = only(validate_for_publish(DictTree(with_ds)))
    assert (problem.path, problem.rule) == ("data_stream", "input-has-data-streams")


def test_content_package_layout() -> None:
    manifest = INPUT_MANIFEST.replace("type: input", "type: content")
    # content packages are GA in the spec from format_version 3.3.1 (before, a beta feature)
    manifest = manifest.replace("format_version: 3.0.0", "format_version: 3.3.1")
    manifest = manifest[: manifest.index("policy_templates")]
    files = {
        p: v
        for p, v in (input_package() | {"manifest.yml": manifest}).items()
        if not p.startswith(("agent/", "fields/"))  # a content root holds neither
    }
    assert validate_for_publish(DictTree(files)) == []
    agent = files | {"agent/input/input.yml.hbs": "x: 1\n"}
    assert "layout-item-not-allowed" in rules(validate_for_publish(DictTree(agent)))

    with_templates = files | {
        "manifest.yml": INPUT_MANIFEST.replace("type: input", "type: content")
    }
    assert [
        (p.rule, p.message)
        for p in validate_for_publish(DictTree(with_templates))
        if "policy_templates" in p.message
    ] == [
        (
            "schema-additional-property",
            "field (root): Additional property policy_templates is not allowed",
        )
    ]

    with_ds = files | {DS: DS_MANIFEST, f"{FIELDS}/base-fields.yml": BASE_FIELDS}
    assert "content-has-data-streams" in rules(validate_for_publish(DictTree(with_ds)))


def test_data_stream_manifest_required_fields() -> None:
    tree = with_file(DS, DS_MANIFEST.replace("title: Sample logs\n", ""))
    problems = validate_for_publish(tree)
    # reported once, by the rule that owns it (not again by the schema)
    assert problems == [
        Problem(DS, "data-stream-field-missing", "required field 'title' is not set")
    ]
    # the package-spec requires only the title: no type is fine
    assert validate_for_publish(with_file(DS, DS_MANIFEST.replace("type: logs\n", ""))) == []


def test_changelog_missing() -> None:
    problem = only(validate_for_publish(with_file("changelog.yml", None)))
    assert (problem.path, problem.rule) == ("changelog.yml", "changelog-missing")
    assert validate(with_file("changelog.yml", None)) == []  # not a load-time rule


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        ("- version: [\n", "changelog-invalid"),
        ("version: 1.2.3\n", "schema-type"),
        ("[]\n", "changelog-invalid"),
        ("- version: 1.2.3\n", "schema-required"),
        ("- version: 1.2.3\n  changes: []\n", "changelog-invalid"),
        (
            "- version: 1.2.3\n  changes:\n    - description: x\n      type: bugfix\n",
            "schema-required",
        ),
        (
            "- version: 1.2.3\n  changes:\n    - description: x\n      type: fix\n      link: l\n",
            "schema-enum",
        ),
        (
            CHANGELOG
            + "- version: 0.1\n  changes:\n    - {description: x, type: bugfix, link: l}\n",
            "schema-type",  # 0.1 is a YAML number
        ),
    ],
)
def test_changelog_must_be_well_formed(content: str, rule: str) -> None:
    """Each problem once: the schema owns the shape of the entries, changelog-invalid what the
    schema does not say (unparsable YAML, an empty list)."""
    problems = validate_for_publish(with_file("changelog.yml", content))
    assert [(p.path, p.rule) for p in problems] == [("changelog.yml", rule)]


def test_changelog_topmost_version_must_match_manifest() -> None:
    tree = with_manifest("version: 1.2.3", "version: 1.2.4")
    problem = only(validate_for_publish(tree))
    assert (problem.rule, problem.path) == ("changelog-version-mismatch", "changelog.yml")
    assert "'1.2.3'" in problem.message and "'1.2.4'" in problem.message


def test_changelog_highest_version_must_be_the_manifest_version() -> None:
    entry = "- version: 9.0.0\n  changes:\n    - {description: x, type: bugfix, link: l}\n"
    reordered = CHANGELOG + entry
    problem = only(validate_for_publish(with_file("changelog.yml", reordered)))
    assert problem.rule == "changelog-version-not-latest"
    assert "'9.0.0'" in problem.message


def test_changelog_with_prerelease_version() -> None:
    entry = "- version: 1.3.0-rc1\n  changes:\n    - {description: x, type: bugfix, link: l}\n"
    files = sample() | {"changelog.yml": entry + CHANGELOG}
    tree = with_manifest("version: 1.2.3", "version: 1.3.0-rc1", files)
    assert validate_for_publish(tree) == []
    # the release ranks above its prerelease: a manifest at the prerelease is not the latest
    files["changelog.yml"] = entry.replace("1.3.0-rc1", "1.3.0") + entry + CHANGELOG
    tree = with_manifest("version: 1.2.3", "version: 1.3.0-rc1", files)
    assert rules(validate_for_publish(tree)) == ["changelog-version-mismatch"]
    # a "-next" record on top may hold changes to come above the manifest version
    files["changelog.yml"] = entry.replace("1.3.0-rc1", "1.4.0-next") + entry + CHANGELOG
    tree = with_manifest("version: 1.2.3", "version: 1.3.0-rc1", files)
    assert validate_for_publish(tree) == []


def test_readme_required() -> None:
    problem = only(validate_for_publish(with_file("docs/README.md", None)))
    assert (problem.path, problem.rule) == ("docs/README.md", "readme-missing")


# --- fixtures --------------------------------------------------------------------------------


def fixture_packages() -> list[tuple[str, DictTree, str | None]]:
    found: list[tuple[str, DictTree, str | None]] = []
    for base in ("package", "second_package_path"):
        for manifest in sorted((FIXTURES / base).glob("*/*/manifest.yml")):
            root = manifest.parent
            found.append((f"{base}/{root.parent.name}/{root.name}", folder_tree(root), root.name))
    for archive in sorted((FIXTURES / "local-storage").glob("*.zip")):
        found.append((f"local-storage/{archive.name}", zip_tree(archive), None))
    return found


FIXTURE_PACKAGES = fixture_packages() if FIXTURES.is_dir() else []


def test_fixtures_are_found() -> None:
    if not FIXTURES.is_dir():
        pytest.skip("shared fixtures are not available")
    assert len(FIXTURE_PACKAGES) >= 45


@pytest.mark.parametrize(
    ("label", "tree", "version_dir"), FIXTURE_PACKAGES, ids=[f[0] for f in FIXTURE_PACKAGES]
)
def test_every_fixture_passes_load_time_validation(
    label: str, tree: DictTree, version_dir: str | None
) -> None:
    assert [str(p) for p in validate(tree, version_dir=version_dir)] == []


def publish_report() -> dict[str, list[str]]:
    return {
        label: [str(p) for p in validate_for_publish(tree, version_dir=version_dir)]
        for label, tree, version_dir in FIXTURE_PACKAGES
    }


@pytest.mark.skipif(not FIXTURE_PACKAGES, reason="shared fixtures are not available")
def test_fixtures_under_publish_rules() -> None:
    report = publish_report()
    assert set(report["package/reference/1.0.0"]) >= {
        "changelog.yml: field 1.changes.1.type: 1.changes.1.type must be one of the following: "
        '"breaking-change", "bugfix", "enhancement" [schema-enum]',
        "changelog.yml: the topmost changelog entry has version '1.0.4', but the manifest "
        "version is '1.0.0' (the manifest version has no changelog entry) "
        "[changelog-version-mismatch]",
        "manifest.yml: field (root): Additional property compatibility is not allowed "
        "[schema-additional-property]",
    }
    assert set(report["package/agent_privileges/1.0.0"]) >= {
        "manifest.yml: required field 'owner.github' is not set [manifest-field-missing]",
        "manifest.yml: package type 'solution' must be one of integration, input, content "
        "[type-invalid]",
        "changelog.yml: changelog.yml does not exist [changelog-missing]",
    }
    assert (
        "manifest.yml: policy template 'nginx' lists data stream 'datasources.examplelog1', but "
        "data_stream/datasources.examplelog1/manifest.yml does not exist "
        "[policy-template-data-stream-missing]"
    ) in report["package/datasources/1.0.0"]
    assert (
        "changelog.yml: the topmost changelog entry has version '1.0.1', but the manifest "
        "version is '1.0.2' (the manifest version has no changelog entry) "
        "[changelog-version-mismatch]"
    ) in report["package/integration_input/1.0.2"]
    assert (
        "manifest.yml: owner.github 'github.com/elastic/not-apm' must be a GitHub user or "
        "org/team [owner-github-invalid]"
    ) in report["package/traces/1.0.0"]
    # most fixtures are test data without a changelog; these few are publishable as they are
    assert sorted(label for label, problems in report.items() if not problems) == [
        "package/datastream_without_release/0.1.0",
        "package/discovery_empty/0.1.0",
        "package/good_content/0.1.0",
        "package/package_reference/0.1.0",
        "package/package_reference_stream/0.1.0",
    ]


EXAMPLE_PACKAGES = sorted(EXAMPLES.glob("*/*/manifest.yml")) if EXAMPLES.is_dir() else []


@pytest.mark.parametrize(
    "manifest",
    EXAMPLE_PACKAGES,
    ids=[m.parent.relative_to(EXAMPLES).as_posix() for m in EXAMPLE_PACKAGES],
)
def test_example_packages_are_publishable(manifest: Path) -> None:
    root = manifest.parent
    assert [str(p) for p in validate_for_publish(folder_tree(root), version_dir=root.name)] == []


# --- each problem once --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("name: sample\n", "", "manifest-field-missing"),
        ("name: sample\n", "name: Sample-1\n", "name-invalid"),
        ("title: Sample\n", "", "title-missing"),
        ("description: A sample package.\n", "", "description-missing"),
        ("version: 1.2.3\n", "", "version-invalid"),
        ("version: 1.2.3\n", "version: 1.2\n", "version-invalid"),
        ("  github: elastic/integrations\n", "", "manifest-field-missing"),
        ("  github: elastic/integrations\n", "  github: a/b/c\n", "owner-github-invalid"),
        ("  type: elastic\n", "  type: someone\n", "owner-type-invalid"),
        ("  type: elastic\n", "", "schema-required"),
    ],
)
def test_a_manifest_problem_is_reported_once(old: str, new: str, rule: str) -> None:
    """One rule owns each check: the named rule, and the schema does not repeat it."""
    problems = [
        p for p in validate_for_publish(with_manifest(old, new)) if p.path == "manifest.yml"
    ]
    assert rules(problems) == [rule], [str(p) for p in problems]
