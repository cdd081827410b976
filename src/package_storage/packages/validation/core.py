"""Package-spec rules: the load-time set (spec §7.4, "validation" rows) and the shared package access.

Pure: every file is read through the :class:`~package_storage.packages.model.PackageTree` protocol and
every problem is returned, not raised, so callers can show all of them at once (the loader
raises a ``ValidationError`` for them; ``package-storage validate`` and publishing report the
whole list).

* :func:`validate` checks exactly what the reference registry checks when it loads a package with
  validation on (so every package the reference accepts passes).
* ``publish.validate_for_publish`` adds the package-spec's rules (schemas, layout, semantic
  rules) for the package's format_version; it runs the load-time rules with ``spec=True``, where
  the two rules the package-spec states differently follow the spec (a data stream ``type`` is
  optional and may be ``profiles``; required base fields are checked by ``fields``).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from package_storage.errors import NotFoundError, PackageError, VersionError
from package_storage.packages.model import PackageTree
from package_storage.packages.versions import Version
from package_storage.packages.yamlutil import expand_dotted, load_yaml

MANIFEST = "manifest.yml"
CHANGELOG = "changelog.yml"
README = "docs/README.md"
DATA_STREAM_DIR = "data_stream"

DATA_STREAM_TYPES = ("logs", "metrics", "synthetics", "traces")
"""Valid data stream types (``data_stream.type``); also the valid input-package template types."""

SPEC_DATA_STREAM_TYPES = (*DATA_STREAM_TYPES, "profiles")
"""Data stream types the package-spec accepts (``profiles`` since format_version 2.7.0)."""

PACKAGE_TYPES = ("integration", "input", "content")
"""Package types accepted at publish time."""

OWNER_TYPES = ("elastic", "partner", "community")

CHANGE_TYPES = ("breaking-change", "bugfix", "enhancement")
"""Valid ``type`` of a changelog change."""

NAME_PATTERN = re.compile(r"[a-z0-9_]+")
MAX_NAME_LENGTH = 64
"""Longest package name accepted at publish time: the name prefixes every dataset
(``<name>.<data stream>``), and a dataset may have at most 100 characters."""

OWNER_GITHUB_PATTERN = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)?")

BASE_FIELDS = (
    ("data_stream.type", "constant_keyword"),
    ("data_stream.dataset", "constant_keyword"),
    ("data_stream.namespace", "constant_keyword"),
    ("@timestamp", "date"),
)
"""Fields every data stream must declare in ``fields/*.yml``, with their required type."""

DEFAULT_PIPELINE = "default"


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule: the file it is about, a stable rule id and a human message."""

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}]"


# --- entry points ----------------------------------------------------------------------------


def validate(
    tree: PackageTree,
    *,
    version_dir: str | None = None,
    manifest: dict[str, Any] | None = None,
) -> list[Problem]:
    """The load-time rules (spec §7.4 "validation" rows); empty list when the package passes.

    ``version_dir`` is the name of the directory holding a folder package (``<path>/<name>/<y>``);
    when it parses as a version the manifest version must equal it. ``manifest`` is the
    package's ``manifest.yml`` already parsed as a mapping with dotted keys expanded (the
    package reader passes it so that the file is parsed once); None reads it from the tree.
    """
    return _validate(_Package(tree, manifest=manifest), version_dir)


def _validate(pkg: _Package, version_dir: str | None, *, spec: bool = False) -> list[Problem]:
    if pkg.manifest is None:
        return list(pkg.problems)
    problems = list(_check_manifest(pkg, version_dir))
    problems.extend(_check_policy_template_inputs(pkg))
    for ds in pkg.data_streams():
        problems.extend(pkg.load_problems(ds.manifest_path))
        problems.extend(_check_data_stream(pkg, ds, spec=spec))
    return problems


# --- package access --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DataStream:
    dir: str  # "data_stream/<name>"
    name: str  # "<name>"
    manifest_path: str
    manifest: dict[str, Any] | None  # None when it does not parse (problem already recorded)


class _Package:
    """The package's manifest and file list, read once."""

    def __init__(self, tree: PackageTree, *, manifest: dict[str, Any] | None = None) -> None:
        self.tree = tree
        self.problems: list[Problem] = []
        self.files: list[str] = sorted(e.path for e in tree.entries() if not e.is_dir)
        self._file_set = set(self.files)
        self.manifest = (
            manifest
            if manifest is not None
            else self._load_map(MANIFEST, missing_rule="manifest-missing")
        )
        self._data_streams: list[_DataStream] | None = None

    @property
    def name(self) -> str:
        assert self.manifest is not None
        return _text(self.manifest.get("name"))

    def load_problems(self, path: str) -> list[Problem]:
        """The problems found while reading ``path``."""
        return [p for p in self.problems if p.path == path]

    def is_file(self, path: str) -> bool:
        if path in self._file_set:
            return True
        entry = self.tree.stat(path)
        return entry is not None and not entry.is_dir

    def exists(self, path: str) -> bool:
        """File or directory at ``path`` (directories also when the archive lists none)."""
        if self.is_file(path) or self.tree.stat(path) is not None:
            return True
        prefix = path.rstrip("/") + "/"
        return any(f.startswith(prefix) for f in self.files)

    def read(self, path: str) -> bytes | None:
        try:
            return self.tree.read(path)
        except NotFoundError:
            return None

    def _load_map(self, path: str, *, missing_rule: str) -> dict[str, Any] | None:
        data = self.read(path)
        if data is None:
            self.problems.append(Problem(path, missing_rule, f"{path} does not exist"))
            return None
        try:
            value = load_yaml(data, path=path)
        except PackageError as exc:
            self.problems.append(Problem(path, "yaml-invalid", exc.detail))
            return None
        if not isinstance(value, dict):
            self.problems.append(
                Problem(
                    path, "yaml-invalid", f"expected a map at the top level, got {_kind(value)}"
                )
            )
            return None
        expanded: dict[str, Any] = expand_dotted(value)
        return expanded

    def data_streams(self) -> list[_DataStream]:
        """Every ``data_stream/<x>/manifest.yml``, in name order (the reference's glob order)."""
        if self._data_streams is None:
            found: list[_DataStream] = []
            for path in self.files:
                parts = path.split("/")
                if len(parts) == 3 and parts[0] == DATA_STREAM_DIR and parts[2] == MANIFEST:
                    manifest = self._load_map(path, missing_rule="data-stream-manifest-missing")
                    found.append(
                        _DataStream(f"{DATA_STREAM_DIR}/{parts[1]}", parts[1], path, manifest)
                    )
            self._data_streams = found
        return self._data_streams

    def files_in(self, directory: str) -> list[str]:
        """Files directly inside ``directory`` (not in its sub-directories), sorted."""
        prefix = directory.rstrip("/") + "/"
        return [f for f in self.files if f.startswith(prefix) and "/" not in f[len(prefix) :]]

    def files_in_tree(self, directory: str) -> list[str]:
        """Files anywhere below ``directory``."""
        prefix = directory.rstrip("/") + "/"
        return [f for f in self.files if f.startswith(prefix)]


# --- load-time rules -------------------------------------------------------------------------


def _check_manifest(pkg: _Package, version_dir: str | None) -> Iterator[Problem]:
    m = pkg.manifest
    assert m is not None

    format_version = _text(m.get("format_version"))
    if not format_version:
        yield Problem(MANIFEST, "format-version-missing", "no format_version set")
    else:
        error = _strict_error(format_version)
        if error:
            yield Problem(
                MANIFEST,
                "format-version-invalid",
                f"format_version {format_version!r} is not a strict semantic version: {error}",
            )

    version = _text(m.get("version"))
    version_error = _strict_error(version) if version else "no version set"
    if not version:
        yield Problem(MANIFEST, "version-invalid", "no version set")
    elif version_error:
        yield Problem(
            MANIFEST,
            "version-invalid",
            f"version {version!r} is not a strict semantic version: {version_error}",
        )

    if not _text(m.get("title")):
        yield Problem(MANIFEST, "title-missing", f"no title set for package: {pkg.name}")
    if not _text(m.get("description")):
        yield Problem(MANIFEST, "description-missing", "no description set")

    for key, rule in (("icons", "icon-missing"), ("screenshots", "screenshot-missing")):
        for image in _maps(m.get(key)):
            src = _text(image.get("src"))
            if src and not _src_exists(pkg, src):
                what = key[:-1]
                yield Problem(MANIFEST, rule, f"{what} src {src!r} does not exist in the package")

    if version_dir is not None and not version_error:
        dir_version = _parse_lenient(version_dir)
        manifest_version = _parse_strict(version)
        if (
            dir_version is not None
            and manifest_version is not None
            and dir_version != manifest_version
        ):
            yield Problem(
                MANIFEST,
                "version-dir-mismatch",
                f"version in manifest file is not consistent with path: inconsistent versions "
                f"(path: {version_dir}, manifest: {version})",
            )


def _check_policy_template_inputs(pkg: _Package) -> Iterator[Problem]:
    assert pkg.manifest is not None
    for template in _maps(pkg.manifest.get("policy_templates")):
        template_name = _text(template.get("name"))
        for index, item in enumerate(_maps(template.get("inputs"))):
            input_type = _text(item.get("type"))
            input_package = _text(item.get("package"))
            if bool(input_type) == bool(input_package):
                label = input_type or input_package or _text(item.get("title")) or f"#{index}"
                which = "but not both" if input_type else "none is set"
                yield Problem(
                    MANIFEST,
                    "input-type-or-package",
                    f"policy template {template_name!r}: input {label!r} must have exactly one "
                    f"of type or package ({which})",
                )


def _check_data_stream(pkg: _Package, ds: _DataStream, *, spec: bool = False) -> Iterator[Problem]:
    m = ds.manifest
    if m is None:
        return
    path = ds.manifest_path

    dataset = _text(m.get("dataset")) or f"{pkg.name}.{ds.name}"
    if "-" in dataset:
        yield Problem(
            path,
            "dataset-invalid",
            f"data stream name is not allowed to contain `-`: {dataset}",
        )

    ds_type = _text(m.get("type"))
    # publish: the package-spec makes type optional; its values (per format_version) are the
    # data stream schema's
    if not spec and ds_type not in DATA_STREAM_TYPES:
        yield Problem(
            path,
            "data-stream-type-invalid",
            f"type is not valid: {ds_type!r} (must be one of {', '.join(DATA_STREAM_TYPES)})",
        )

    yield from _check_ingest_pipeline(pkg, ds, m)
    if not spec:
        yield from _check_base_fields(pkg, ds)

    for index, stream in enumerate(_maps(m.get("streams"))):
        stream_input = _text(stream.get("input"))
        stream_package = _text(stream.get("package"))
        if bool(stream_input) == bool(stream_package):
            label = _text(stream.get("title")) or f"#{index}"
            which = "but not both" if stream_input else "none is set"
            yield Problem(
                path,
                "stream-input-or-package",
                f"stream {label!r} must have exactly one of input or package ({which})",
            )


def _effective_pipeline(pkg: _Package, ds: _DataStream, m: dict[str, Any]) -> str:
    """The ingest pipeline the reference checks: the legacy ``ingest_pipeline`` key or ``default``.

    ``default`` applies when ``elasticsearch`` is set without ``ingest_pipeline.name`` (it then
    wins over the legacy key), or when neither names a pipeline, and ``default.json`` or
    ``default.yml`` exists.
    """
    legacy = _text(m.get("ingest_pipeline"))
    elasticsearch = m.get("elasticsearch")
    has_default = any(
        pkg.is_file(f"{ds.dir}/elasticsearch/ingest_pipeline/{DEFAULT_PIPELINE}{ext}")
        for ext in (".json", ".yml")
    )
    if isinstance(elasticsearch, dict):
        pipeline = elasticsearch.get("ingest_pipeline")
        named = _text(pipeline.get("name")) if isinstance(pipeline, dict) else ""
        if not named:
            return DEFAULT_PIPELINE if has_default else legacy
        return legacy
    if not legacy and has_default:
        return DEFAULT_PIPELINE
    return legacy


def _check_ingest_pipeline(pkg: _Package, ds: _DataStream, m: dict[str, Any]) -> Iterator[Problem]:
    name = _effective_pipeline(pkg, ds, m)
    if not name:
        return
    pipeline_dir = f"{ds.dir}/elasticsearch/ingest_pipeline"
    found = False
    for ext in (".json", ".yml"):
        path = posixpath.normpath(f"{pipeline_dir}/{name}{ext}")
        if not pkg.is_file(path):
            continue
        found = True
        data = pkg.read(path)
        error = _pipeline_error(data or b"", ext, path)
        if error:
            yield Problem(path, "ingest-pipeline-invalid", f"ingest pipeline {name!r}: {error}")
    if not found:
        yield Problem(
            ds.manifest_path,
            "ingest-pipeline-missing",
            f"defined ingest_pipeline {name!r} does not exist: neither {pipeline_dir}/{name}.json "
            f"nor {pipeline_dir}/{name}.yml",
        )


def _pipeline_error(data: bytes, ext: str, path: str) -> str:
    """Why a pipeline file does not parse as a map, or "" when it does."""
    if ext == ".json":
        try:
            value = json.loads(data.decode("utf-8", errors="replace"), parse_constant=_no_constant)
        except ValueError as exc:
            return f"invalid JSON: {exc}"
    else:
        try:
            value = load_yaml(data, path=path)
        except PackageError as exc:
            return exc.detail
    if value is not None and not isinstance(value, dict):
        return f"expected an object at the top level, got {_kind(value)}"
    return ""


def _no_constant(name: str) -> float:
    raise ValueError(f"invalid literal {name}")


# A field definition as the reference's lookup sees it: (file it came from, flattened map).
_FieldDef = tuple[str, dict[str, Any]]


def _check_base_fields(pkg: _Package, ds: _DataStream) -> Iterator[Problem]:
    fields_dir = f"{ds.dir}/fields"
    definitions: list[_FieldDef] = []
    for path in pkg.files_in(fields_dir):
        data = pkg.read(path) or b""
        try:
            value = load_yaml(data, path=path)
        except PackageError as exc:
            yield Problem(path, "fields-file-invalid", exc.detail)
            continue
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            yield Problem(
                path, "fields-file-invalid", "a fields file must be a list of field definitions"
            )
            continue
        definitions.extend((path, _flatten(v)) for v in value)

    for field_name, wanted in BASE_FIELDS:
        source, found, error = _find_field(definitions, field_name)
        if error:
            yield Problem(
                fields_dir,
                "base-field-missing",
                f"required field {field_name!r} (type {wanted}) is not declared: {error}",
            )
        elif found != wanted:
            yield Problem(
                source,
                "base-field-type",
                f"wrong field type for {field_name!r} (expected: {wanted}, got: {found})",
            )


def _find_field(definitions: list[_FieldDef], name: str) -> tuple[str, str, str]:
    """(file, type, "") of ``name``, or ("", "", why not): the top level first, then one group deep."""
    source, found, error = _lookup(definitions, name)
    if not error:
        return source, found, ""
    *groups, leaf = name.split(".")
    current = definitions
    for group in groups:
        current, error = _group_fields(current, group)
        if error:
            return "", "", error
    return _lookup(current, leaf)


def _lookup(definitions: list[_FieldDef], name: str) -> tuple[str, str, str]:
    for source, definition in definitions:
        if "name" not in definition:
            return "", "", f"a field definition in {source} has no name"
        if definition["name"] != name:
            continue
        field_type = definition.get("type")
        if field_type is None or field_type == "":
            return "", "", f"field {name!r} found in {source}, but its type is undefined"
        return source, _go_text(field_type), ""
    return "", "", f"field {name!r} not found"


def _group_fields(definitions: list[_FieldDef], group: str) -> tuple[list[_FieldDef], str]:
    for source, definition in definitions:
        if "name" not in definition:
            return [], f"a field definition in {source} has no name"
        if definition["name"] != group:
            continue
        children = definition.get("fields")
        if not isinstance(children, list) or not all(isinstance(c, dict) for c in children):
            return [], f"group {group!r} in {source} has no list of fields"
        return [(source, {str(k): _go_text(v) for k, v in c.items()}) for c in children], ""
    return [], f"field {group!r} not found"


# --- helpers ---------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A manifest scalar as the reference's string fields see it ("" for null and containers)."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _go_text(value: Any) -> str:
    """``fmt.Sprintf("%v", value)`` for the values a fields file holds."""
    if value is None:
        return "<nil>"
    return _text(value) if not isinstance(value, (dict, list)) else str(value)


def _kind(value: Any) -> str:
    return {dict: "a map", list: "a list", type(None): "nothing"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _maps(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (v for v in value if isinstance(v, dict))


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, list):
        return [_text(v) for v in value if _text(v)]
    return []


def _flatten(value: dict[Any, Any], prefix: str = "") -> dict[str, Any]:
    """Nested maps as dotted keys (lists are kept as they are), like the reference's MapStr."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        full = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            out.update(_flatten(item, f"{full}."))
        else:
            out[full] = item
    return out


def _src_exists(pkg: _Package, src: str) -> bool:
    path = posixpath.normpath(src.lstrip("/"))
    if path == ".":
        return True
    if path == ".." or path.startswith("../"):
        return False
    return pkg.exists(path)


# --- versions --------------------------------------------------------------------------------


def _parse_strict(text: str) -> Version | None:
    try:
        return Version.parse_strict(text)
    except VersionError:
        return None


def _parse_lenient(text: str) -> Version | None:
    try:
        return Version.parse_lenient(text)
    except VersionError:
        return None


def _strict_error(text: str) -> str:
    """Why ``text`` is not a strict semantic version (the semver library's text), or ""."""
    try:
        Version.parse_strict(text)
    except VersionError as exc:
        return exc.message
    return ""
