"""Folder layout: what may stand where in a package (the package-spec's folder specs).

Checked folders: the package root per type, ``docs/``, ``kibana/`` (asset folders and their file
names), ``_dev/`` and ``data_stream/<name>/``. Names inside ``_dev/`` are free below its first
level (the spec exempts development folders from the naming rules).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from package_storage.packages.validation.core import Problem
from package_storage.packages.versions import Version

if TYPE_CHECKING:
    from package_storage.packages.validation.semantic import Context

V = Version.parse_strict

ROOT_ITEMS: dict[str, tuple[tuple[str, str | None], ...]] = {
    # (name, since) of the items allowed at the root; None = always. Integration and input roots
    # allow additional items (the spec's additionalContents), content roots do not (since 3.3.0).
    "content": (
        ("manifest.yml", None),
        ("changelog.yml", None),
        ("LICENSE.txt", None),
        ("NOTICE.txt", None),
        ("docs", None),
        ("img", None),
        ("kibana", None),
        ("validation.yml", None),
        ("elasticsearch", "3.6.0"),
        ("_dev", None),
    ),
}

KIBANA_FOLDERS: dict[str, tuple[tuple[str, str | None, bool], ...]] = {
    # (folder, since, file names must start with "<package>-")
    "integration": (
        ("dashboard", None, True),
        ("visualization", None, True),
        ("search", None, True),
        ("map", None, True),
        ("lens", None, True),
        ("index_pattern", None, False),
        ("security_rule", None, False),
        ("csp_rule_template", None, False),
        ("ml_module", None, True),
        ("tag", None, True),
        ("osquery_pack_asset", None, True),
        ("osquery_saved_query", None, True),
        ("alerting_rule_template", "3.4.0", False),
        ("slo_template", "3.4.0", False),
    ),
    "content": (
        ("dashboard", None, True),
        ("security_ai_prompt", "3.4.0", True),
        ("security_rule", None, False),
        ("alerting_rule_template", "3.5.0", False),
        ("slo_template", "3.5.0", False),
        ("ml_module", None, True),
        ("search", None, True),
    ),
}
ECS_SUFFIX = re.compile(r"^.+-(ecs|ECS)\.json$")
"""Dashboards, visualizations, searches, maps and lenses must not end in -ecs.json."""
NO_ECS_SUFFIX = ("dashboard", "visualization", "search", "map", "lens")

DEV_ITEMS = {
    "integration": ("benchmark", "build", "deploy", "test", "shared", "scripts"),
    "input": ("benchmark", "build", "deploy", "test", "shared", "scripts"),
    "content": ("build", "shared", "scripts"),
}

DATA_STREAM_NAME = re.compile(r"^([a-z0-9]{2}|[a-z0-9][a-z0-9_]+[a-z0-9])$")
DATA_STREAM_ITEMS = (
    "manifest.yml",
    "fields",
    "agent",
    "elasticsearch",
    "test",
    "_dev",
    "routing_rules.yml",
    "lifecycle.yml",
)
SAMPLE_EVENT = re.compile(r"^sample_event(_[a-z0-9]+)?.json$")


def _not_allowed(path: str) -> Problem:
    name = path.rpartition("/")[2]
    folder = path.rpartition("/")[0] or "."
    return Problem(path, "layout-item-not-allowed", f"item [{name}] is not allowed in folder [{folder}]")


def _children(files: list[str], folder: str) -> dict[str, bool]:
    """Direct children of ``folder``: name -> is a folder."""
    prefix = f"{folder}/" if folder else ""
    out: dict[str, bool] = {}
    for f in files:
        if not f.startswith(prefix):
            continue
        rest = f[len(prefix) :]
        head, sep, _ = rest.partition("/")
        out[head] = out.get(head, False) or bool(sep)
    return out


def check(ctx: Context) -> Iterator[Problem]:
    files = ctx.pkg.files
    fv = ctx.fv
    ptype = ctx.package_type
    root = _children(files, "")
    if ptype in ROOT_ITEMS and fv >= V("3.3.0"):
        allowed = {n for n, since in ROOT_ITEMS[ptype] if since is None or fv >= V(since)}
        for name in sorted(root):
            if name not in allowed and not name.startswith("."):
                yield _not_allowed(name)
    if "docs" in root:
        for name, is_dir in sorted(_children(files, "docs").items()):
            if is_dir and name == "knowledge_base":
                continue
            if is_dir or not re.match(r"^.+\.md", name):
                yield _not_allowed(f"docs/{name}")
    if "kibana" in root and ptype in KIBANA_FOLDERS:
        yield from _kibana(ctx, files, fv, ptype)
    if "_dev" in root:
        allowed_dev = DEV_ITEMS.get(ptype, ())
        for name in sorted(_children(files, "_dev")):
            if name not in allowed_dev:
                yield _not_allowed(f"_dev/{name}")
    if ptype == "integration" and "data_stream" in root:
        for name, is_dir in sorted(_children(files, "data_stream").items()):
            if not is_dir or not DATA_STREAM_NAME.match(name) or name == "integration":
                yield _not_allowed(f"data_stream/{name}")
                continue
            for item, _sub in sorted(_children(files, f"data_stream/{name}").items()):
                if item not in DATA_STREAM_ITEMS and not SAMPLE_EVENT.match(item):
                    yield _not_allowed(f"data_stream/{name}/{item}")


def _kibana(ctx: Context, files: list[str], fv: Version, ptype: str) -> Iterator[Problem]:
    folders = {
        name: prefixed
        for name, since, prefixed in KIBANA_FOLDERS[ptype]
        if since is None or fv >= V(since)
    }
    name_prefix = f"{ctx.pkg.name}-"
    for item, is_dir in sorted(_children(files, "kibana").items()):
        if not is_dir:
            if item != "tags.yml":
                yield _not_allowed(f"kibana/{item}")
            continue
        if item not in folders:
            yield _not_allowed(f"kibana/{item}")
            continue
        for file, sub in sorted(_children(files, f"kibana/{item}").items()):
            path = f"kibana/{item}/{file}"
            ok = not sub and file.endswith(".json") and len(file) > len(".json")
            if ok and folders[item]:
                ok = file.startswith(name_prefix) and len(file) > len(name_prefix) + len(".json")
            if ok and item in NO_ECS_SUFFIX and ECS_SUFFIX.match(file):
                ok = False
            if not ok:
                yield _not_allowed(path)
