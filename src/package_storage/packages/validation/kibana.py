"""The package-spec's rules for Kibana saved objects (``kibana/<type>/<id>.json``).

* ``kibana-dangling-reference`` (from format_version 3.0.0, code SVR00003): every reference of a
  saved object (except to index patterns) names an object the package holds, by id and type.
* ``kibana-by-reference`` (code SVR00004; a warning before 3.0.0): dashboards embed their
  visualizations, lenses and maps by value instead of referencing separate objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from package_storage.packages.validation.core import Problem
from package_storage.packages.versions import Version

if TYPE_CHECKING:
    from package_storage.packages.validation.context import Context

DANGLING_SINCE = Version.parse_strict("3.0.0")
BY_VALUE_TYPES = ("lens", "map", "visualization")
NOT_CHECKED_REFERENCES = ("index-pattern",)


def _objects(ctx: Context, folder: str = "*") -> Iterator[tuple[str, dict[str, Any]]]:
    for f in ctx.pkg.files:
        parts = f.split("/")
        if len(parts) != 3 or parts[0] != "kibana" or not f.endswith(".json"):
            continue
        if folder != "*" and parts[1] != folder:
            continue
        obj = ctx.json(f)
        if isinstance(obj, dict):
            yield f, obj


def _references(obj: dict[str, Any]) -> list[tuple[str, str]]:
    refs = obj.get("references")
    out = []
    for ref in refs if isinstance(refs, list) else []:
        if (
            isinstance(ref, dict)
            and isinstance(ref.get("id"), str)
            and isinstance(ref.get("type"), str)
        ):
            out.append((ref["id"], ref["type"]))
    return out


def rule_dangling(ctx: Context) -> Iterator[Problem]:
    objects = list(_objects(ctx))
    installed = {(o.get("id"), o.get("type")) for _f, o in objects}
    for path, obj in objects:
        for ref_id, ref_type in _references(obj):
            if ref_type in NOT_CHECKED_REFERENCES or (ref_id, ref_type) in installed:
                continue
            yield Problem(
                path,
                "kibana-dangling-reference",
                f"dangling reference found: {ref_id} ({ref_type}) (SVR00003)",
            )


def rule_by_reference(ctx: Context) -> Iterator[Problem]:
    for path, obj in _objects(ctx, "dashboard"):
        refs = [(i, t) for i, t in _references(obj) if t in BY_VALUE_TYPES]
        if refs:
            listed = ", ".join(f"{i} ({t})" for i, t in refs)
            yield Problem(
                path,
                "kibana-by-reference",
                f"references found in dashboard {path}: {listed} (SVR00004)",
            )
