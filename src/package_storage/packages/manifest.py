"""Package reading: a :class:`PackageTree` -> a :class:`Package` with its two documents (spec §6, §7.4).

Pure: everything is read through the tree. ``read_package`` parses ``manifest.yml`` and the
data-stream manifests, applies the reference's defaults and derivations, checks the load-time
rules that always apply (spec §7.4 "always" rows; the "validation" rows are delegated to
``package_storage.packages.validation``) and builds

* ``document``: the full package document (``/package/<name>/<version>/``), and
* ``search_entry``: the ``/search`` element,

as plain dicts in the reference's key order, ready for :func:`package_storage.packages.render.dumps`.
Free-form maps (variable defaults, index template settings/mappings) get bytewise-sorted keys.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import math
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from package_storage.errors import NotFoundError, PackageError, ValidationError, VersionError
from package_storage.packages import categories as categories_mod
from package_storage.packages.model import (
    DocumentPair,
    Documents,
    JSONObject,
    Package,
    PackageTree,
    PolicyTemplateRef,
    TreeEntry,
)
from package_storage.packages.render import format_float
from package_storage.packages.versions import Constraint, Version
from package_storage.packages.yamlutil import expand_dotted, load_yaml

__all__ = [
    "FULL_KEY_ORDER",
    "SEARCH_KEY_ORDER",
    "filter_policy_templates",
    "propagate_deprecations",
    "read_package",
    "with_signature",
]

log = logging.getLogger(__name__)

VALID_RELEASES = ("experimental", "beta", "ga")
AGENTLESS_RELEASES = ("beta", "ga")
DEFAULT_TYPE = "integration"
DEFAULT_LICENSE = "basic"

SEARCH_KEY_ORDER: tuple[str, ...] = (
    "name",
    "title",
    "version",
    "release",
    "source",
    "description",
    "type",
    "download",
    "path",
    "icons",
    "policy_templates_behavior",
    "policy_templates",
    "conditions",
    "owner",
    "categories",
    "signature_path",
    "discovery",
    "data_streams",
    "deprecated",
    "requires",
    "group",
)
"""Key order of a ``/search`` entry (spec §6.2 rows 1-21)."""

FULL_KEY_ORDER: tuple[str, ...] = (
    "name",
    "title",
    "version",
    "release",
    "source",
    "description",
    "type",
    "download",
    "path",
    "icons",
    "policy_templates_behavior",
    "conditions",
    "owner",
    "categories",
    "signature_path",
    "discovery",
    "deprecated",
    "requires",
    "group",
    "format_version",
    "readme",
    "license",
    "screenshots",
    "assets",
    "policy_templates",
    "data_streams",
    "vars",
    "elasticsearch",
    "agent",
)
"""Key order of the full package document (spec §6.2 rows 1-11, 13-17, 19-31)."""


# --- public API --------------------------------------------------------------------------------


def read_package(
    tree: PackageTree,
    *,
    validate: bool = True,
    version_dir: str | None = None,
    signature: bool = False,
) -> Package:
    """Load the package in ``tree``.

    ``validate`` runs the package-spec rules of ``package_storage.packages.validation`` first (their
    problems raise :class:`ValidationError`); the rules that always apply raise
    :class:`PackageError`. ``version_dir`` is the name of the directory the package was found in
    (folder sources), handed to validation. ``signature`` adds ``signature_path`` (the source
    knows whether ``<location>.sig`` exists; see also :func:`with_signature`).
    """
    return _Reader(tree, validate=validate, version_dir=version_dir, signature=signature).read()


def with_signature(pkg: Package) -> Package:
    """``pkg`` with ``signature_path`` set in both documents (no-op when already there).
    Documents held encoded are not decoded: the change is recorded with them."""
    docs = pkg.documents
    if not docs.is_encoded:
        document, entry = docs.pair()
        if "signature_path" in document and "signature_path" in entry:
            return pkg
    return dataclasses.replace(pkg, documents=docs.edited(_add_signature))


def _add_signature(document: JSONObject, entry: JSONObject) -> DocumentPair:
    if "signature_path" in document and "signature_path" in entry:
        return document, entry
    return _add_key("signature_path", f"{document['download']}.sig", document, entry)


def _add_key(key: str, value: Any, document: JSONObject, entry: JSONObject) -> DocumentPair:
    return (
        _with_key(document, key, value, FULL_KEY_ORDER),
        _with_key(entry, key, value, SEARCH_KEY_ORDER),
    )


def propagate_deprecations(packages: Sequence[Package]) -> list[Package]:
    """Spec §6.7: per name, the notice of the highest deprecated version goes on every version.

    ``packages`` are the packages of one source. Packages that change are new objects; the
    others are returned as they are, in the same order.
    """
    notices: dict[str, tuple[Version, JSONObject]] = {}
    for pkg in packages:
        if pkg.deprecated is None:
            continue
        best = notices.get(pkg.name)
        if best is None or pkg.version > best[0]:
            notices[pkg.name] = (pkg.version, pkg.deprecated)
    if not notices:
        return list(packages)
    out: list[Package] = []
    for pkg in packages:
        found = notices.get(pkg.name)
        if found is None or pkg.deprecated is found[1]:
            out.append(pkg)
            continue
        notice = found[1]
        out.append(
            dataclasses.replace(
                pkg,
                deprecated=notice,
                documents=pkg.documents.edited(functools.partial(_add_key, "deprecated", notice)),
            )
        )
    return out


def filter_policy_templates(doc: Mapping[str, Any], category: str) -> JSONObject:
    """Copy of a search entry or full document keeping only the policy templates whose own
    ``categories`` contain ``category`` exactly (spec §4.4); the key disappears when none is left.

    Both renderings carry each template's ``categories``, so this works on either. Use it only
    for packages that pass the category filter through their templates alone.
    """
    out = dict(doc)
    templates = out.get("policy_templates")
    if not templates:
        return out
    kept = [t for t in templates if category in (t.get("categories") or ())]
    if kept:
        out["policy_templates"] = kept
    else:
        del out["policy_templates"]
    return out


# --- helpers -----------------------------------------------------------------------------------


def _with_key(doc: Mapping[str, Any], key: str, value: Any, order: Sequence[str]) -> JSONObject:
    out: JSONObject = {}
    for k in order:
        if k == key:
            out[k] = value
        elif k in doc:
            out[k] = doc[k]
    for k, v in doc.items():
        if k not in out and k != key:
            out[k] = v
    return out


_TRUE_WORDS = frozenset({"1", "t", "true", "y", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "f", "false", "n", "no", "off"})


class _Index:
    """Lookups over a tree's entries (explicit entries plus implied parent directories)."""

    def __init__(self, entries: Sequence[TreeEntry]) -> None:
        self.entries = entries
        self.files: set[str] = set()
        self.dirs: set[str] = set()
        self.children: dict[str, list[TreeEntry]] = {}
        for e in entries:
            (self.dirs if e.is_dir else self.files).add(e.path)
            parent, _, _ = e.path.rpartition("/")
            self.children.setdefault(parent, []).append(e)
            while parent and parent not in self.dirs:
                self.dirs.add(parent)
                parent = parent.rpartition("/")[0]


class _Reader:
    def __init__(
        self, tree: PackageTree, *, validate: bool, version_dir: str | None, signature: bool
    ) -> None:
        self.tree = tree
        self.validate = validate
        self.version_dir = version_dir
        self.signature = signature
        self.location = tree.location
        self.file = f"{self.location}/manifest.yml"
        self.name = ""
        self.version_text = ""

    # -- errors and scalar conversion (go-ucfg-like leniency)

    def err(self, message: str, file: str | None = None) -> PackageError:
        return PackageError(message, path=file or self.file)

    def s(self, value: Any, where: str, file: str | None = None) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                return str(value)
            return format_float(value)
        if isinstance(value, (datetime.date, datetime.datetime)):
            return value.isoformat()
        raise self.err(f"field {where}: expected a string, got {_kind(value)}", file)

    def required_s(self, value: Any, where: str, file: str | None = None) -> str:
        text = self.s(value, where, file)
        if not text:
            raise self.err(f"missing required field {where}", file)
        return text

    def b(self, value: Any, where: str, file: str | None = None) -> bool:
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE_WORDS:
                return True
            if low in _FALSE_WORDS:
                return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise self.err(f"field {where}: expected a boolean, got {value!r}", file)

    def lst(self, value: Any, where: str, file: str | None = None) -> list[Any]:
        if value is None:
            return []
        if isinstance(value, list):
            return value
        return [value]  # a single value where a list is expected counts as a one-element list

    def strs(self, value: Any, where: str, file: str | None = None) -> list[str]:
        return [self.s(v, f"{where}.{i}", file) for i, v in enumerate(self.lst(value, where, file))]

    def obj(self, value: Any, where: str, file: str | None = None) -> dict[Any, Any] | None:
        if value is None:
            return None
        if isinstance(value, dict):
            return value
        raise self.err(f"field {where}: expected an object, got {_kind(value)}", file)

    def objs(self, value: Any, where: str, file: str | None = None) -> list[dict[Any, Any]]:
        out = []
        for i, item in enumerate(self.lst(value, where, file)):
            if item is None:
                item = {}
            o = self.obj(item, f"{where}.{i}", file)
            assert o is not None
            out.append(o)
        return out

    def free(self, value: Any, where: str, file: str | None = None) -> Any:
        """A free-form value: maps with sorted string keys at every depth, finite numbers."""
        if isinstance(value, dict):
            items = {str(k): self.free(v, f"{where}.{k}", file) for k, v in value.items()}
            return {k: items[k] for k in sorted(items, key=_bytewise)}
        if isinstance(value, list):
            return [self.free(v, f"{where}.{i}", file) for i, v in enumerate(value)]
        if isinstance(value, float) and not math.isfinite(value):
            raise self.err(f"field {where}: {value} cannot be represented in JSON", file)
        if isinstance(value, (datetime.date, datetime.datetime)):
            return value.isoformat()
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value

    # -- main

    def read(self) -> Package:
        tree = self.tree
        try:
            raw = tree.read("manifest.yml")
        except NotFoundError:
            raise self.err("manifest.yml not found in package") from None
        loaded = load_yaml(raw, path=self.file)
        parsed_map = isinstance(loaded, dict)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise self.err(f"manifest must be a YAML mapping, got {_kind(loaded)}")
        m: dict[Any, Any] = expand_dotted(loaded)

        if self.validate:
            # Validation reads the manifest itself only when it was not a mapping (an empty
            # manifest is a problem it reports in its own words).
            self._run_validation(m if parsed_map else None)

        index = _Index(tree.entries())

        name = self.s(m.get("name"), "name")
        version_text = self.s(m.get("version"), "version")
        self.name, self.version_text = name, version_text
        try:
            version = Version.parse_strict(version_text)
        except VersionError as exc:
            raise self.err(f"invalid package version: {exc}") from None
        prefix = f"/package/{name}/{version_text}"

        # conditions
        conditions, kibana_c, agent_c, capabilities = self._conditions(m.get("conditions"))

        # format_version / spec version
        format_version = self.s(m.get("format_version"), "format_version")
        spec_version: Version | None = None
        if format_version:
            try:
                fv = Version.parse_strict(format_version)
                spec_version = Version.parse_strict(f"{fv.major}.{fv.minor}.0")
            except VersionError as exc:
                raise self.err(f"invalid format spec version '{format_version}': {exc}") from None

        release = self.s(m.get("release"), "release")
        if not release:
            release = "beta" if (version.prerelease or version.major == 0) else "ga"
        if release not in VALID_RELEASES:
            raise self.err(f'invalid release: "{release}"')

        pkg_type = self.s(m.get("type"), "type") or DEFAULT_TYPE

        icons = self._images(m.get("icons"), "icons", prefix)
        screenshots = self._images(m.get("screenshots"), "screenshots", prefix)

        # policy templates
        full_templates, short_templates, refs = self._policy_templates(
            m.get("policy_templates"), prefix, pkg_type, index
        )

        # readme
        if "docs/README.md" not in index.files:
            if "docs/README.md" in index.dirs:
                raise self.err("README.md is a directory")
            raise self.err(
                "no readme file found, README.md is required: docs/README.md does not exist"
            )

        # categories
        all_categories = self.strs(m.get("categories"), "categories")
        known_categories = []
        for c in all_categories:
            if categories_mod.is_known(c):
                known_categories.append(c)
            else:
                log.warning(
                    "package uses an unknown category, will be ignored: %s-%s: %s",
                    name,
                    version_text,
                    c,
                )

        # license
        license_ = self.s(m.get("license"), "license")
        if not license_:
            subscription = (conditions or {}).get("elastic", {}).get("subscription", "")
            license_ = subscription or DEFAULT_LICENSE

        owner = self._owner(m.get("owner"))
        source = self._source(m.get("source"))
        discovery, discovery_fields, discovery_datasets = self._discovery(m.get("discovery"))
        deprecated = self._deprecated(m.get("deprecated"), "deprecated")
        requires = self._requires(m.get("requires"))
        group = self.s(m.get("group"), "group")
        behavior = self.s(m.get("policy_templates_behavior"), "policy_templates_behavior")
        pkg_vars = self._vars(m.get("vars"), "vars")
        pkg_es = self._package_elasticsearch(m.get("elasticsearch"))
        pkg_agent = self._agent(m.get("agent"), "agent")

        assets = self._assets(index, name, prefix)
        full_streams, short_streams = self._data_streams(index, name, release)

        download = f"/epr/{name}/{name}-{version_text}.zip"

        # --- assemble (key order = reference struct order)
        head: JSONObject = {"name": name}
        if "title" in m and m["title"] is not None:
            head["title"] = self.s(m["title"], "title")
        head["version"] = version_text
        head["release"] = release
        if source is not None:
            head["source"] = source
        head["description"] = self.s(m.get("description"), "description")
        head["type"] = pkg_type
        head["download"] = download
        head["path"] = prefix
        if icons:
            head["icons"] = icons
        if behavior:
            head["policy_templates_behavior"] = behavior

        middle: JSONObject = {}
        if conditions is not None:
            middle["conditions"] = conditions
        if owner is not None:
            middle["owner"] = owner
        if known_categories:
            middle["categories"] = known_categories
        if self.signature:
            middle["signature_path"] = download + ".sig"
        if discovery is not None:
            middle["discovery"] = discovery

        tail: JSONObject = {}
        if deprecated is not None:
            tail["deprecated"] = deprecated
        if requires is not None:
            tail["requires"] = requires
        if group:
            tail["group"] = group

        search_entry: JSONObject = dict(head)
        if short_templates:
            search_entry["policy_templates"] = short_templates
        search_entry.update(middle)
        if short_streams:
            search_entry["data_streams"] = short_streams
        search_entry.update(tail)

        document: JSONObject = dict(head)
        document.update(middle)
        document.update(tail)
        document["format_version"] = format_version
        document["readme"] = f"{prefix}/docs/README.md"
        document["license"] = license_
        if screenshots:
            document["screenshots"] = screenshots
        if assets:
            document["assets"] = assets
        if full_templates:
            document["policy_templates"] = full_templates
        if full_streams:
            document["data_streams"] = full_streams
        if pkg_vars:
            document["vars"] = pkg_vars
        if pkg_es is not None:
            document["elasticsearch"] = pkg_es
        if pkg_agent is not None:
            document["agent"] = pkg_agent

        return Package(
            name=name,
            version=version,
            release=release,
            type=pkg_type,
            categories=tuple(known_categories),
            policy_templates=tuple(refs),
            kibana_version=kibana_c,
            agent_version=agent_c,
            capabilities=capabilities,
            spec_version=spec_version,
            discovery_fields=discovery_fields,
            discovery_datasets=discovery_datasets,
            documents=Documents.parsed(document, search_entry),
            tree=tree,
            deprecated=deprecated,
        )

    # -- validation hook

    def _run_validation(self, manifest: dict[Any, Any] | None) -> None:
        # imported here: the validation rules (and their JSON schemas) cost ~0.1 s to import,
        # which a start-up that reads every package from the cache does not pay
        from package_storage.packages import validation

        problems = validation.validate(self.tree, version_dir=self.version_dir, manifest=manifest)
        if not problems:
            return
        details = "; ".join(
            f"{p.path}: {p.message}" + (f" ({p.rule})" if p.rule else "") for p in problems
        )
        raise ValidationError(
            f"package validation failed: {details}", path=self.location, rule=problems[0].rule
        )

    # -- top-level objects

    def _conditions(
        self, value: Any
    ) -> tuple[JSONObject | None, Constraint | None, Constraint | None, tuple[str, ...] | None]:
        cond = self.obj(value, "conditions")
        if cond is None:
            return None, None, None, None
        out: JSONObject = {}
        kibana_c = agent_c = None
        capabilities: tuple[str, ...] | None = None
        kibana = self.obj(cond.get("kibana"), "conditions.kibana")
        if kibana is not None:
            v = self.s(kibana.get("version"), "conditions.kibana.version")
            try:
                kibana_c = Constraint.parse(v)
            except VersionError as exc:
                raise self.err(f"invalid Kibana versions range {v}: {exc}") from None
            out["kibana"] = {"version": v}
        elastic = self.obj(cond.get("elastic"), "conditions.elastic")
        if elastic is not None:
            el: JSONObject = {
                "subscription": self.s(
                    elastic.get("subscription"), "conditions.elastic.subscription"
                )
            }
            caps = self.strs(elastic.get("capabilities"), "conditions.elastic.capabilities")
            if caps:
                el["capabilities"] = caps
                capabilities = tuple(caps)
            out["elastic"] = el
        agent = self.obj(cond.get("agent"), "conditions.agent")
        if agent is not None:
            v = self.s(agent.get("version"), "conditions.agent.version")
            try:
                agent_c = Constraint.parse(v)
            except VersionError as exc:
                raise self.err(f"invalid Agent versions range {v}: {exc}") from None
            out["agent"] = {"version": v}
        return out, kibana_c, agent_c, capabilities

    def _owner(self, value: Any) -> JSONObject | None:
        owner = self.obj(value, "owner")
        if owner is None:
            return None
        out: JSONObject = {}
        t = self.s(owner.get("type"), "owner.type")
        if t:
            out["type"] = t
        g = self.s(owner.get("github"), "owner.github")
        if g:
            out["github"] = g
        return out

    def _source(self, value: Any) -> JSONObject | None:
        source = self.obj(value, "source")
        if source is None:
            return None
        lic = self.s(source.get("license"), "source.license")
        return {"license": lic} if lic else {}

    def _discovery(
        self, value: Any
    ) -> tuple[JSONObject | None, tuple[str, ...] | None, tuple[str, ...] | None]:
        disc = self.obj(value, "discovery")
        if disc is None:
            return None, None, None
        fields = [
            self.required_s(f.get("name"), f"discovery.fields.{i}.name")
            for i, f in enumerate(self.objs(disc.get("fields"), "discovery.fields"))
        ]
        datasets = [
            self.required_s(d.get("name"), f"discovery.datasets.{i}.name")
            for i, d in enumerate(self.objs(disc.get("datasets"), "discovery.datasets"))
        ]
        out: JSONObject = {}
        if fields:
            out["fields"] = [{"name": n} for n in fields]
        if datasets:
            out["datasets"] = [{"name": n} for n in datasets]
        return (out or None), tuple(fields), tuple(datasets)

    def _requires(self, value: Any) -> JSONObject | None:
        req = self.obj(value, "requires")
        if req is None:
            return None
        out: JSONObject = {}
        for kind in ("input", "content"):
            items = []
            for i, item in enumerate(self.objs(req.get(kind), f"requires.{kind}")):
                where = f"requires.{kind}.{i}"
                items.append(
                    {
                        "package": self.required_s(item.get("package"), f"{where}.package"),
                        "version": self.required_s(item.get("version"), f"{where}.version"),
                    }
                )
            if items:
                out[kind] = items
        return out

    def _deprecated(self, value: Any, where: str, file: str | None = None) -> JSONObject | None:
        dep = self.obj(value, where, file)
        if dep is None:
            return None
        out: JSONObject = {
            "since": self.s(dep.get("since"), f"{where}.since", file),
            "description": self.s(dep.get("description"), f"{where}.description", file),
        }
        rb = self.obj(dep.get("replaced_by"), f"{where}.replaced_by", file)
        if rb is not None:
            replaced: JSONObject = {}
            for key in ("package", "policy_template", "input", "data_stream", "variable"):
                text = self.s(rb.get(key), f"{where}.replaced_by.{key}", file)
                if text:
                    replaced[key] = text
            out["replaced_by"] = replaced
        return out

    def _images(self, value: Any, where: str, prefix: str) -> list[JSONObject]:
        out = []
        for i, img in enumerate(self.objs(value, where)):
            w = f"{where}.{i}"
            src = self.required_s(img.get("src"), f"{w}.src")
            item: JSONObject = {"src": src, "path": _join_url(prefix, src)}
            for key in ("title", "size", "type"):
                text = self.s(img.get(key), f"{w}.{key}")
                if text:
                    item[key] = text
            out.append(item)
        return out

    def _vars(self, value: Any, where: str, file: str | None = None) -> list[JSONObject]:
        out = []
        for i, var in enumerate(self.objs(value, where, file)):
            w = f"{where}.{i}"
            item: JSONObject = {
                "name": self.s(var.get("name"), f"{w}.name", file),
                "type": self.s(var.get("type"), f"{w}.type", file),
            }
            for key in ("title", "description"):
                text = self.s(var.get(key), f"{w}.{key}", file)
                if text:
                    item[key] = text
            for key in ("multi", "required", "show_user"):
                item[key] = self.b(var.get(key), f"{w}.{key}", file)
            if var.get("default") is not None:
                item["default"] = self.free(var["default"], f"{w}.default", file)
            dep = self._deprecated(var.get("deprecated"), f"{w}.deprecated", file)
            if dep is not None:
                item["deprecated"] = dep
            out.append(item)
        return out

    def _agent(self, value: Any, where: str, file: str | None = None) -> JSONObject | None:
        agent = self.obj(value, where, file)
        if agent is None:
            return None
        out: JSONObject = {}
        priv = self.obj(agent.get("privileges"), f"{where}.privileges", file)
        if priv is not None:
            p: JSONObject = {}
            if self.b(priv.get("root"), f"{where}.privileges.root", file):
                p["root"] = True
            out["privileges"] = p
        return out

    def _package_elasticsearch(self, value: Any) -> JSONObject | None:
        es = self.obj(value, "elasticsearch")
        if es is None:
            return None
        out: JSONObject = {}
        priv = self.obj(es.get("privileges"), "elasticsearch.privileges")
        if priv is not None:
            p: JSONObject = {}
            cluster = self.strs(priv.get("cluster"), "elasticsearch.privileges.cluster")
            if cluster:
                p["cluster"] = cluster
            out["privileges"] = p
        return out

    # -- policy templates

    def _deployment_modes(self, value: Any, where: str, template: str) -> JSONObject | None:
        dm = self.obj(value, where)
        if dm is None:
            return None
        out: JSONObject = {}
        default = self.obj(dm.get("default"), f"{where}.default")
        if default is not None:
            if default.get("enabled") is None:
                raise self.err(f"missing required field {where}.default.enabled")
            out["default"] = {"enabled": self.b(default["enabled"], f"{where}.default.enabled")}
        agentless = self.obj(dm.get("agentless"), f"{where}.agentless")
        if agentless is not None:
            w = f"{where}.agentless"
            if agentless.get("enabled") is None:
                raise self.err(f"missing required field {w}.enabled")
            mode: JSONObject = {"enabled": self.b(agentless["enabled"], f"{w}.enabled")}
            if agentless.get("is_default") is not None:
                mode["is_default"] = self.b(agentless["is_default"], f"{w}.is_default")
            release = self.s(agentless.get("release"), f"{w}.release")
            if release:
                if release not in AGENTLESS_RELEASES:
                    raise self.err(
                        f'policy template "{template}": invalid agentless release: "{release}"'
                    )
                mode["release"] = release
            out["agentless"] = mode
        return out

    def _streams(
        self, value: Any, where: str, file: str | None = None, *, defaults: bool
    ) -> list[JSONObject]:
        out = []
        for i, st in enumerate(self.objs(value, where, file)):
            w = f"{where}.{i}"
            item: JSONObject = {}
            input_type = self.s(st.get("input"), f"{w}.input", file)
            if input_type:
                item["input"] = input_type
            package = self.s(st.get("package"), f"{w}.package", file)
            if package:
                item["package"] = package
            stream_vars = self._vars(st.get("vars"), f"{w}.vars", file)
            if stream_vars:
                item["vars"] = stream_vars
            ds = self.s(st.get("data_stream"), f"{w}.data_stream", file)
            if ds:
                item["data_stream"] = ds
            template_path = self.s(st.get("template_path"), f"{w}.template_path", file)
            if not template_path and defaults:
                template_path = "stream.yml.hbs"
            if template_path:
                item["template_path"] = template_path
            for key in ("title", "description"):
                text = self.s(st.get(key), f"{w}.{key}", file)
                if text:
                    item[key] = text
            if st.get("enabled") is not None:
                item["enabled"] = self.b(st["enabled"], f"{w}.enabled", file)
            elif defaults:
                item["enabled"] = True
            method = self.s(st.get("ingestion_method"), f"{w}.ingestion_method", file)
            if defaults:
                mapped = categories_mod.ingestion_method(input_type)
                if mapped:
                    method = mapped
            if method:
                item["ingestion_method"] = method
            out.append(item)
        return out

    def _inputs(self, value: Any, where: str) -> list[JSONObject]:
        out = []
        for i, inp in enumerate(self.objs(value, where)):
            w = f"{where}.{i}"
            item: JSONObject = {}
            for key in ("type", "package"):
                text = self.s(inp.get(key), f"{w}.{key}")
                if text:
                    item[key] = text
            input_vars = self._vars(inp.get("vars"), f"{w}.vars")
            if input_vars:
                item["vars"] = input_vars
            for key in ("title", "description"):
                text = self.s(inp.get(key), f"{w}.{key}")
                if text:
                    item[key] = text
            streams = self._streams(inp.get("streams"), f"{w}.streams", defaults=False)
            if streams:
                item["streams"] = streams
            for key in ("template_path", "input_group"):
                text = self.s(inp.get(key), f"{w}.{key}")
                if text:
                    item[key] = text
            modes = self.strs(inp.get("deployment_modes"), f"{w}.deployment_modes")
            if modes:
                item["deployment_modes"] = modes
            dep = self._deprecated(inp.get("deprecated"), f"{w}.deprecated")
            if dep is not None:
                item["deprecated"] = dep
            out.append(item)
        return out

    def _policy_templates(
        self, value: Any, prefix: str, pkg_type: str, index: _Index
    ) -> tuple[list[JSONObject], list[JSONObject], list[PolicyTemplateRef]]:
        full: list[JSONObject] = []
        short: list[JSONObject] = []
        refs: list[PolicyTemplateRef] = []
        for i, pt in enumerate(self.objs(value, "policy_templates")):
            w = f"policy_templates.{i}"
            name = self.required_s(pt.get("name"), f"{w}.name")
            title = self.required_s(pt.get("title"), f"{w}.title")
            description = self.required_s(pt.get("description"), f"{w}.description")
            data_streams = self.strs(pt.get("data_streams"), f"{w}.data_streams")
            inputs = self._inputs(pt.get("inputs"), f"{w}.inputs")
            multiple = (
                True if pt.get("multiple") is None else self.b(pt["multiple"], f"{w}.multiple")
            )
            icons = self._images(pt.get("icons"), f"{w}.icons", prefix)
            categories = self.strs(pt.get("categories"), f"{w}.categories")
            screenshots = self._images(pt.get("screenshots"), f"{w}.screenshots", prefix)
            modes = self._deployment_modes(
                pt.get("deployment_modes"), f"{w}.deployment_modes", name
            )
            pt_type = self.s(pt.get("type"), f"{w}.type")
            pt_input = self.s(pt.get("input"), f"{w}.input")
            method = self.s(pt.get("ingestion_method"), f"{w}.ingestion_method")
            if pkg_type == "input" and pt_input:
                method = categories_mod.ingestion_method(pt_input) or ""
            template_path = self.s(pt.get("template_path"), f"{w}.template_path")
            dep = self._deprecated(pt.get("deprecated"), f"{w}.deprecated")

            readme: str | None = None
            readme_rel = posixpath.normpath(f"docs/{name}.md")
            if readme_rel in index.files:
                readme = _join_url(prefix, readme_rel)
            elif readme_rel in index.dirs:
                raise self.err(f"{name}.md is a directory")

            item: JSONObject = {"name": name, "title": title, "description": description}
            if data_streams:
                item["data_streams"] = data_streams
            if inputs:
                item["inputs"] = inputs
            item["multiple"] = multiple
            if icons:
                item["icons"] = icons
            if categories:
                item["categories"] = categories
            if screenshots:
                item["screenshots"] = screenshots
            if readme:
                item["readme"] = readme
            if modes is not None:
                item["deployment_modes"] = modes
            if pt_type:
                item["type"] = pt_type
            if pt_input:
                item["input"] = pt_input
            if method:
                item["ingestion_method"] = method
            if template_path:
                item["template_path"] = template_path
            if dep is not None:
                item["deprecated"] = dep
            full.append(item)

            s: JSONObject = {"name": name, "title": title, "description": description}
            if icons:
                s["icons"] = icons
            if categories:
                s["categories"] = categories
            if modes is not None:
                s["deployment_modes"] = modes
            if data_streams:
                s["data_streams"] = data_streams
            if dep is not None:
                s["deprecated"] = dep
            short.append(s)
            refs.append(PolicyTemplateRef(name=name, categories=tuple(categories)))
        return full, short, refs

    # -- assets

    def _assets(self, index: _Index, name: str, prefix: str) -> list[str]:
        by_depth: dict[int, list[TreeEntry]] = {}
        for e in index.entries:
            by_depth.setdefault(e.path.count("/") + 1, []).append(e)
        out: list[str] = []
        depth = 1
        while depth in by_depth:
            for e in by_depth[depth]:
                if ".DS_Store" in e.path:
                    continue
                if e.is_dir:
                    # development folders (``_dev``, left out of built packages) are exempt
                    if "-" in e.path.rpartition("/")[2] and "_dev" not in e.path.split("/"):
                        raise self.err(
                            f"directory name inside package {name} contains -: {e.path}",
                            self.location,
                        )
                    continue
                out.append(f"{prefix}/{e.path}")
            depth += 1
        return out

    # -- data streams

    def _data_streams(
        self, index: _Index, pkg_name: str, pkg_release: str
    ) -> tuple[list[JSONObject], list[JSONObject]]:
        full: list[JSONObject] = []
        short: list[JSONObject] = []
        for e in index.entries:
            parts = e.path.split("/")
            if (
                e.is_dir
                or len(parts) != 3
                or parts[0] != "data_stream"
                or parts[2] != "manifest.yml"
            ):
                continue
            item, s = self._data_stream(index, parts[1], pkg_name, pkg_release)
            full.append(item)
            short.append(s)
        return full, short

    def _data_stream(
        self, index: _Index, dirname: str, pkg_name: str, pkg_release: str
    ) -> tuple[JSONObject, JSONObject]:
        base = f"data_stream/{dirname}"
        file = f"{self.location}/{base}/manifest.yml"
        try:
            raw = self.tree.read(f"{base}/manifest.yml")
        except NotFoundError:
            raise self.err("manifest does not exist for data stream", file) from None
        loaded = load_yaml(raw, path=file)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise self.err(
                f"data stream manifest must be a YAML mapping, got {_kind(loaded)}", file
            )
        m: dict[Any, Any] = expand_dotted(loaded)

        ds_type = self.s(m.get("type"), "type", file)  # optional in the package-spec
        title = self.required_s(m.get("title"), "title", file)
        dataset = self.s(m.get("dataset"), "dataset", file) or f"{pkg_name}.{dirname}"
        hidden = self.b(m.get("hidden"), "hidden", file)
        ilm_policy = self.s(m.get("ilm_policy"), "ilm_policy", file)
        prefix_flag = self.b(m.get("dataset_is_prefix"), "dataset_is_prefix", file)
        release = self.s(m.get("release"), "release", file) or pkg_release
        if release not in VALID_RELEASES:
            raise self.err(f'invalid release: "{release}"', file)
        ingest_pipeline = self.s(m.get("ingest_pipeline"), "ingest_pipeline", file)
        streams = self._streams(m.get("streams"), "streams", file, defaults=True)

        es_raw = self.obj(m.get("elasticsearch"), "elasticsearch", file)
        es: JSONObject | None = None
        es_pipeline_name = ""
        settings: Any = None
        mappings: Any = None
        indices: list[str] | None = None
        if es_raw is not None:
            it = self.obj(es_raw.get("index_template"), "elasticsearch.index_template", file) or {}
            settings = self.obj(it.get("settings"), "elasticsearch.index_template.settings", file)
            mappings = self.obj(it.get("mappings"), "elasticsearch.index_template.mappings", file)
            ip = (
                self.obj(es_raw.get("ingest_pipeline"), "elasticsearch.ingest_pipeline", file) or {}
            )
            es_pipeline_name = self.s(ip.get("name"), "elasticsearch.ingest_pipeline.name", file)
            priv = self.obj(es_raw.get("privileges"), "elasticsearch.privileges", file)
            if priv is not None:
                indices = self.strs(priv.get("indices"), "elasticsearch.privileges.indices", file)

        # ingest pipeline rules (spec §6.5)
        pipeline_dir = f"{base}/elasticsearch/ingest_pipeline"
        pipelines = index.children.get(pipeline_dir, [])
        has_default = any(
            p.path.rpartition("/")[2] in ("default.json", "default.yml") for p in pipelines
        )
        if es_raw is not None and not es_pipeline_name:
            if has_default:
                es_pipeline_name = "default"
                ingest_pipeline = "default"
        elif not ingest_pipeline and has_default:
            ingest_pipeline = "default"
        if not ingest_pipeline and pipelines:
            raise self.err(
                f"unused pipelines in the package (dataset: {dataset}): "
                + ",".join(p.path for p in pipelines),
                file,
            )

        if es_raw is not None:
            es = {}
            if settings:
                es["index_template.settings"] = self.free(settings, "index_template.settings", file)
            if mappings:
                es["index_template.mappings"] = self.free(mappings, "index_template.mappings", file)
            if es_pipeline_name:
                es["ingest_pipeline.name"] = es_pipeline_name
            if indices is not None:
                es["privileges"] = {"indices": indices} if indices else {}

        agent = self._agent(m.get("agent"), "agent", file)
        deprecated = self._deprecated(m.get("deprecated"), "deprecated", file)

        item: JSONObject = {"type": ds_type, "dataset": dataset}
        if hidden:
            item["hidden"] = True
        if ilm_policy:
            item["ilm_policy"] = ilm_policy
        if prefix_flag:
            item["dataset_is_prefix"] = True
        item["title"] = title
        item["release"] = release
        if ingest_pipeline:
            item["ingest_pipeline"] = ingest_pipeline
        if streams:
            item["streams"] = streams
        item["package"] = pkg_name
        if es is not None:
            item["elasticsearch"] = es
        if agent is not None:
            item["agent"] = agent
        item["path"] = dirname
        if deprecated is not None:
            item["deprecated"] = deprecated

        short: JSONObject = {}
        if ds_type:
            short["type"] = ds_type
        short["dataset"] = dataset
        short["title"] = title
        if deprecated is not None:
            short["deprecated"] = deprecated
        return item, short


def _join_url(prefix: str, rel: str) -> str:
    """POSIX join + clean like Go's ``path.Join`` (``prefix`` is absolute)."""
    return posixpath.normpath(f"{prefix}/{rel}")


def _bytewise(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
