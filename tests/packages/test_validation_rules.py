"""One example per publish-time package-spec rule, on small in-memory packages.

Each test starts from a package that passes (``base()``), breaks one thing and checks that the
rule that should catch it does (and, where it matters, only from the format_version the spec
gives it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_validation import BASE_FIELDS, CHANGELOG, DictTree, sample

from package_storage.packages.validation import (
    Problem,
    check_for_publish,
    spec_warnings,
    validate,
    validate_for_publish,
)
from package_storage.packages.validation.semantic import parse_duration
from package_storage.packages.validation.templates import syntax_error

DS = "data_stream/log"


def base(fv: str = "3.6.0", **files: str | None) -> dict[str, bytes | str]:
    """A valid integration package at format_version ``fv``, with ``files`` replaced/removed."""
    out = sample()
    manifest = out["manifest.yml"]
    assert isinstance(manifest, str)
    out["manifest.yml"] = manifest.replace("format_version: 3.0.0", f"format_version: {fv}")
    for path, content in files.items():
        key = path.replace("__", "/")
        if content is None:
            out.pop(key, None)
        else:
            out[key] = content
    return out


def manifest_with(old: str, new: str, fv: str = "3.6.0") -> str:
    text = base(fv)["manifest.yml"]
    assert isinstance(text, str) and old in text, old
    return text.replace(old, new, 1)


def rules_of(files: dict[str, bytes | str]) -> list[str]:
    return [p.rule for p in validate_for_publish(DictTree(files))]


def problems(files: dict[str, bytes | str]) -> list[Problem]:
    return validate_for_publish(DictTree(files))


@pytest.mark.parametrize("fv", ["2.13.0", "3.0.0", "3.3.2", "3.6.0"])
def test_base_package_passes(fv: str) -> None:
    assert problems(base(fv)) == []


# --- format_version ----------------------------------------------------------------------------


def test_unknown_format_version_is_refused_with_one_line() -> None:
    files = base() | {"manifest.yml": manifest_with("3.6.0", "999.0.0")}
    found = problems(files)
    assert [p.rule for p in found] == ["format-version-unknown"]
    assert "999.0.0" in found[0].message


def test_load_time_validation_is_unchanged_for_unknown_format_versions() -> None:
    files = base() | {"manifest.yml": manifest_with("3.6.0", "999.0.0")}
    assert validate(DictTree(files)) == []


# --- manifests ---------------------------------------------------------------------------------


def test_additional_manifest_key_is_refused() -> None:
    files = base() | {
        "manifest.yml": manifest_with("type: integration\n", "type: integration\nfoo: 1\n")
    }
    assert "field (root): Additional property foo is not allowed" in [
        p.message for p in problems(files)
    ]


def test_dotted_condition_keys_are_refused_from_3_0_0() -> None:
    dotted = "conditions:\n  kibana.version: ^8.12.0\n"
    for fv, refused in (("2.13.0", False), ("3.0.0", True)):
        text = manifest_with("type: integration\n", f"type: integration\n{dotted}", fv)
        found = [p.message for p in problems(base(fv) | {"manifest.yml": text})]
        message = "field conditions: Additional property kibana.version is not allowed"
        assert (message in found) is refused, fv


def test_release_key_exists_only_before_2_3_0() -> None:
    for fv, refused in (("2.2.0", False), ("2.3.0", True)):
        text = manifest_with("type: integration\n", "type: integration\nrelease: beta\n", fv)
        assert (
            "schema-additional-property" in rules_of(base(fv) | {"manifest.yml": text})
        ) is refused


def test_owner_type_required_from_3_0_0() -> None:
    for fv, refused in (("2.13.0", False), ("3.0.0", True)):
        text = manifest_with("  type: elastic\n", "", fv)
        found = [p.message for p in problems(base(fv) | {"manifest.yml": text})]
        assert ("field owner: type is required" in found) is refused


def test_data_stream_type_is_optional_and_profiles_allowed() -> None:
    no_type = base(
        **{
            f"{DS}/manifest.yml": "title: Logs\nstreams:\n  - input: logfile\n    title: L\n    description: D\n"
        }
    )
    assert problems(no_type) == []
    profiles = base(fv="3.6.0")
    profiles["manifest.yml"] = manifest_with("version: 1.2.3", "version: 0.2.3")
    profiles["changelog.yml"] = CHANGELOG.replace("1.2.3", "0.2.3").replace("1.0.0", "0.1.0")
    profiles[f"{DS}/manifest.yml"] = str(profiles[f"{DS}/manifest.yml"]).replace(
        "type: logs", "type: profiles"
    )
    assert problems(profiles) == []


def test_profiles_data_stream_refused_in_ga_package() -> None:
    files = base()
    files[f"{DS}/manifest.yml"] = str(files[f"{DS}/manifest.yml"]).replace(
        "type: logs", "type: profiles"
    )
    assert "profiles-not-ga" in rules_of(files)


# --- changelog ---------------------------------------------------------------------------------


def test_changelog_deprecation_type_from_3_6_0() -> None:
    changelog = CHANGELOG.replace("type: bugfix", "type: deprecation")
    assert problems(base("3.6.0", **{"changelog.yml": changelog})) == []
    assert rules_of(base("3.5.0", **{"changelog.yml": changelog})) == ["schema-enum"]


def test_duplicate_changelog_versions_are_refused() -> None:
    changelog = CHANGELOG.replace("version: 1.0.0", "version: 1.2.3")
    assert "changelog-version-duplicate" in rules_of(base(**{"changelog.yml": changelog}))


def test_changelog_github_links_end_in_a_number() -> None:
    changelog = CHANGELOG.replace("pull/2", "pull/abc")
    assert "changelog-link" in rules_of(base(**{"changelog.yml": changelog}))


# --- layout ------------------------------------------------------------------------------------


def test_dev_folder_names_may_contain_dashes() -> None:
    files = base(
        **{
            "_dev/deploy/docker/docker-compose.yml": "services: {}\n",
            "_dev/deploy/docker/docker-compose.d/x.yml": "a: 1\n",
        }
    )
    assert problems(files) == []


def test_unknown_items_are_refused_where_the_folder_is_closed() -> None:
    assert "layout-item-not-allowed" in rules_of(base(**{"docs/notes.txt": "x"}))
    assert "layout-item-not-allowed" in rules_of(base(**{f"{DS}/extra.yml": "x"}))
    assert "layout-item-not-allowed" in rules_of(base(**{"kibana/dashboard/other-1.json": "{}"}))


def test_data_stream_needs_fields() -> None:
    files = base(**{f"{DS}/fields/base-fields.yml": None})
    assert "layout-item-missing" in rules_of(files)


def test_kibana_dashboard_file_names() -> None:
    good = {"id": "sample-abc", "type": "dashboard"}
    assert problems(base(**{"kibana/dashboard/sample-abc.json": json.dumps(good)})) == []
    ecs = {"id": "sample-abc-ecs", "type": "dashboard"}
    files = base(**{"kibana/dashboard/sample-abc-ecs.json": json.dumps(ecs)})
    assert "layout-item-not-allowed" in rules_of(files)


# --- fields ------------------------------------------------------------------------------------


FIELDS = f"{DS}/fields/base-fields.yml"


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        ("- name: a\n  type: keyword\n- name: a\n  type: keyword\n", "fields-duplicate"),
        (
            "- name: g\n  type: group\n  unit: byte\n  fields:\n    - name: x\n      type: long\n",
            "fields-group-property",
        ),
        ("- name: d\n  type: text\n  dimension: true\n", "fields-dimension-type"),
        ("- name: d\n  type: keyword\n  date_format: yyyy\n", "fields-date-format"),
        ("- name: d\n  type: keyword\n  unit: lightyears\n", "schema-enum"),
        ("- name: e\n  external: ecs\n", "fields-external-without-build"),
    ],
)
def test_field_rules(extra: str, rule: str) -> None:
    assert rule in rules_of(base(**{FIELDS: BASE_FIELDS + extra}))


def test_required_field_with_wrong_type() -> None:
    fields = BASE_FIELDS.replace(
        "- name: data_stream.dataset\n  type: constant_keyword",
        "- name: data_stream.dataset\n  type: keyword",
    )
    assert "fields-required-type" in rules_of(base(**{FIELDS: fields}))


def test_external_ecs_field_without_type_is_fine_with_a_build_file() -> None:
    fields = BASE_FIELDS.replace(
        '- name: "@timestamp"\n  type: date', '- name: "@timestamp"\n  external: ecs'
    )
    build = "dependencies:\n  ecs:\n    reference: git@v8.11.0\n"
    assert problems(base(**{FIELDS: fields, "_dev/build/build.yml": build})) == []


# --- ingest pipelines ----------------------------------------------------------------------------

PIPELINE = f"{DS}/elasticsearch/ingest_pipeline/default.yml"
GOOD_PIPELINE = """---
processors:
  - set:
      tag: set_a
      field: a
      value: b
on_failure:
  - set:
      tag: kind
      field: event.kind
      value: pipeline_error
  - append:
      tag: message
      field: error.message
      value: "{{ _ingest.on_failure_processor_type }} {{ _ingest.on_failure_processor_tag }} {{ _ingest.on_failure_message }} {{ _ingest.pipeline }}"
"""


def test_good_pipeline_passes() -> None:
    assert problems(base(**{PIPELINE: GOOD_PIPELINE})) == []


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (("      tag: set_a\n", ""), "pipeline-tag-missing"),
        (
            (
                "  - set:\n      tag: set_a",
                "  - set:\n      tag: set_a\n      field: x\n  - set:\n      tag: set_a",
            ),
            "pipeline-tag-duplicate",
        ),
        (("value: pipeline_error", "value: failed"), "pipeline-on-failure-event-kind"),
        (("{{ _ingest.pipeline }}", ""), "pipeline-on-failure-message"),
        (
            ("  - set:\n      tag: set_a", "  - reroute:\n      tag: set_a"),
            "schema-additional-property",
        ),
        (("---\n", ""), "yaml-document-dashes"),
    ],
)
def test_pipeline_rules(change: tuple[str, str], rule: str) -> None:
    assert rule in rules_of(base(**{PIPELINE: GOOD_PIPELINE.replace(*change)}))


def test_pipeline_rules_follow_format_version_and_exclude_checks() -> None:
    untagged = GOOD_PIPELINE.replace("      tag: set_a\n", "")
    assert "pipeline-tag-missing" not in rules_of(base("3.5.0", **{PIPELINE: untagged}))
    excluded = base(
        **{PIPELINE: untagged, "validation.yml": "errors:\n  exclude_checks: [SVR00006]\n"}
    )
    assert "pipeline-tag-missing" not in rules_of(excluded)


def test_rename_message_needs_its_guard_and_remove() -> None:
    rename = GOOD_PIPELINE.replace(
        "processors:\n",
        "processors:\n  - rename:\n      tag: r\n      field: message\n      target_field: event.original\n",
    )
    assert rules_of(base(**{PIPELINE: rename})).count("pipeline-rename-message") == 2


# --- kibana ------------------------------------------------------------------------------------


def _dashboard(refs: list[dict[str, str]]) -> str:
    return json.dumps({"id": "sample-d", "type": "dashboard", "references": refs})


def test_dangling_reference_from_3_0_0() -> None:
    ref = [{"id": "sample-missing", "type": "search", "name": "s"}]
    files = {"kibana/dashboard/sample-d.json": _dashboard(ref)}
    assert "kibana-dangling-reference" in rules_of(base("3.0.0", **files))
    assert "kibana-dangling-reference" not in rules_of(base("2.13.0", **files))


def test_visualization_by_reference_is_a_warning_before_3_0_0() -> None:
    ref = [{"id": "sample-v", "type": "visualization", "name": "v"}]
    vis = json.dumps({"id": "sample-v", "type": "visualization"})
    files = base(
        "2.13.0",
        **{
            "kibana/dashboard/sample-d.json": _dashboard(ref),
            "kibana/visualization/sample-v.json": vis,
        },
    )
    tree = DictTree(files)
    assert validate_for_publish(tree) == []
    assert [p.rule for p in spec_warnings(tree)] == ["kibana-by-reference"]
    assert "kibana-by-reference" in [
        p.rule for p in validate_for_publish(tree, warnings_as_errors=True)
    ]
    files3 = base(
        "3.0.0",
        **{
            "kibana/dashboard/sample-d.json": _dashboard(ref),
            "kibana/visualization/sample-v.json": vis,
        },
    )
    errors, warnings = check_for_publish(DictTree(files3))
    assert "kibana-by-reference" in [p.rule for p in errors] and warnings == []


def test_kibana_object_id_matches_file_name() -> None:
    files = base(
        **{"kibana/dashboard/sample-d.json": json.dumps({"id": "other", "type": "dashboard"})}
    )
    assert "kibana-id-mismatch" in rules_of(files)


# --- cross-file rules --------------------------------------------------------------------------


def test_policy_template_input_template_must_exist() -> None:
    text = manifest_with(
        "        description: Collect logs.\n",
        "        description: Collect logs.\n        template_path: missing.yml.hbs\n",
    )
    assert "template-path-missing" in rules_of(base(**{"manifest.yml": text}))


def test_stream_template_must_exist() -> None:
    assert "template-path-missing" in rules_of(base(**{f"{DS}/agent/stream/stream.yml.hbs": None}))


def test_handlebars_template_syntax() -> None:
    files = base(**{f"{DS}/agent/stream/stream.yml.hbs": "{{#if paths}}\npaths: {{paths}}\n"})
    assert "template-invalid" in rules_of(files)


def test_input_package_reference_needs_requires() -> None:
    text = manifest_with("      - type: logfile\n", "      - package: other_input\n")
    assert "requires-missing" in rules_of(base(**{"manifest.yml": text}))


def test_agentless_deployment_needs_identities() -> None:
    modes = "    deployment_modes:\n      agentless:\n        enabled: true\n"
    text = manifest_with("    data_streams: [log]\n", "    data_streams: [log]\n" + modes)
    messages = [p.message for p in problems(base(**{"manifest.yml": text}))]
    assert "field policy_templates.0.deployment_modes.agentless: team is required" in messages


def test_security_rules_need_the_security_capability() -> None:
    rule = json.dumps({"id": "r1", "type": "security-rule", "attributes": {"rule_id": "r1"}})
    assert "capability-missing" in rules_of(base(**{"kibana/security_rule/r1.json": rule}))


def test_ilm_policy_must_exist() -> None:
    ds = str(base()[f"{DS}/manifest.yml"]) + "ilm_policy: logs-sample.log-custom\n"
    assert "ilm-policy-missing" in rules_of(base(**{f"{DS}/manifest.yml": ds}))
    ok = base(**{f"{DS}/manifest.yml": ds, f"{DS}/elasticsearch/ilm/custom.json": "{}"})
    assert problems(ok) == []


@pytest.mark.parametrize(
    ("version", "ok"),
    [("1.2.3-beta1", True), ("1.2.3-next", True), ("1.2.3-alpha", False), ("0.2.3-beta1", False)],
)
def test_prerelease_tags(version: str, ok: bool) -> None:
    text = manifest_with("version: 1.2.3", f"version: {version}")
    changelog = CHANGELOG.replace("1.2.3", version).replace("1.0.0", "0.0.1")
    assert (
        "version-prerelease"
        not in rules_of(base(**{"manifest.yml": text}, **{"changelog.yml": changelog}))
    ) is ok


def test_duration_variable_bounds() -> None:
    var = "vars:\n  - name: period\n    type: duration\n    title: P\n    default: 1h\n    max_duration: 30m\n"
    text = manifest_with("type: integration\n", "type: integration\n" + var)
    assert "duration-var" in rules_of(base(**{"manifest.yml": text}))


# --- parsers -----------------------------------------------------------------------------------


@given(st.text(alphabet="{}#/^!elsif abc\n-~", max_size=40))
def test_template_syntax_check_never_raises(text: str) -> None:
    assert isinstance(syntax_error(text), str)


@given(
    st.lists(
        st.tuples(st.integers(0, 999), st.sampled_from(["h", "m", "s", "ms", "us", "ns"])),
        min_size=1,
        max_size=4,
    )
)
def test_duration_parser_adds_parts(parts: list[tuple[int, str]]) -> None:
    unit = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1}
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_duration(text) == pytest.approx(sum(n * unit[u] for n, u in parts))


@given(st.text(max_size=12))
def test_duration_parser_never_raises(text: str) -> None:
    result: Any = parse_duration(text)
    assert result is None or isinstance(result, float)


def test_var_sections_are_defined_in_their_scope() -> None:
    var = "vars:\n  - name: host\n    type: text\n    title: Host\n    section: connection\n"
    text = manifest_with("type: integration\n", "type: integration\n" + var)
    assert "sections" in rules_of(base(**{"manifest.yml": text}))
    defined = "sections:\n  - name: connection\n    title: Connection\n"
    ok = manifest_with("type: integration\n", "type: integration\n" + defined + var)
    assert problems(base(**{"manifest.yml": ok})) == []


def test_var_group_options_refer_to_defined_optional_vars() -> None:
    groups = (
        "vars:\n  - name: key\n    type: text\n    title: Key\n"
        "var_groups:\n  - name: credentials\n    title: C\n    selector_title: S\n"
        "    options:\n      - name: direct\n        title: D\n        vars: [key]\n"
    )
    text = manifest_with("type: integration\n", "type: integration\n" + groups)
    assert problems(base(**{"manifest.yml": text})) == []
    missing = text.replace("vars: [key]", "vars: [key, secret]")
    assert "var-group-unknown-var" in rules_of(base(**{"manifest.yml": missing}))
    required = text.replace("    title: Key\n", "    title: Key\n    required: true\n")
    assert "var-group-required-var" in rules_of(base(**{"manifest.yml": required}))


def test_package_categories_include_data_stream_parents() -> None:
    ds = str(base()[f"{DS}/manifest.yml"]) + "categories: [security]\n"
    assert "categories-mismatch" in rules_of(base(**{f"{DS}/manifest.yml": ds}))
    text = manifest_with("type: integration\n", "type: integration\ncategories: [security]\n")
    assert problems(base(**{f"{DS}/manifest.yml": ds, "manifest.yml": text})) == []


def test_agentless_release_only_with_another_mode() -> None:
    modes = (
        "    deployment_modes:\n      default:\n        enabled: false\n"
        "      agentless:\n        enabled: true\n        release: beta\n"
        "        organization: o\n        division: d\n        team: t\n"
    )
    text = manifest_with("    data_streams: [log]\n", "    data_streams: [log]\n" + modes)
    assert "agentless-release" in rules_of(base(**{"manifest.yml": text}))
    both = text.replace("        enabled: false\n", "        enabled: true\n", 1)
    assert "agentless-release" not in rules_of(base(**{"manifest.yml": both}))
