"""The package-spec's rules for field definitions (``fields/*.yml`` of data streams, input
packages and transforms), visited as the spec visits them: every definition, groups included,
under its full dotted name.

* ``fields-required-missing`` / ``fields-required-type``: data streams (and input packages with
  fields) declare ``data_stream.type``, ``data_stream.dataset``, ``data_stream.namespace``
  (``constant_keyword``) and ``@timestamp`` (``date``); a field with ``external`` is not
  type-checked (its type comes from ECS at build time).
* ``fields-duplicate`` (format_version 2.0.0 on): a leaf field is defined once per data stream,
  input package or transform.
* ``fields-external-without-build`` (source packages): ``external: ecs`` needs
  ``_dev/build/build.yml`` with that dependency; ``fields-external-unresolved`` (built packages):
  no ``external`` left.
* ``fields-group-property``: a group has no ``unit`` or ``metric_type``.
* ``fields-dimension-type``: only keyword, numeric and ip fields are dimensions.
* ``fields-date-format``: only date fields set ``date_format``.
* ``fields-limit``: at most 2,048 leaf fields per data stream, input package or transform.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from package_storage.packages.validation.context import Context
from package_storage.packages.validation.core import Problem
from package_storage.packages.versions import Version

REQUIRED_FIELDS = {
    "data_stream.type": "constant_keyword",
    "data_stream.dataset": "constant_keyword",
    "data_stream.namespace": "constant_keyword",
    "@timestamp": "date",
}
DIMENSION_TYPES = (
    "constant_keyword",
    "keyword",
    "long",
    "integer",
    "short",
    "byte",
    "double",
    "float",
    "half_float",
    "scaled_float",
    "unsigned_long",
    "ip",
)
FIELDS_LIMIT = 2048
UNIQUE_SINCE = Version.parse_strict("2.0.0")


@dataclass(frozen=True)
class FieldsFile:
    path: str
    owner: str  # "data stream <name>", "transform <name>" or "" (an input package)


@dataclass(frozen=True)
class Field:
    name: str  # full dotted name
    spec: dict[str, Any]
    has_children: bool

    def text(self, key: str) -> str:
        value = self.spec.get(key)
        return value if isinstance(value, str) else ""


def fields_files(ctx: Context) -> list[FieldsFile]:
    """Every fields file the spec reads, in path order."""
    out: list[FieldsFile] = []
    for f in ctx.pkg.files:
        parts = f.split("/")
        if len(parts) == 4 and parts[0] == "data_stream" and parts[2] == "fields":
            out.append(FieldsFile(f, f"data stream {parts[1]}"))
        elif len(parts) == 2 and parts[0] == "fields":
            out.append(FieldsFile(f, ""))
        elif (
            len(parts) == 5 and parts[:2] == ["elasticsearch", "transform"] and parts[3] == "fields"
        ):
            out.append(FieldsFile(f, f"transform {parts[2]}"))
    return out


def visit(items: Any, parent: str = "") -> Iterator[Field]:
    """Every definition of a fields document, depth first, under its full name."""
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        raw = item.get("name")
        name = raw if isinstance(raw, str) else "" if raw is None else str(raw)
        full = f"{parent}.{name}" if parent else name
        children = item.get("fields")
        has_children = isinstance(children, list) and len(children) > 0
        yield Field(full, item, has_children)
        if has_children:
            yield from visit(children, full)


def check(ctx: Context) -> Iterator[Problem]:
    if ctx.package_type not in ("integration", "input"):
        yield from _groups_only(ctx)
        return
    build = ctx.doc("_dev/build/build.yml")
    has_build = ctx.pkg.is_file("_dev/build/build.yml")
    deps = build.get("dependencies") if isinstance(build, dict) else None
    dependencies = set(deps) if isinstance(deps, dict) else set()
    found: dict[str, set[str]] = {}
    leaves: dict[tuple[str, str], list[str]] = {}
    counts: dict[str, int] = {}
    for ff in fields_files(ctx):
        for field in visit(ctx.doc(ff.path)):
            yield from _field_rules(ctx, ff, field, has_build, dependencies)
            if not ff.owner.startswith("transform"):
                found.setdefault(ff.owner, set()).add(field.name)
            if not field.has_children:
                leaves.setdefault((ff.owner, field.name), []).append(ff.path)
                counts[ff.owner] = counts.get(ff.owner, 0) + 1
    if ctx.fv >= UNIQUE_SINCE:
        for (owner, name), paths in sorted(leaves.items()):
            if len(paths) > 1:
                where = f" for {_label(owner)}" if owner else ""
                yield Problem(
                    sorted(paths)[0],
                    "fields-duplicate",
                    f'field "{name}" is defined multiple times{where}, found in: '
                    f"{', '.join(sorted(paths))}",
                )
    for owner, names in sorted(found.items()):
        for name, wanted in REQUIRED_FIELDS.items():
            if name not in names:
                what = f' in datastream "{owner.split(" ", 2)[2]}"' if owner else ""
                folder = f"data_stream/{owner.split(' ', 2)[2]}/fields" if owner else "fields"
                yield Problem(
                    folder,
                    "fields-required-missing",
                    f'expected field "{name}" with type "{wanted}" not found{what}',
                )
    for owner, count in sorted(counts.items()):
        if count > FIELDS_LIMIT:
            what = _label(owner).replace('"', "") if owner else "input package"
            yield Problem(
                _owner_folder(owner),
                "fields-limit",
                f"{what} has more than {FIELDS_LIMIT} fields ({count})",
            )


def _label(owner: str) -> str:
    kind, _, name = owner.rpartition(" ")
    return f'{kind} "{name}"'


def _owner_folder(owner: str) -> str:
    if not owner:
        return "fields"
    kind, _, name = owner.rpartition(" ")
    return (
        f"data_stream/{name}/fields"
        if kind == "data stream"
        else f"elasticsearch/transform/{name}/fields"
    )


def _groups_only(ctx: Context) -> Iterator[Problem]:
    for ff in fields_files(ctx):
        for field in visit(ctx.doc(ff.path)):
            yield from _group_rule(ff, field)


def _group_rule(ff: FieldsFile, field: Field) -> Iterator[Problem]:
    if field.text("type") == "group":
        if field.text("unit"):
            yield Problem(
                ff.path, "fields-group-property", f'field "{field.name}" can\'t have unit property'
            )
        elif field.text("metric_type"):
            yield Problem(
                ff.path,
                "fields-group-property",
                f'field "{field.name}" can\'t have metric type property',
            )


def _field_rules(
    ctx: Context, ff: FieldsFile, field: Field, has_build: bool, dependencies: set[str]
) -> Iterator[Problem]:
    yield from _group_rule(ff, field)
    external = field.text("external")
    ftype = field.text("type")
    wanted = REQUIRED_FIELDS.get(field.name)
    if wanted and not ff.owner.startswith("transform") and not external and ftype != wanted:
        yield Problem(
            ff.path,
            "fields-required-type",
            f'expected type "{wanted}" for required field "{field.name}", found "{ftype}" in '
            f'"{ff.path}"',
        )
    if external:
        if ctx.built:
            yield Problem(
                ff.path,
                "fields-external-unresolved",
                f"field {field.name} has external: {external} reference; external fields must be "
                f"materialized before packaging",
            )
        elif not has_build:
            yield Problem(
                ff.path,
                "fields-external-without-build",
                f'field {field.name} with external key defined ("{external}") but no '
                f"_dev/build/build.yml found",
            )
        elif external not in dependencies:
            yield Problem(
                ff.path,
                "fields-external-without-build",
                f'field {field.name} with external key defined ("{external}") but no definition '
                f"found for it (_dev/build/build.yml)",
            )
    if not external and field.spec.get("dimension") is True and ftype not in DIMENSION_TYPES:
        yield Problem(
            ff.path,
            "fields-dimension-type",
            f'field "{field.name}" of type {ftype} can\'t be a dimension, allowed types for '
            f"dimensions: {', '.join(DIMENSION_TYPES)}",
        )
    if ftype != "date" and field.text("date_format"):
        yield Problem(
            ff.path,
            "fields-date-format",
            f'field "{field.name}" of type {ftype} can\'t set date_format. date_format is allowed '
            f"for date field type only",
        )
