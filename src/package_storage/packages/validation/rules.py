"""Publish-time rules kept from before the package-spec schemas, each one a spec rule stated in
our own words (required fields, name, owner, layout per type, data stream title, changelog
integrity, README), plus one stricter rule of ours: ``name-too-long`` (the name prefixes every
dataset, and Elasticsearch limits a dataset to 100 characters)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from package_storage.errors import PackageError
from package_storage.packages.validation.core import (
    CHANGELOG,
    DATA_STREAM_DIR,
    MANIFEST,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    OWNER_GITHUB_PATTERN,
    OWNER_TYPES,
    PACKAGE_TYPES,
    README,
    Problem,
    _DataStream,
    _maps,
    _Package,
    _parse_strict,
    _strings,
    _text,
)
from package_storage.packages.versions import Version
from package_storage.packages.yamlutil import load_yaml


def _check_required_fields(pkg: _Package) -> Iterator[Problem]:
    """Required manifest fields not already covered by :func:`validate`."""
    m = pkg.manifest
    assert m is not None
    owner = m.get("owner")
    required: list[tuple[str, Any]] = [
        ("name", m.get("name")),
        ("type", m.get("type")),
        ("owner.github", owner.get("github") if isinstance(owner, dict) else None),
    ]
    for key, value in required:
        if not _text(value):
            yield Problem(MANIFEST, "manifest-field-missing", f"required field {key!r} is not set")


def _check_name(pkg: _Package) -> Iterator[Problem]:
    name = pkg.name
    if not name:
        return
    if not NAME_PATTERN.fullmatch(name):
        yield Problem(
            MANIFEST,
            "name-invalid",
            f"package name {name!r} must contain only lowercase letters, digits and underscores",
        )
    if len(name) > MAX_NAME_LENGTH:
        yield Problem(
            MANIFEST,
            "name-too-long",
            f"package name {name!r} has {len(name)} characters, more than {MAX_NAME_LENGTH}",
        )


def _check_owner(pkg: _Package) -> Iterator[Problem]:
    assert pkg.manifest is not None
    owner = pkg.manifest.get("owner")
    if not isinstance(owner, dict):
        return
    github = _text(owner.get("github"))
    if github and not OWNER_GITHUB_PATTERN.fullmatch(github):
        yield Problem(
            MANIFEST,
            "owner-github-invalid",
            f"owner.github {github!r} must be a GitHub user or org/team",
        )
    owner_type = _text(owner.get("type"))
    if owner_type and owner_type not in OWNER_TYPES:
        yield Problem(
            MANIFEST,
            "owner-type-invalid",
            f"owner.type {owner_type!r} must be one of {', '.join(OWNER_TYPES)}",
        )


def _check_type_layout(pkg: _Package) -> Iterator[Problem]:
    m = pkg.manifest
    assert m is not None
    package_type = _text(m.get("type"))
    if not package_type:
        return  # reported as a missing required field
    if package_type not in PACKAGE_TYPES:
        yield Problem(
            MANIFEST,
            "type-invalid",
            f"package type {package_type!r} must be one of {', '.join(PACKAGE_TYPES)}",
        )
        return
    templates = list(_maps(m.get("policy_templates")))
    data_streams = pkg.data_streams()
    if package_type == "integration":
        yield from _check_integration_layout(templates, data_streams)
    elif package_type == "input":
        yield from _check_input_layout(pkg, templates)
    else:
        if pkg.files_in_tree(DATA_STREAM_DIR):
            yield Problem(
                DATA_STREAM_DIR,
                "content-has-data-streams",
                "a content package must not have data streams",
            )
        # policy templates: the content schema has no such key (schema-additional-property)


def _check_integration_layout(
    templates: list[dict[str, Any]], data_streams: list[_DataStream]
) -> Iterator[Problem]:
    names = {ds.name for ds in data_streams}
    for template in templates:
        template_name = _text(template.get("name"))
        for ref in _strings(template.get("data_streams")):
            if ref not in names:
                yield Problem(
                    MANIFEST,
                    "policy-template-data-stream-missing",
                    f"policy template {template_name!r} lists data stream {ref!r}, but "
                    f"{DATA_STREAM_DIR}/{ref}/manifest.yml does not exist",
                )


def _check_input_layout(pkg: _Package, templates: list[dict[str, Any]]) -> Iterator[Problem]:
    if not templates:
        yield Problem(
            MANIFEST,
            "input-policy-templates-missing",
            "an input package must have at least one policy template",
        )
    # each template's input, type (unless dynamic_signal_types) and type values: the input
    # manifest schema, per format_version
    if pkg.files_in_tree(DATA_STREAM_DIR):
        yield Problem(
            DATA_STREAM_DIR,
            "input-has-data-streams",
            "an input package must not have data streams",
        )


def _check_data_stream_for_publish(ds: _DataStream) -> Iterator[Problem]:
    if ds.manifest is None:
        return
    for key in ("title",):  # the package-spec requires only the title (type is optional)
        if not _text(ds.manifest.get(key)):
            yield Problem(
                ds.manifest_path,
                "data-stream-field-missing",
                f"required field {key!r} is not set",
            )


def _check_changelog(pkg: _Package) -> Iterator[Problem]:
    data = pkg.read(CHANGELOG)
    if data is None:
        yield Problem(CHANGELOG, "changelog-missing", f"{CHANGELOG} does not exist")
        return
    try:
        entries = load_yaml(data, path=CHANGELOG)
    except PackageError as exc:
        yield Problem(CHANGELOG, "changelog-invalid", exc.detail)
        return
    # the shape of each entry (keys, types, version pattern, change types per format_version)
    # is the changelog schema's; this rule owns what the schema does not say: not empty,
    # versions unique, ordered and matching the manifest
    if not isinstance(entries, list):
        return
    if not entries:
        yield Problem(CHANGELOG, "changelog-invalid", "the changelog must be a non-empty list")
        return

    versions: list[tuple[str, Version]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        text = _text(entry.get("version"))
        parsed = _parse_strict(text) if text else None
        if parsed is not None:
            versions.append((text, parsed))
        if entry.get("changes") == []:
            yield Problem(
                CHANGELOG,
                "changelog-invalid",
                f"version {text or f'#{index}'}: changes must be a non-empty list",
            )

    seen: set[str] = set()
    for text, _parsed in versions:
        if text in seen:
            yield Problem(
                CHANGELOG,
                "changelog-version-duplicate",
                f"versions in changelog must be unique, found at least two same versions ({text})",
            )
        seen.add(text)
    assert pkg.manifest is not None
    manifest_text = _text(pkg.manifest.get("version"))
    manifest_version = _parse_strict(manifest_text)
    if manifest_version is None or not versions:
        return  # the manifest version problem is reported by validate()
    texts = [text for text, _parsed in versions]
    first_entry = entries[0]
    first_text = _text(first_entry.get("version")) if isinstance(first_entry, dict) else ""
    # the spec: the manifest version is the topmost entry, or the topmost entry is a "-next"
    # record of changes to come and the manifest version is one of the entries
    if first_text != manifest_text and not (
        first_text.endswith("-next") and manifest_text in texts
    ):
        yield Problem(
            CHANGELOG,
            "changelog-version-mismatch",
            f"the topmost changelog entry has version {first_text!r}, but the manifest "
            f"version is {manifest_text!r} (the manifest version has no changelog entry)",
        )
    first = _parse_strict(first_text)
    if first is not None:
        for text, parsed in versions[1:] if texts and texts[0] == first_text else versions:
            if parsed >= first:
                yield Problem(
                    CHANGELOG,
                    "changelog-version-not-latest",
                    f"changelog entry {text!r} is greater than or equal to the first changelog "
                    f"entry {first_text!r}",
                )


def _check_readme(pkg: _Package) -> Iterator[Problem]:
    if not pkg.is_file(README):
        yield Problem(README, "readme-missing", f"{README} is required")


def check(pkg: _Package, fv: Version) -> list[Problem]:
    """Every problem of these rules for a package whose manifest parsed."""
    problems = [
        *_check_required_fields(pkg),
        *_check_name(pkg),
        *_check_owner(pkg),
        *_check_type_layout(pkg),
    ]
    for ds in pkg.data_streams():
        problems.extend(_check_data_stream_for_publish(ds))
    problems.extend(_check_changelog(pkg))
    problems.extend(_check_readme(pkg))
    return problems
