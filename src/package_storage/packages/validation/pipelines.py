"""The package-spec's rules for ingest pipelines of integration packages.

* ``pipeline-rename-message`` (from format_version 3.1.0): a ``rename`` of ``message`` to
  ``event.original`` must run only ``if: ctx.event?.original == null`` and must come with a
  ``remove`` of ``message`` (``ignore_missing: true``, ``if: ctx.event?.original != null``).
* ``pipeline-tag-missing`` / ``pipeline-tag-duplicate`` (3.6.0, spec code SVR00006): every
  processor, also inside ``on_failure``, has a non-empty string ``tag``, unique in the file.
* ``pipeline-on-failure-event-kind`` / ``pipeline-on-failure-message`` (3.6.0, SVR00008 /
  SVR00009): the pipeline's ``on_failure`` sets
  ``event.kind`` to ``pipeline_error`` and sets or appends an ``error.message`` naming the
  failing processor's type and tag, the message and the pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import yaml

from package_storage.packages.validation.core import Problem
from package_storage.packages.versions import Version

if TYPE_CHECKING:
    from package_storage.packages.validation.context import Context

PIPELINE = re.compile(r"(data_stream/[^/]+/)?elasticsearch/ingest_pipeline/[^/]+\.(yml|json)")
RENAME_SINCE = Version.parse_strict("3.1.0")
TAGS_SINCE = Version.parse_strict("3.6.0")
ERROR_MESSAGE_PARTS = (
    "_ingest.on_failure_processor_type",
    "_ingest.on_failure_processor_tag",
    "_ingest.on_failure_message",
    "_ingest.pipeline",
)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check(ctx: Context) -> Iterator[Problem]:
    if ctx.package_type != "integration":
        return
    for path in ctx.pkg.files:
        if not PIPELINE.fullmatch(path):
            continue
        doc = ctx.doc(path)
        if not isinstance(doc, dict):
            continue
        if ctx.fv >= RENAME_SINCE:
            yield from _rename_message(path, doc)
        if ctx.fv >= TAGS_SINCE:
            yield from _tags(path, ctx.pkg.read(path) or b"")
            yield from _on_failure(path, doc)


def _processors(value: Any) -> list[tuple[int, str, dict[str, Any]]]:
    out = []
    for i, item in enumerate(value if isinstance(value, list) else []):
        if isinstance(item, dict) and len(item) == 1:
            ((kind, body),) = item.items()
            out.append((i, str(kind), body if isinstance(body, dict) else {}))
    return out


def _rename_message(path: str, doc: dict[str, Any]) -> Iterator[Problem]:
    processors = _processors(doc.get("processors"))
    renames = [
        (i, body)
        for i, kind, body in processors
        if kind == "rename"
        and body.get("field") == "message"
        and body.get("target_field") == "event.original"
    ]
    if not renames:
        return
    rule = "pipeline-rename-message"
    if not any(body.get("if") == "ctx.event?.original == null" for _i, body in renames):
        for i, _body in renames:
            yield Problem(
                path,
                rule,
                f'field processors.{i}.rename: rename "message" to "event.original" processor '
                f"requires if: 'ctx.event?.original == null' (JSE00001)",
            )
    removes = [(i, body) for i, kind, body in processors if kind == "remove"]

    def removes_message(body: dict[str, Any]) -> bool:
        field = body.get("field")
        return field == "message" or (isinstance(field, list) and "message" in field)

    good = [
        i
        for i, body in removes
        if removes_message(body)
        and body.get("ignore_missing") is True
        and body.get("if") == "ctx.event?.original != null"
    ]
    if good:
        return
    candidates = [(i, body) for i, body in removes if removes_message(body)]
    if not candidates:
        yield Problem(
            path,
            rule,
            'field processors: rename "message" to "event.original" processor requires remove '
            '"message" processor (JSE00001)',
        )
        return
    for i, body in candidates:
        if (
            body.get("if") != "ctx.event?.original != null"
            or body.get("ignore_missing") is not True
        ):
            yield Problem(
                path,
                rule,
                f'field processors.{i}.remove.if: rename "message" to "event.original" '
                f'processor requires remove "message" processor with if: '
                f"'ctx.event?.original != null' and ignore_missing: true (JSE00001)",
            )


def _tags(path: str, data: bytes) -> Iterator[Problem]:
    try:
        root = yaml.compose(data.decode("utf-8", errors="replace"), Loader=_Loader)
    except yaml.YAMLError:
        return
    if not isinstance(root, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key, value in root.value:
        if key.value == "processors":
            yield from _tag_list(path, value, seen)


def _tag_list(path: str, node: Any, seen: set[str]) -> Iterator[Problem]:
    if not isinstance(node, yaml.SequenceNode):
        return
    for item in node.value:
        if not isinstance(item, yaml.MappingNode) or len(item.value) != 1:
            continue
        kind_node, body = item.value[0]
        kind, line = kind_node.value, kind_node.start_mark.line + 1
        if not isinstance(body, yaml.MappingNode):
            body = yaml.MappingNode("tag:yaml.org,2002:map", [])
        attrs = {k.value: v for k, v in body.value}
        if "on_failure" in attrs:
            yield from _tag_list(path, attrs["on_failure"], seen)
        tag = attrs.get("tag")
        if tag is None:
            yield Problem(
                path,
                "pipeline-tag-missing",
                f"{kind} processor at line {line} missing required tag (SVR00006)",
            )
        elif not isinstance(tag, yaml.ScalarNode) or tag.tag != "tag:yaml.org,2002:str":
            yield Problem(
                path,
                "pipeline-tag-missing",
                f"{kind} processor at line {line} has invalid tag value (SVR00006)",
            )
        elif not tag.value:
            yield Problem(
                path,
                "pipeline-tag-missing",
                f"{kind} processor at line {line} has empty tag value (SVR00006)",
            )
        elif tag.value in seen:
            yield Problem(
                path,
                "pipeline-tag-duplicate",
                f'{kind} processor at line {line} has duplicate tag value: "{tag.value}"',
            )
        else:
            seen.add(tag.value)


def _on_failure(path: str, doc: dict[str, Any]) -> Iterator[Problem]:
    handlers = _processors(doc.get("on_failure"))
    kind = next((b for _i, k, b in handlers if k == "set" and b.get("field") == "event.kind"), None)
    if kind is None or kind.get("value") != "pipeline_error":
        yield Problem(
            path,
            "pipeline-on-failure-event-kind",
            'pipeline on_failure handler must set event.kind to "pipeline_error" (SVR00008)',
        )
    message = next(
        (
            b
            for _i, k, b in handlers
            if k in ("set", "append") and b.get("field") == "error.message"
        ),
        None,
    )
    if message is None:
        yield Problem(
            path,
            "pipeline-on-failure-message",
            "pipeline on_failure handler must set error.message (SVR00009)",
        )
        return
    value = message.get("value")
    text = value if isinstance(value, str) else ""
    for part in ERROR_MESSAGE_PARTS:
        if part not in text:
            yield Problem(
                path,
                "pipeline-on-failure-message",
                f'pipeline on_failure error.message must include "{part}" (SVR00009)',
            )
