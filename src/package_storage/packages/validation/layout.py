"""Folder layout: which files and folders may stand where in a package, per type and version.

The layout is a tree of :class:`Folder` and :class:`Item` descriptions (our own statement of the
package-spec's folder specs). A folder is *closed* (only its listed items may appear) unless it is
``open``; a folder described without any items is open. Item names match exactly, patterns as
regular expressions (searched, ``{PACKAGE_NAME}`` replaced by the package name). Inside
development folders (``_dev``) folder names are free; elsewhere a folder the layout does not list
must not contain ``-``.

Rules: ``layout-item-not-allowed``, ``layout-item-missing``, ``layout-item-kind`` (a file where a
folder belongs or the reverse), ``layout-folder-name`` and ``layout-source-only`` (``_dev`` in a
built package).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from package_storage.packages.validation.core import Problem
from package_storage.packages.versions import Version

if TYPE_CHECKING:
    from package_storage.packages.validation.context import Context


@dataclass(frozen=True)
class Folder:
    items: tuple[Item, ...] = ()
    open: bool = False
    dev: bool = False


@dataclass(frozen=True)
class Item:
    name: str = ""
    pattern: str = ""
    folder: Folder | None = None  # None: a file
    required: bool = False
    since: str = ""
    until: str = ""
    required_until: str = ""  # required only before this format_version
    forbidden: tuple[str, ...] = ()
    source_only: bool = False
    missing_reported_elsewhere: bool = False  # a rule of its own reports the absence


def _file(name: str = "", pattern: str = "", **kw: object) -> Item:
    return Item(name=name, pattern=pattern, **kw)  # type: ignore[arg-type]


def _dir(name: str = "", folder: Folder | None = None, pattern: str = "", **kw: object) -> Item:
    return Item(name=name, pattern=pattern, folder=folder or Folder(open=True), **kw)  # type: ignore[arg-type]


OPEN = Folder(open=True)
MARKDOWN = Folder(items=(_file("README.md", required=True), _file(pattern=r"^.+\.md")))
DOCS = Folder(
    items=(
        _file("README.md", required=True, missing_reported_elsewhere=True),
        _file(pattern=r"^.+\.md"),
        _dir("knowledge_base", Folder(items=(_file(pattern=r"^.+\.md$"),))),
    )
)
FIELDS = Folder(items=(_file(pattern=r"^[a-z0-9][a-z0-9_-]+[a-z0-9]\.yml$", required=True),))
AGENT_INPUT = Folder(
    items=(
        _dir(
            "input", Folder(items=(_file(pattern=r"^.+\.yml\.hbs$", required=True),)), required=True
        ),
    )
)
AGENT_STREAM = Folder(
    items=(
        _dir(
            "stream",
            Folder(items=(_file(pattern=r"^.+\.yml\.hbs$", required=True),)),
            required=True,
        ),
    )
)
SAMPLE_EVENT = r"^sample_event(_[a-z0-9]+)?.json$"
NO_ECS = (r"^.+-(ecs|ECS)\.json$",)
OWN = r"^{PACKAGE_NAME}-.+\.json$"
ANY_JSON = r"^.+\.json$"

DEPLOY = Folder(
    items=(
        _dir("docker", Folder(items=(_file("docker-compose.yml", required=True),), open=True)),
        _dir(
            "tf",
            Folder(
                items=(
                    _file(pattern=r"^.*\.tf$", required=True),
                    _file(".terraform.lock.hcl"),
                    _file(pattern=r"^.*\.tftpl$"),
                    _file("env.yml"),
                    _file(pattern=r"^.*\.json$"),
                    _dir(
                        "files",
                        Folder(
                            items=(
                                _file(pattern=r"^.*\.(log|conf)$"),
                                _file(pattern=r"^.*\.(yml|yaml)$"),
                                _file(pattern=r"^.*\.json$"),
                                _file(pattern=r"^.*\.parquet$"),
                                _file(pattern=r"^.*\.csv$"),
                                _file(pattern=r"^.*\.gz$"),
                            )
                        ),
                    ),
                )
            ),
        ),
        _dir("agent", Folder(items=(_file("custom-agent.yml", required=True),), open=True)),
        _dir("k8s", Folder(items=(_file(pattern=r"^.*\.yaml$"), _file(".empty")))),
        _file("variants.yml"),
    )
)
BUILD = Folder(items=(_file("build.yml"), _dir("docs", MARKDOWN)))
BENCHMARK_DIR = r"^[a-z0-9]+([a-z0-9_]*[a-z0-9])?-benchmark$"
BENCHMARK = Folder(
    items=(
        _dir(
            "system",
            Folder(
                items=(
                    _dir("deploy", DEPLOY),
                    _dir(pattern=BENCHMARK_DIR),
                    _file(pattern=r"^.+\.yml$"),
                )
            ),
        ),
        _dir(
            "rally",
            Folder(
                items=(
                    _dir("deploy", DEPLOY),
                    _dir(
                        pattern=BENCHMARK_DIR,
                        folder=Folder(
                            items=(
                                _file("config.yml"),
                                _file("fields.yml"),
                                _file("template.ndjson"),
                            )
                        ),
                    ),
                    _file(pattern=r"^.+\.yml$"),
                )
            ),
        ),
    ),
    dev=True,
)
DS_TEST = Folder(
    items=(
        _dir(
            "pipeline",
            Folder(
                items=(
                    _file(pattern=r"^test-[a-z0-9-]+\.json$"),
                    _file(pattern=r"^test-[a-z0-9-]+\.log$"),
                    _file(pattern=r"^test-[a-z0-9-]+\.log-config\.yml$"),
                    _file(pattern=r"^test-[a-z0-9-]+\.json-config\.yml$"),
                    _file("test-common-config.yml"),
                    _file(pattern=r"^test-[a-z0-9-]+\.(json|log)-expected\.json$"),
                )
            ),
        ),
        _dir("static", Folder(items=(_file(pattern=r"^test-[a-z0-9_.-]+-config\.yml$"),))),
        _dir("system", Folder(items=(_file(pattern=r"^test-[a-z0-9_.-]+-config\.yml$"),))),
        _dir(
            "policy",
            Folder(
                items=(
                    _file(pattern=r"^test-[a-z0-9_.-]+\.yml$"),
                    _file(pattern=r"^test-[a-z0-9_.-]+\.expected$"),
                )
            ),
        ),
        _dir("scripts", Folder(items=(_file(pattern=r"^.+\.(txt|txtar)$"),))),
    )
)
DS_DEV = Folder(
    items=(
        _dir("test", DS_TEST),
        _dir("deploy", DEPLOY),
        _dir(
            "benchmark",
            Folder(
                items=(
                    _dir(
                        "pipeline",
                        Folder(
                            items=(
                                _file(pattern=r"^[a-z0-9-]+\.json$"),
                                _file(pattern=r"^[a-z0-9-]+\.log$"),
                                _file("config.yml"),
                            )
                        ),
                    ),
                )
            ),
        ),
    ),
    dev=True,
)
DATA_STREAM = Folder(
    items=(
        _dir(
            pattern=r"^([a-z0-9]{2}|[a-z0-9][a-z0-9_]+[a-z0-9])$",
            forbidden=(r"^integration$",),
            required=True,
            folder=Folder(
                items=(
                    _file("manifest.yml", required=True),
                    _dir("fields", FIELDS, required=True),
                    _dir("agent", AGENT_STREAM),
                    _dir(
                        "elasticsearch",
                        Folder(
                            items=(
                                _dir(
                                    "ilm",
                                    Folder(
                                        items=(_file(pattern=r"^.+\.yml$"), _file(pattern=ANY_JSON))
                                    ),
                                ),
                                _dir(
                                    "ingest_pipeline",
                                    Folder(
                                        items=(_file(pattern=r"^.+\.yml$"), _file(pattern=ANY_JSON))
                                    ),
                                ),
                            )
                        ),
                    ),
                    _file(pattern=SAMPLE_EVENT),
                    _dir("test"),
                    _dir("_dev", DS_DEV, source_only=True),
                    _file("routing_rules.yml", since="2.9.0"),
                    _file("lifecycle.yml", since="2.10.0"),
                )
            ),
        ),
    )
)
TRANSFORM = Folder(
    items=(
        _dir(
            pattern=r"^[a-z0-9_]+$",
            folder=Folder(
                items=(
                    _file("transform.yml", required=True),
                    _file("manifest.yml"),
                    _dir("fields", FIELDS),
                )
            ),
        ),
    )
)
INTEGRATION_KIBANA = Folder(
    items=(
        *(
            _dir(name, Folder(items=(_file(pattern=OWN, forbidden=NO_ECS),)))
            for name in ("dashboard", "visualization", "search", "map", "lens")
        ),
        *(
            _dir(name, Folder(items=(_file(pattern=ANY_JSON),)))
            for name in ("index_pattern", "security_rule", "csp_rule_template")
        ),
        *(
            _dir(name, Folder(items=(_file(pattern=OWN),)))
            for name in ("ml_module", "tag", "osquery_pack_asset", "osquery_saved_query")
        ),
        _file("tags.yml", since="2.10.0"),
        _dir("alerting_rule_template", Folder(items=(_file(pattern=ANY_JSON),)), since="3.4.0"),
        _dir("slo_template", Folder(items=(_file(pattern=ANY_JSON),)), since="3.4.0"),
    )
)
CONTENT_KIBANA = Folder(
    items=(
        _dir("dashboard", Folder(items=(_file(pattern=OWN, forbidden=NO_ECS),))),
        _file("tags.yml"),
        _dir("security_ai_prompt", Folder(items=(_file(pattern=OWN),)), since="3.4.0"),
        _dir("security_rule", Folder(items=(_file(pattern=ANY_JSON),))),
        _dir("alerting_rule_template", Folder(items=(_file(pattern=ANY_JSON),)), since="3.5.0"),
        _dir("slo_template", Folder(items=(_file(pattern=ANY_JSON),)), since="3.5.0"),
        _dir("ml_module", Folder(items=(_file(pattern=OWN),))),
        _dir("search", Folder(items=(_file(pattern=OWN, forbidden=NO_ECS),))),
    )
)
ESQL_VIEW = Folder(items=(_file(pattern=r"^.+\.yml$"),))

ROOTS: dict[str, Folder] = {
    "integration": Folder(
        open=True,
        items=(
            _file("manifest.yml", required=True, missing_reported_elsewhere=True),
            _file("changelog.yml", required=True, missing_reported_elsewhere=True),
            _file("NOTICE.txt"),
            _file("LICENSE.txt"),
            _dir("data_stream", DATA_STREAM),
            _dir("docs", DOCS, required=True, missing_reported_elsewhere=True),
            _dir("agent", AGENT_INPUT),
            _dir("kibana", INTEGRATION_KIBANA),
            _dir(
                "_dev",
                Folder(
                    items=(
                        _dir("benchmark", BENCHMARK),
                        _dir("build", BUILD),
                        _dir("deploy", DEPLOY),
                        _dir("test", Folder(items=(_file("config.yml"),))),
                        _dir("shared"),
                        _dir("scripts"),
                    ),
                    dev=True,
                ),
                source_only=True,
            ),
            _dir(
                "elasticsearch",
                Folder(
                    items=(
                        _dir(
                            "ml_model", Folder(items=(_file(pattern=r"^{PACKAGE_NAME}_.+\.json$"),))
                        ),
                        _dir("ingest_pipeline", OPEN),
                        _dir("transform", TRANSFORM),
                        _dir("esql_view", ESQL_VIEW, since="3.6.0"),
                    )
                ),
            ),
            _file("validation.yml"),
            _dir("img"),
        ),
    ),
    "input": Folder(
        open=True,
        items=(
            _file("manifest.yml", required=True, missing_reported_elsewhere=True),
            _file("changelog.yml", required=True, missing_reported_elsewhere=True),
            _file("LICENSE.txt"),
            _dir("agent", AGENT_INPUT, required=True),
            _dir("docs", DOCS, required=True, missing_reported_elsewhere=True),
            _dir("fields", FIELDS, required_until="3.5.0"),
            _file(pattern=SAMPLE_EVENT),
            _dir(
                "_dev",
                Folder(
                    items=(
                        _dir("build", BUILD),
                        _dir("deploy", DEPLOY),
                        _dir(
                            "test",
                            Folder(
                                items=(
                                    _dir(
                                        "system",
                                        Folder(
                                            items=(
                                                _file(pattern=r"^test-[a-z0-9_.-]+-config\.yml$"),
                                            )
                                        ),
                                    ),
                                    _dir(
                                        "policy",
                                        Folder(
                                            items=(
                                                _file(pattern=r"^test-[a-z0-9_.-]+\.yml$"),
                                                _file(pattern=r"^test-[a-z0-9_.-]+\.expected$"),
                                            )
                                        ),
                                    ),
                                    _file("config.yml"),
                                )
                            ),
                        ),
                        _dir("scripts"),
                        _dir("shared"),
                    ),
                    dev=True,
                ),
                source_only=True,
            ),
            _file("lifecycle.yml"),
            _file("validation.yml"),
            _dir("img"),
        ),
    ),
    "content": Folder(
        items=(
            _file("manifest.yml", required=True, missing_reported_elsewhere=True),
            _file("changelog.yml", required=True, missing_reported_elsewhere=True),
            _file("LICENSE.txt"),
            _dir("docs", DOCS, required=True, missing_reported_elsewhere=True),
            _dir("img"),
            _dir("kibana", CONTENT_KIBANA),
            _file("validation.yml"),
            _dir("elasticsearch", Folder(items=(_dir("esql_view", ESQL_VIEW),)), since="3.6.0"),
            _dir(
                "_dev",
                Folder(items=(_dir("build", BUILD), _dir("shared"), _dir("scripts")), dev=True),
                source_only=True,
            ),
        ),
    ),
}
CONTENT_LAYOUT_SINCE = Version.parse_strict("3.3.0")
"""Before format_version 3.3.0 the spec lists no contents for content packages (nothing checked)."""


def _index(files: list[str]) -> dict[str, dict[str, bool]]:
    """Every folder (``""`` = the root) -> its direct children: name -> is a folder."""
    index: dict[str, dict[str, bool]] = {}
    for f in files:
        parts = f.split("/")
        for depth in range(len(parts)):
            folder = "/".join(parts[:depth])
            children = index.setdefault(folder, {})
            is_dir = depth < len(parts) - 1
            children[parts[depth]] = children.get(parts[depth], False) or is_dir
    return index


class _Walker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.fv = ctx.fv
        self.name = re.escape(ctx.pkg.name)
        self.index = _index(ctx.pkg.files)

    def applies(self, item: Item) -> bool:
        if item.since and self.fv < Version.parse_strict(item.since):
            return False
        return not (item.until and self.fv >= Version.parse_strict(item.until))

    def required(self, item: Item) -> bool:
        if item.required_until:
            return self.fv < Version.parse_strict(item.required_until)
        return item.required

    def match(self, folder: Folder, name: str) -> Item | None:
        for item in folder.items:
            if not self.applies(item):
                continue
            if item.name:
                if item.name == name:
                    return item
                continue
            if re.search(item.pattern.replace("{PACKAGE_NAME}", self.name), name) and not any(
                re.search(f, name) for f in item.forbidden
            ):
                return item
        return None

    def walk(self, folder: Folder, path: str, dev: bool) -> Iterator[Problem]:
        dev = dev or folder.dev
        children = self.index.get(path, {})
        listed = bool(folder.items)
        for name, is_dir in sorted(children.items()):
            child = f"{path}/{name}" if path else name
            item = self.match(folder, name)
            if item is None:
                if folder.open or not listed:
                    if is_dir and not dev and "-" in name:
                        yield Problem(
                            child,
                            "layout-folder-name",
                            f"directory name inside package {self.ctx.pkg.name} contains -: {name}",
                        )
                    continue
                yield Problem(
                    child,
                    "layout-item-not-allowed",
                    f"item [{name}] is not allowed in folder [{path or '.'}]",
                )
                continue
            if item.folder is None and is_dir:
                yield Problem(
                    child, "layout-item-kind", f"[{name}] is a folder but is expected to be a file"
                )
                continue
            if item.folder is not None and not is_dir:
                yield Problem(
                    child, "layout-item-kind", f"[{name}] is a file but is expected to be a folder"
                )
                continue
            if item.source_only and self.ctx.built:
                yield Problem(
                    child,
                    "layout-source-only",
                    f"{child}: source-only folder is not allowed in built packages",
                )
                continue
            if item.folder is not None:
                yield from self.walk(item.folder, child, dev)
        for item in folder.items:
            if not self.applies(item) or not self.required(item) or item.missing_reported_elsewhere:
                continue
            if not any(self.match(folder, n) is item for n in children):
                what = "folder" if item.folder is not None else "file"
                if item.name:
                    message = f"expecting to find [{item.name}] {what} in folder [{path or '.'}]"
                else:
                    message = (
                        f"expecting to find {what} matching pattern [{item.pattern}] in folder "
                        f"[{path or '.'}]"
                    )
                target = f"{path}/{item.name}" if path and item.name else (item.name or path)
                yield Problem(target, "layout-item-missing", message)


def check(ctx: Context) -> Iterator[Problem]:
    root = ROOTS.get(ctx.package_type)
    if root is None:
        return
    if ctx.package_type == "content" and ctx.fv < CONTENT_LAYOUT_SINCE:
        return
    yield from _Walker(ctx).walk(root, "", False)
