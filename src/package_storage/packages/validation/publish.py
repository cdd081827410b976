"""Publish-time validation: the load-time rules plus the package-spec's rules per format_version.

:func:`validate_for_publish` reads the package once (``core._Package``), picks the schemas for the
package's ``type`` and ``format_version`` (``schemas``) and runs the folder layout (``layout``)
and the semantic cross-file rules (``semantic``). Errors refuse; the spec's warnings are kept
apart (:func:`spec_warnings`) and refuse only with ``warnings_as_errors``.
"""

from __future__ import annotations

import datetime
from typing import Any

from package_storage.errors import PackageError
from package_storage.packages.model import PackageTree
from package_storage.packages.validation import layout, rules, semantic
from package_storage.packages.validation.core import (
    CHANGELOG,
    MANIFEST,
    PACKAGE_TYPES,
    Problem,
    _Package,
    _validate,
)
from package_storage.packages.validation.schemas import errors as schema_errors
from package_storage.packages.validation.specversions import format_version_problem
from package_storage.packages.versions import Version
from package_storage.packages.yamlutil import load_yaml

DOTTED_KEYS_REFUSED_SINCE = Version.parse_strict("3.0.0")
"""From format_version 3.0.0 on the spec validates YAML keys as written (``a.b:`` is one key)."""


def validate_for_publish(
    tree: PackageTree, *, version_dir: str | None = None, warnings_as_errors: bool = False
) -> list[Problem]:
    """Every error of the package (and its spec warnings when ``warnings_as_errors``)."""
    errors, warnings = check(tree, version_dir=version_dir)
    return errors + warnings if warnings_as_errors else errors


def spec_warnings(tree: PackageTree) -> list[Problem]:
    """The package-spec's warnings: problems that refuse only with warnings as errors."""
    return check(tree)[1]


def check(tree: PackageTree, *, version_dir: str | None = None) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) of the package at ``tree``."""
    pkg = _Package(tree)
    if pkg.manifest is None:
        return list(pkg.problems), []
    fv_problem = format_version_problem(pkg.manifest)
    if fv_problem is not None:
        return [fv_problem], []
    fv = Version.parse_strict(str(pkg.manifest["format_version"]))
    problems = _validate(pkg, version_dir, spec=True)
    problems.extend(rules.check(pkg, fv))
    warnings: list[Problem] = []
    package_type = str(pkg.manifest.get("type") or "")
    if package_type not in PACKAGE_TYPES:
        return problems, warnings  # reported by rules (type-invalid)
    ctx = semantic.Context(pkg, fv, package_type, raw=lambda path: raw_document(pkg, path, fv))
    problems.extend(_schema(ctx, MANIFEST, f"{package_type}_manifest"))
    for ds in pkg.data_streams():
        problems.extend(_schema(ctx, ds.manifest_path, "data_stream_manifest"))
    problems.extend(_schema(ctx, CHANGELOG, "changelog"))
    problems.extend(layout.check(ctx))
    found, warned = semantic.check(ctx)
    problems.extend(found)
    warnings.extend(warned)
    return _unique(problems), _unique(warnings)


def _schema(ctx: semantic.Context, path: str, schema: str) -> list[Problem]:
    if not ctx.pkg.is_file(path):
        return []
    doc = ctx.raw(path)
    if doc is _UNREADABLE:
        return []
    return [Problem(path, rule, message) for rule, message in schema_errors(schema, str(ctx.fv), doc)]


_UNREADABLE: Any = object()


def raw_document(pkg: _Package, path: str, fv: Version) -> Any:
    """The YAML/JSON file at ``path`` as the spec's validator sees it (JSON values; dotted keys
    expanded only before format_version 3.0.0); ``_UNREADABLE`` when it does not parse."""
    data = pkg.read(path)
    if data is None:
        return _UNREADABLE
    try:
        value = load_yaml(data, path=path)
    except PackageError:
        return _UNREADABLE
    value = _jsonish(value)
    if fv < DOTTED_KEYS_REFUSED_SINCE:
        value = _expand(value)
    return value


def _jsonish(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, bool) else str(k).lower(): _jsonish(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonish(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def _expand(value: Any) -> Any:
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        item = _expand(item)
        parts = key.split(".")
        target = out
        for part in parts[:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                target[part] = nxt
            target = nxt
        last = parts[-1]
        if isinstance(target.get(last), dict) and isinstance(item, dict):
            target[last].update(item)
        else:
            target[last] = item
    return out


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    return [p for p in problems if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
