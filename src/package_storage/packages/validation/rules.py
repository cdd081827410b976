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
    SPEC_DATA_STREAM_TYPES,
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
        if templates:
            yield Problem(
                MANIFEST,
                "content-has-policy-templates",
                "a content package must not have policy templates",
            )


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
    for template in templates:
        template_name = _text(template.get("name"))
        keys = ["input"]
        if template.get("dynamic_signal_types") is not True:
            keys.append("type")  # optional with dynamic_signal_types: true (spec 3.6.0)
        for key in keys:
            if not _text(template.get(key)):
                yield Problem(
                    MANIFEST,
                    "input-policy-template-incomplete",
                    f"policy template {template_name!r} of an input package must set {key!r}",
                )
        template_type = _text(template.get("type"))
        if template_type and template_type not in SPEC_DATA_STREAM_TYPES:
            yield Problem(
                MANIFEST,
                "input-policy-template-type-invalid",
                f"policy template {template_name!r}: type {template_type!r} must be one of "
                f"{', '.join(SPEC_DATA_STREAM_TYPES)}",
            )
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


def _check_changelog(pkg: _Package, change_types: tuple[str, ...]) -> Iterator[Problem]:
    data = pkg.read(CHANGELOG)
    if data is None:
        yield Problem(CHANGELOG, "changelog-missing", f"{CHANGELOG} does not exist")
        return
    try:
        entries = load_yaml(data, path=CHANGELOG)
    except PackageError as exc:
        yield Problem(CHANGELOG, "changelog-invalid", exc.detail)
        return
    if not isinstance(entries, list) or not entries:
        yield Problem(CHANGELOG, "changelog-invalid", "the changelog must be a non-empty list")
        return

    versions: list[tuple[str, Version]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            yield Problem(CHANGELOG, "changelog-invalid", f"entry #{index} is not a map")
            continue
        text = _text(entry.get("version"))
        parsed = _parse_strict(text) if text else None
        if parsed is None:
            yield Problem(
                CHANGELOG,
                "changelog-invalid",
                f"entry #{index}: version {text!r} is not a strict semantic version",
            )
        else:
            versions.append((text, parsed))
        yield from _check_changes(entry.get("changes"), text or f"#{index}", change_types)

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


def _check_changes(changes: Any, version: str, change_types: tuple[str, ...]) -> Iterator[Problem]:
    if not isinstance(changes, list) or not changes:
        yield Problem(
            CHANGELOG, "changelog-invalid", f"version {version}: changes must be a non-empty list"
        )
        return
    for index, change in enumerate(changes):
        if not isinstance(change, dict):
            yield Problem(
                CHANGELOG, "changelog-invalid", f"version {version}: change #{index} is not a map"
            )
            continue
        missing = [k for k in ("description", "type", "link") if not _text(change.get(k))]
        if missing:
            yield Problem(
                CHANGELOG,
                "changelog-invalid",
                f"version {version}: change #{index} has no {', '.join(missing)}",
            )
        change_type = _text(change.get("type"))
        if change_type and change_type not in change_types:
            yield Problem(
                CHANGELOG,
                "changelog-invalid",
                f"version {version}: change #{index} has type {change_type!r}, not one of "
                f"{', '.join(change_types)}",
            )


def _check_readme(pkg: _Package) -> Iterator[Problem]:
    if not pkg.is_file(README):
        yield Problem(README, "readme-missing", f"{README} is required")


CHANGE_TYPES = ("breaking-change", "bugfix", "enhancement")
DEPRECATION_CHANGE_SINCE = Version.parse_strict("3.6.0")


def check(pkg: _Package, fv: Version) -> list[Problem]:
    """Every problem of these rules for a package whose manifest parsed."""
    change_types = CHANGE_TYPES + (("deprecation",) if fv >= DEPRECATION_CHANGE_SINCE else ())
    problems = [
        *_check_required_fields(pkg),
        *_check_name(pkg),
        *_check_owner(pkg),
        *_check_type_layout(pkg),
    ]
    for ds in pkg.data_streams():
        problems.extend(_check_data_stream_for_publish(ds))
    problems.extend(_check_changelog(pkg, change_types))
    problems.extend(_check_readme(pkg))
    return problems
