"""The package-spec's file schemas, resolved per ``format_version`` and compiled once.

The schemas are our own YAML files in ``schemas/`` (JSON Schema draft 7 plus the ``x-since``,
``x-until`` and ``x-before`` keywords described in ``schemas/common.yml``). For a format_version
the keywords are resolved (properties that do not exist yet dropped, older variants merged in),
the shared ``$defs`` of ``common.yml`` added, and the result compiled with ``jsonschema``; the
compiled validator is cached per (schema, format_version), so validating a corpus of packages
compiles each schema once per format_version in use. The quick yes/no of a valid document is
``jsonschema_rs``'s (which checks the schema itself when it compiles it); ``jsonschema`` is
imported and compiled only to explain an invalid one (a ``publish`` of a valid package does
not pay for it: issue 15).

Errors become one line each, ``field <path>: <what>`` (the wording of the package-spec's own
validator), with a rule code per JSON Schema keyword (``schema-required``,
``schema-additional-property``, ...).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import yaml

from package_storage.packages.versions import Version

if TYPE_CHECKING:
    import jsonschema

_SCHEMA_PACKAGE = "package_storage.packages.validation"


def _load(name: str) -> Any:
    """Schema file ``name`` as data: from its parsed copy ``schemas/NAME.json`` when that was
    made from the YAML as it is now (its ``source_sha256``), else by parsing the YAML."""
    folder = resources.files(_SCHEMA_PACKAGE).joinpath("schemas")
    text = folder.joinpath(f"{name}.yml").read_text("utf-8")
    parsed = folder.joinpath(f"{name}.json")
    if parsed.is_file():
        fresh, schema = from_parsed_copy(text, parsed.read_text("utf-8"))
        if fresh:
            return schema
    return _parse(text)


def from_parsed_copy(text: str, copy: str) -> tuple[bool, Any]:
    """(True, the schema) when ``copy`` (a ``schemas/NAME.json``) was made from the YAML
    ``text``; (False, None) when it is stale or not such a copy."""
    try:
        cached = json.loads(copy)
    except ValueError:
        return False, None
    if not isinstance(cached, dict) or cached.get("source_sha256") != _digest(text):
        return False, None
    return True, cached.get("schema")


def _parse(text: str) -> Any:
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parsed_copy(name: str) -> str:
    """The text of ``schemas/NAME.json``: the YAML schema ``name`` parsed, with the digest of
    the YAML it was made from. Parsing YAML costs a new process (a ``publish``) more than the
    rest of validating a small package (issue 15); JSON is read ~100x faster. A stale copy is
    ignored (the YAML is parsed); ``tests/packages/test_validation_schemas.py`` fails on one,
    and :func:`write_parsed_copies` rewrites them all."""
    text = resources.files(_SCHEMA_PACKAGE).joinpath(f"schemas/{name}.yml").read_text("utf-8")
    document = {"source_sha256": _digest(text), "schema": _parse(text)}
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def write_parsed_copies() -> list[str]:
    """Rewrite every ``schemas/NAME.json`` from its YAML (after editing a schema: ``python -c
    'from package_storage.packages.validation.schemas import write_parsed_copies as w; w()'``);
    returns the names written. Needs the package as a folder (a source checkout)."""
    folder = resources.files(_SCHEMA_PACKAGE).joinpath("schemas")
    names = schema_names()
    for name in names:
        with resources.as_file(folder.joinpath(f"{name}.json")) as path:
            path.write_text(parsed_copy(name), encoding="utf-8")
    return names


def schema_names() -> list[str]:
    """Every schema file's name (``schemas/NAME.yml``)."""
    folder = resources.files(_SCHEMA_PACKAGE).joinpath("schemas")
    return sorted(p.name[: -len(".yml")] for p in folder.iterdir() if p.name.endswith(".yml"))


def _before(fv: Version, text: Any) -> bool:
    return fv < Version.parse_strict(str(text))


def _resolve(node: Any, fv: Version) -> Any:
    """``node`` with our x- keywords applied for format_version ``fv`` (a new object)."""
    if isinstance(node, list):
        return [_resolve(item, fv) for item in node if _present(item, fv)]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    for change in node.pop("x-before", None) or []:
        if _before(fv, change["version"]):
            for key in change.get("drop", []):
                node.pop(key, None)
            node.update(copy.deepcopy(change.get("set", {})))
    node.pop("x-since", None)
    node.pop("x-until", None)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "$defs") and isinstance(value, dict):
            out[key] = {k: _resolve(v, fv) for k, v in value.items() if _present(v, fv)}
        else:
            out[key] = _resolve(value, fv)
    return out


def _present(node: Any, fv: Version) -> bool:
    if not isinstance(node, dict):
        return True
    since, until = node.get("x-since"), node.get("x-until")
    if since is not None and _before(fv, since):
        return False
    return not (until is not None and not _before(fv, until))


@functools.cache
def _raw(name: str) -> Any:
    return _load(name)


@functools.lru_cache(maxsize=256)
def resolved(name: str, format_version: str) -> dict[str, Any]:
    """Schema ``name`` for ``format_version`` (a strict semver): our keywords resolved, the
    shared ``$defs`` added (not to be changed: it is cached)."""
    fv = Version.parse_strict(format_version)
    schema = _resolve(_raw(name), fv)  # (a new tree: _raw's cached one is never changed)
    assert isinstance(schema, dict)
    schema["$defs"] = _resolve(_raw("common")["$defs"], fv)
    return schema


@functools.lru_cache(maxsize=256)
def validator(name: str, format_version: str) -> jsonschema.protocols.Validator:
    """The compiled validator of schema ``name`` for ``format_version`` (a strict semver)."""
    import jsonschema

    schema = resolved(name, format_version)
    cls = jsonschema.Draft7Validator
    cls.check_schema(schema)
    return cls(schema)


# --- error lines ---------------------------------------------------------------------------


def _field(path: Iterator[Any] | Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(root)"


def _go_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _quote(values: Any) -> str:
    return ", ".join(f'"{v}"' for v in values)


@functools.lru_cache(maxsize=256)
def fast_validator(name: str, format_version: str) -> Any:
    """The same schema compiled by ``jsonschema_rs`` (Rust): the quick yes/no for the common
    case, a valid document; the errors of an invalid one come from :func:`validator`."""
    return jsonschema_rs.Draft7Validator(resolved(name, format_version))


def errors(name: str, format_version: str, instance: Any) -> list[tuple[str, str]]:
    """(rule, message) of every way ``instance`` breaks schema ``name``, in document order."""
    if fast_validator(name, format_version).is_valid(instance):
        return []
    out: list[tuple[str, str]] = []
    for error in validator(name, format_version).iter_errors(instance):
        out.extend(_explain(error))
    return sorted(dict.fromkeys(out), key=lambda e: e[1])


def _explain(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    keyword = str(error.validator)
    field = _field(error.absolute_path)
    where = f"field {field}"
    value = error.validator_value
    instance: Any = error.instance
    if keyword == "required":
        missing = error.message.split("'")[1] if "'" in error.message else str(value)
        return [("schema-required", f"{where}: {missing} is required")]
    if keyword == "additionalProperties":
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        keys = list(instance) if isinstance(instance, dict) else []
        extra = [k for k in keys if k not in known and not any(p.search(str(k)) for p in patterns)]
        return [
            ("schema-additional-property", f"{where}: Additional property {k} is not allowed")
            for k in extra
        ] or [("schema-additional-property", f"{where}: {error.message}")]
    if keyword == "enum":
        return [("schema-enum", f"{where}: {field} must be one of the following: {_quote(value)}")]
    if keyword == "const":
        return [("schema-const", f"{where}: {field} does not match: {_json(value)}")]
    if keyword == "pattern":
        return [("schema-pattern", f"{where}: Does not match pattern '{value}'")]
    if keyword == "type":
        wanted = "/".join(value) if isinstance(value, list) else str(value)
        return [
            (
                "schema-type",
                f"{where}: Invalid type. Expected: {wanted}, given: {_go_type(instance)}",
            )
        ]
    if keyword == "not":
        return [("schema-not", f"{where}: Must not be present")]
    if keyword == "minItems":
        return [("schema-min-items", f"{where}: Array must have at least {value} items")]
    if keyword == "maxItems":
        return [("schema-max-items", f"{where}: Array must have at most {value} items")]
    if keyword == "uniqueItems":
        return [("schema-unique-items", f"{where}: array items must be unique")]
    if keyword in ("oneOf", "anyOf"):
        # As the package-spec's validator reports it: when no alternative matches, the errors
        # of the closest one (fewest errors, the first on a tie); when several match (oneOf),
        # nothing (the spec drops that message as redundant).
        branches: dict[int, list[jsonschema.ValidationError]] = {}
        for sub in error.context or []:
            branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
        if not branches:
            return []
        best = min(branches.items(), key=lambda kv: (len(kv[1]), kv[0]))[1]
        return [e for sub in best for e in _explain(sub)]
    if keyword in ("minimum", "maximum", "maxProperties", "minProperties", "format"):
        return [(f"schema-{keyword.lower()}", f"{where}: {error.message}")]
    return [(f"schema-{keyword.lower()}", f"{where}: {error.message}")]


def _json(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower()
