"""Publish-time validation: the load-time rules plus the package-spec's rules per format_version.

:func:`validate_for_publish` reads the package once (``core._Package``), picks the schemas for the
package's ``type`` and ``format_version`` (``schemas``) and runs the folder layout (``layout``)
and the semantic cross-file rules (``semantic``). Errors refuse; the spec's warnings are kept
apart (:func:`spec_warnings`) and refuse only with ``warnings_as_errors``.
"""

from __future__ import annotations

import re
from typing import Any

from package_storage.packages.model import PackageTree
from package_storage.packages.validation import files, layout, pipelines, rules, semantic
from package_storage.packages.validation.context import Context
from package_storage.packages.validation.core import (
    CHANGELOG,
    MANIFEST,
    PACKAGE_TYPES,
    Problem,
    _Package,
    _validate,
)
from package_storage.packages.validation.documents import UNREADABLE, raw_document
from package_storage.packages.validation.schemas import errors as schema_errors
from package_storage.packages.validation.specversions import format_version_problem
from package_storage.packages.versions import Version


def validate_for_publish(
    tree: PackageTree, *, version_dir: str | None = None, warnings_as_errors: bool = False
) -> list[Problem]:
    """Every error of the package (and its spec warnings when ``warnings_as_errors``)."""
    errors, warnings = check_for_publish(tree, version_dir=version_dir)
    return errors + warnings if warnings_as_errors else errors


def spec_warnings(tree: PackageTree) -> list[Problem]:
    """The package-spec's warnings: problems that refuse only with warnings as errors."""
    return check_for_publish(tree)[1]


def check_for_publish(
    tree: PackageTree, *, version_dir: str | None = None
) -> tuple[list[Problem], list[Problem]]:
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
    parsed: dict[str, Any] = {}

    def raw(path: str) -> Any:
        if path not in parsed:
            parsed[path] = raw_document(pkg, path, fv)
        return parsed[path]

    ctx = Context(pkg, fv, package_type, raw=raw)
    problems.extend(_schema(ctx, MANIFEST, f"{package_type}_manifest"))
    for ds in pkg.data_streams():
        problems.extend(_schema(ctx, ds.manifest_path, "data_stream_manifest"))
    problems.extend(_schema(ctx, CHANGELOG, "changelog"))
    problems.extend(layout.check(ctx))
    problems.extend(files.check(ctx))
    problems.extend(pipelines.check(ctx))
    found, warned = semantic.check(ctx)
    problems.extend(found)
    warnings.extend(warned)
    excluded = _excluded_checks(ctx)
    return _unique(_without(problems, excluded)), _unique(_without(warnings, excluded))


SPEC_CODE = re.compile(r"\((?P<code>(?:SVR|JSE|PSR)\d{5})\)")
"""The package-spec's code of a problem, written at the end of its message: ``(SVR00006)``."""


def _excluded_checks(ctx: Context) -> set[str]:
    """Codes the package turns off in ``validation.yml`` (``errors.exclude_checks``)."""
    doc = ctx.doc("validation.yml")
    errors = doc.get("errors") if isinstance(doc, dict) else None
    codes = errors.get("exclude_checks") if isinstance(errors, dict) else None
    return {c for c in codes if isinstance(c, str)} if isinstance(codes, list) else set()


def _without(problems: list[Problem], excluded: set[str]) -> list[Problem]:
    if not excluded:
        return problems
    out = []
    for p in problems:
        match = SPEC_CODE.search(p.message)
        if match is None or match.group("code") not in excluded:
            out.append(p)
    return out


def _schema(ctx: Context, path: str, schema: str) -> list[Problem]:
    if not ctx.pkg.is_file(path):
        return []
    doc = ctx.raw(path)
    if doc is UNREADABLE:
        return []
    return [
        Problem(path, rule, message) for rule, message in schema_errors(schema, str(ctx.fv), doc)
    ]


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
