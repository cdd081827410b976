"""Derived documents: a loaded :class:`Package` without its files, as JSON bytes, and back.

Reading a package (``manifest.read_package``) parses its manifests and data-stream files (YAML);
serving needs only what that produced: the two documents and the filter attributes. A
*derived document* is that result written down once (when a version is published or imported,
or the first time a server reads an artifact that has none) so that a cold start, a revision
switch or a restart over unchanged package folders never parses YAML or opens a zip again.

Pure: :func:`dump_package` and :func:`load_package` only turn bytes into objects and back. The
package's files are reached through the tree handed to :func:`load_package`, typically a
:class:`LazyTree` that opens the real tree on first use (a static file request).

The format carries :data:`FORMAT` (bump it when ``read_package``'s output changes: documents
written by another format are ignored and derived again). :func:`dump_package` checks that the
result loads back to the same documents, byte for byte as rendered (``render.dumps``), and
returns None when it would not (a free-form map with non-string keys, say): such a package is
simply read from its files each time.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import orjson  # about twice as fast as the json module's decoder on these documents

from package_storage.errors import PackageError
from package_storage.packages import render
from package_storage.packages.model import (
    DocumentPair,
    Documents,
    JSONObject,
    Package,
    PackageTree,
    PolicyTemplateRef,
    SourceKind,
    TreeEntry,
)
from package_storage.packages.versions import Constraint, Version

__all__ = ["FORMAT", "LazyTree", "decode_documents", "dump_package", "load_package", "opened"]

FORMAT = 1
"""Version of the derived-document format and of the reading rules behind it."""


def _encode(pkg: Package) -> JSONObject:
    document, entry = pkg.documents.pair()  # one decoding: shared values stay shared
    shared_deprecated = pkg.deprecated is not None and pkg.deprecated is document.get("deprecated")
    return {
        "format": FORMAT,
        "name": pkg.name,
        "version": str(pkg.version),
        "release": pkg.release,
        "type": pkg.type,
        "categories": list(pkg.categories),
        "policy_templates": [[t.name, list(t.categories)] for t in pkg.policy_templates],
        "kibana_version": None if pkg.kibana_version is None else str(pkg.kibana_version),
        "agent_version": None if pkg.agent_version is None else str(pkg.agent_version),
        "capabilities": None if pkg.capabilities is None else list(pkg.capabilities),
        "spec_version": None if pkg.spec_version is None else str(pkg.spec_version),
        "discovery_fields": _opt_list(pkg.discovery_fields),
        "discovery_datasets": _opt_list(pkg.discovery_datasets),
        # Values both documents hold are one object when read from the files: written once.
        "deprecated": "document" if shared_deprecated else pkg.deprecated,
        "document": document,
        "search_keys": list(entry),
        "search_own": {k: v for k, v in entry.items() if not (k in document and document[k] is v)},
    }


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # e.g. an integer beyond 64 bits: the exact slow path
        return json.loads(data)


def _opt_list(value: Sequence[str] | None) -> list[str] | None:
    return None if value is None else list(value)


def dump_package(pkg: Package) -> bytes | None:
    """``pkg`` (without its tree) as derived-document bytes; None when the JSON form would not
    render the same documents (then the package is not derived, only read)."""
    try:
        data = json.dumps(_encode(pkg), separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):
        return None
    try:
        back = load_package(data, pkg.tree)
    except (PackageError, ValueError):
        return None
    if (
        back is None
        or render.dumps(back.document) != render.dumps(pkg.document)
        or render.dumps(back.search_entry) != render.dumps(pkg.search_entry)
        or back.policy_templates != pkg.policy_templates
        or back.kibana_version != pkg.kibana_version
        or back.agent_version != pkg.agent_version
        or back.spec_version != pkg.spec_version
        or back.version.original != pkg.version.original
    ):
        return None
    return data


def load_package(data: bytes, tree: PackageTree) -> Package | None:
    """The package of derived-document ``data`` with ``tree`` as its files; None when ``data``
    is of another format. Raises ValueError (or PackageError) when ``data`` is malformed.

    The package keeps ``data`` itself as its documents (:meth:`Documents.encoded`): both are
    decoded from it each time they are asked for, and only the filter attributes are held as
    objects (equal small values shared between packages)."""
    raw = _loads(data)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        return None
    document, _ = _pair_of(raw)  # malformed documents fail here, not when first served
    deprecated = raw["deprecated"]
    if deprecated == "document":
        deprecated = document["deprecated"]
    kibana = raw["kibana_version"]
    agent = raw["agent_version"]
    spec = raw["spec_version"]
    return Package(
        name=sys.intern(raw["name"]),
        version=Version.parse_strict(raw["version"]),
        release=sys.intern(raw["release"]),
        type=sys.intern(raw["type"]),
        categories=_shared(tuple(raw["categories"])),
        policy_templates=_shared(
            tuple(PolicyTemplateRef(name, tuple(cats)) for name, cats in raw["policy_templates"])
        ),
        kibana_version=None if kibana is None else Constraint.parse(kibana),
        agent_version=None if agent is None else Constraint.parse(agent),
        capabilities=_shared_opt(raw["capabilities"]),
        spec_version=None if spec is None else Version.parse_strict(spec),
        discovery_fields=_shared_opt(raw["discovery_fields"]),
        discovery_datasets=_shared_opt(raw["discovery_datasets"]),
        documents=Documents.encoded(data, decode_documents),
        tree=tree,
        deprecated=deprecated,
    )


def decode_documents(data: bytes) -> DocumentPair:
    """(document, search entry) of derived-document ``data`` (fresh dicts on every call)."""
    return _pair_of(_loads(data))


def _pair_of(raw: Any) -> DocumentPair:
    document = raw["document"]
    own = raw["search_own"]
    if not isinstance(document, dict) or not isinstance(own, dict):
        raise ValueError("derived document without its documents")
    entry = {k: own[k] if k in own else document[k] for k in raw["search_keys"]}
    return document, entry


_T = TypeVar("_T", bound=Hashable)


@functools.lru_cache(maxsize=4096)
def _shared(value: _T) -> _T:
    """One object for equal small values (categories, templates) of many packages."""
    return value


def _shared_opt(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _shared(tuple(value))


_OPEN_LOCKS = tuple(threading.Lock() for _ in range(64))
"""Striped locks for :meth:`LazyTree.resolve` (opening is rare; a lock per tree would cost
~90 bytes for each of a store's thousands of versions)."""


class LazyTree:
    """A :class:`PackageTree` that opens the real tree (``open()``) on first use and keeps it.

    ``kind`` and ``location`` answer without opening. Code that needs the concrete tree type
    (a zip's bounded entry reader, a folder's root) calls :func:`opened`.
    """

    __slots__ = ("_kind", "_location", "_open", "_tree")

    def __init__(self, kind: SourceKind, location: str, open: Callable[[], PackageTree]) -> None:
        self._kind = kind
        self._location = location
        self._open = open
        self._tree: PackageTree | None = None

    @property
    def kind(self) -> SourceKind:
        return self._kind

    @property
    def location(self) -> str:
        return self._location

    @property
    def is_open(self) -> bool:
        return self._tree is not None

    def resolve(self) -> PackageTree:
        """The real tree (opened now when not yet)."""
        tree = self._tree
        if tree is None:
            with _OPEN_LOCKS[id(self) % len(_OPEN_LOCKS)]:
                tree = self._tree
                if tree is None:
                    tree = self._tree = self._open()
        return tree

    def entries(self) -> Sequence[TreeEntry]:
        return self.resolve().entries()

    def stat(self, path: str) -> TreeEntry | None:
        return self.resolve().stat(path)

    def read(self, path: str) -> bytes:
        return self.resolve().read(path)

    def __repr__(self) -> str:
        return f"LazyTree({self._location!r}, open={self.is_open})"


def opened(tree: PackageTree) -> PackageTree:
    """``tree`` itself, or the real tree behind a :class:`LazyTree`."""
    return tree.resolve() if isinstance(tree, LazyTree) else tree
