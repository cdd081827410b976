"""Which package files the package-spec checks against a schema, by path and format_version.

:data:`FILE_SCHEMAS` maps a path pattern (``fnmatch``-style segments, ``*`` = one segment) to the
schema in ``schemas/`` that checks the file, with the package types and the first format_version
it applies to. The manifests and the changelog are checked by ``publish`` itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from package_storage.packages.validation.core import Problem
from package_storage.packages.validation.documents import UNREADABLE
from package_storage.packages.validation.schemas import errors as schema_errors
from package_storage.packages.versions import Version

if TYPE_CHECKING:
    from package_storage.packages.validation.context import Context

ALL = ("integration", "input", "content")
FILE_SCHEMAS: tuple[tuple[str, str, tuple[str, ...], str | None], ...] = (
    # (path regex, schema, package types, since format_version)
    (r"_dev/test/config\.yml", "test_config", ("integration",), None),
    (r"_dev/test/config\.yml", "input_test_config", ("input",), None),
    (
        r"data_stream/[^/]+/_dev/test/system/test-[a-z0-9_.-]+-config\.yml",
        "system_test_config",
        ("integration",),
        None,
    ),
    (r"_dev/test/system/test-[a-z0-9_.-]+-config\.yml", "system_test_config", ("input",), None),
    (
        r"data_stream/[^/]+/_dev/test/policy/test-[a-z0-9_.-]+\.yml",
        "policy_test_config",
        ("integration",),
        None,
    ),
    (r"_dev/test/policy/test-[a-z0-9_.-]+\.yml", "policy_test_config", ("input",), None),
    (r"_dev/benchmark/system/[^/]+\.yml", "system_benchmark", ("integration", "input"), None),
    (
        r"(data_stream/[^/]+/)?_dev/deploy/agent/custom-agent\.yml",
        "custom_agent",
        ("integration", "input"),
        None,
    ),
    (r"_dev/build/build\.yml", "build", ALL, None),
    (r"validation\.yml", "validation_file", ALL, None),
    (r"elasticsearch/esql_view/[^/]+\.yml", "esql_view", ("integration", "content"), "3.6.0"),
    (r"kibana/tags\.yml", "kibana_tags", ("integration", "content"), None),
    (
        r"(data_stream/[^/]+/)?elasticsearch/ingest_pipeline/[^/]+\.(yml|json)",
        "pipeline",
        ("integration",),
        "3.0.0",
    ),
    (r"data_stream/[^/]+/fields/[^/]+\.yml", "fields", ("integration",), None),
    (r"elasticsearch/transform/[^/]+/fields/[^/]+\.yml", "fields", ("integration",), None),
    (r"fields/[^/]+\.yml", "fields", ("input",), None),
)
DOCUMENT_DASHES = re.compile(
    r"(data_stream/[^/]+/elasticsearch/(ilm|ingest_pipeline)/[^/]+\.yml|"
    r"elasticsearch/ingest_pipeline/[^/]+\.yml|_dev/benchmark/(system|rally)/[^/]+\.yml)"
)
"""YAML files that must start with a ``---`` line (integration packages)."""
_COMPILED = tuple(
    (re.compile(p), s, t, None if v is None else Version.parse_strict(v))
    for p, s, t, v in FILE_SCHEMAS
)


def schema_for(path: str, package_type: str, fv: Version) -> str | None:
    """The schema that checks ``path`` in a package of this type and format_version, if any."""
    for pattern, schema, types, since in _COMPILED:
        if package_type in types and (since is None or fv >= since) and pattern.fullmatch(path):
            return schema
    return None


def check(ctx: Context) -> Iterator[Problem]:
    for path in ctx.pkg.files:
        if ctx.package_type == "integration" and DOCUMENT_DASHES.fullmatch(path):
            first = (ctx.pkg.read(path) or b"").split(b"\n", 1)[0].rstrip(b"\r")
            if first != b"---":
                yield Problem(
                    path,
                    "yaml-document-dashes",
                    "document dashes are required (start the document with '---')",
                )
        schema = schema_for(path, ctx.package_type, ctx.fv)
        if schema is None:
            continue
        doc = ctx.raw(path)
        if doc is UNREADABLE:
            yield Problem(path, "file-unreadable", "the file does not parse as YAML or JSON")
            continue
        for rule, message in schema_errors(schema, str(ctx.fv), doc):
            yield Problem(path, rule, message)
