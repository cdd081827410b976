"""The served index: packages of one distribution/revision, ready to answer requests fast.

A :class:`RegistryIndex` is built once from the ordered package sources and never changes
afterwards (a new revision gets a new index). It precomputes what every request needs
(per-source groups by name, the exact-lookup table) and renders lazily, caching:

* every package's search entry as a pre-indented JSON fragment, so a /search body is a join
  of fragments (only entries whose policy templates the category filter reduced are rendered
  per request);
* every full package document (bounded LRU);
* whole /search and /categories bodies per ``(endpoint, raw query, allow_unknown)`` (bounded
  LRU, by entry count and by bytes), so the common requests cost a dictionary lookup.

Cached bodies are :class:`~package_storage.registry.bodies.Body` objects: the same bytes, with
their strong ETag and (computed on first use, then kept with the body) their gzip form, so an
index hashes and compresses each answer at most once.

All caches are safe to use from several threads. Errors are not cached: ``QueryError`` (bad
parameters) and ``PackageError`` (a package without spec version when ``spec.min``/``spec.max``
is asked for, see ``search.py``) propagate to the caller every time.

Stored files. Where a package's artifact zip and ``.sig`` come from is the index's
:class:`PackageFiles` (``zip_file(pkg)``, ``signature_file(pkg)``): by default
:class:`DiskFiles` (plain EPR mode: the zip file of a zip package, ``<location>.sig``); a store
passes its own (blobs on disk or in memory).

Switching revisions. A new index of the next revision of a distribution can be built with
``previous=`` the index it replaces: search fragments of the packages both share (the same
:class:`Package` objects) are taken over instead of rendered again, and :meth:`warm_from`
renders the previous index's most recent /search and /categories queries before the swap, so
a switch does not make the next requests slow.
"""

from __future__ import annotations

import bisect
import os
import threading
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from package_storage.errors import PackageStorageError
from package_storage.packages import render
from package_storage.packages.artifacts import signature_location
from package_storage.packages.model import JSONObject, Package
from package_storage.registry import search as _search
from package_storage.registry.bodies import Body

DEFAULT_CACHE_ENTRIES = 1024
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
DEFAULT_DOCUMENT_CACHE_ENTRIES = 4096
DEFAULT_DOCUMENT_CACHE_BYTES = 64 * 1024 * 1024


# --- rendering -----------------------------------------------------------------------------


def _fragment(entry: JSONObject) -> bytes:
    """``entry`` rendered as one element of a pretty-printed top-level array: every line
    indented by two spaces, no trailing newline (JSON strings never hold raw newlines).

    Same bytes as ``render.entry_fragment`` but without its process-wide cache: fragments of
    an index live in (and die with) the index.
    """
    text = render.dumps(entry).rstrip(b"\n")
    return b"  " + text.replace(b"\n", b"\n  ")


def _name_of(pkg: Package) -> str:
    return pkg.name


# --- stored files --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchFile:
    """A stored file that must be fetched first (a blob not in the local cache of a remote
    blob store): ``fetch()`` blocks on the network, so the server calls it off the event
    loop; it returns the file or its bytes, or raises (``UnavailableError``: 503)."""

    fetch: Callable[[], Path | bytes]


@dataclass(frozen=True, slots=True)
class RedirectFile:
    """Answer with a redirect to ``url`` (a pre-signed object-store URL,
    ``serve --artifact-redirect``) instead of sending the bytes."""

    url: str


StoredFile = Path | bytes | FetchFile | RedirectFile
"""A stored file to serve: a file on disk (sent from the file), its bytes, a file to fetch
first, or a redirect."""


class PackageFiles(Protocol):
    """Where the artifact zip and the detached signature of a served package are stored."""

    def zip_file(self, pkg: Package) -> StoredFile | None:
        """The stored zip of ``pkg``; None when there is none (a folder package: the server
        builds the zip from the tree)."""
        ...

    def signature_file(self, pkg: Package) -> StoredFile | None:
        """The stored ``.sig`` of ``pkg``; None when the package has no signature."""
        ...


class DiskFiles:
    """Plain EPR mode (spec §2.8, §2.9): a zip package's zip is its file (folder packages have
    none), and the signature is always ``<package location>.sig``: whether that file exists
    is found out when it is served (a missing file is the reference's 500)."""

    def zip_file(self, pkg: Package) -> StoredFile | None:
        tree = pkg.tree
        if tree.kind != "zip":
            return None
        path = getattr(tree, "path", None)
        return Path(path) if isinstance(path, str | os.PathLike) else Path(tree.location)

    def signature_file(self, pkg: Package) -> StoredFile | None:
        return Path(signature_location(pkg.tree))


DISK_FILES = DiskFiles()


# --- cache ---------------------------------------------------------------------------------


class BodyCache:
    """A thread-safe LRU of byte strings bounded by entry count and by total bytes.

    A value larger than the byte budget is not stored. ``max_entries=0`` disables caching.
    """

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("cache limits must not be negative")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def peek(self, key: Hashable) -> bytes | None:
        """The cached value, without counting a hit or a miss or refreshing its age."""
        with self._lock:
            return self._data.get(key)

    def put(self, key: Hashable, value: bytes) -> None:
        size = len(value)
        if self.max_entries == 0 or size > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._data[key] = value
            self._bytes += size
            while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self._bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._data)

    def key_list(self) -> list[Hashable]:
        """The cached keys, least recently used first (a snapshot)."""
        with self._lock:
            return list(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


# --- index ---------------------------------------------------------------------------------


class RegistryIndex:
    """Immutable, request-ready view of ordered package sources (spec §4, §5, §7.5).

    ``sources`` is the list of sources in precedence order (storage, zip, folder), each a
    sequence of packages in source order with duplicates already removed (§7.5).

    ``files`` says where artifacts and signatures are stored (default :data:`DISK_FILES`).
    ``previous``: the index this one replaces; the search fragments of the packages both hold
    are reused (nothing else is shared, and ``previous`` is not kept). ``documents``: the
    package-document body cache, when shared with other indexes (bodies are keyed by the
    package object, so indexes holding the same packages may share one: a store's
    distributions and revisions do); default: one of the index's own.
    """

    def __init__(
        self,
        sources: Sequence[Sequence[Package]],
        *,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        document_cache_entries: int = DEFAULT_DOCUMENT_CACHE_ENTRIES,
        document_cache_bytes: int = DEFAULT_DOCUMENT_CACHE_BYTES,
        files: PackageFiles | None = None,
        previous: RegistryIndex | None = None,
        unlisted: Collection[Package] = (),
        documents: BodyCache | None = None,
    ) -> None:
        self._sources: tuple[tuple[Package, ...], ...] = tuple(tuple(s) for s in sources)
        # ``unlisted`` (a store's yanked versions): served by exact version and downloadable,
        # left out of /search and /categories (and so of the latest-version choice).
        hidden = set(unlisted)
        self._listed = (
            tuple(tuple(p for p in s if p not in hidden) for s in self._sources)
            if hidden
            else self._sources
        )
        self._hidden = frozenset(hidden)
        by_name: list[dict[str, tuple[Package, ...]]] = []
        by_key: dict[tuple[str, str], Package] = {}
        names: dict[str, list[Package]] = {}
        for source in self._sources:
            for pkg in source:
                by_key.setdefault(pkg.key, pkg)
                names.setdefault(pkg.name, []).append(pkg)
        for source in self._listed:
            groups: dict[str, list[Package]] = {}
            for pkg in source:
                groups.setdefault(pkg.name, []).append(pkg)
            by_name.append({name: tuple(pkgs) for name, pkgs in groups.items()})
        self._by_name: tuple[dict[str, tuple[Package, ...]], ...] = tuple(by_name)
        self._by_key = by_key
        # Every package of a name over all sources (listed or not): what a change replaces.
        self._names: dict[str, tuple[Package, ...]] = {n: tuple(p) for n, p in names.items()}
        self._fragments: dict[Package, bytes] = {}
        if previous is not None:
            old = previous._fragments
            for source in self._sources:
                for pkg in source:
                    fragment = old.get(pkg)
                    if fragment is not None:
                        self._fragments[pkg] = fragment
        self._files: PackageFiles = files if files is not None else DISK_FILES
        self._bodies = BodyCache(cache_entries, cache_bytes)
        self._documents = (
            documents
            if documents is not None
            else BodyCache(document_cache_entries, document_cache_bytes)
        )
        # Set by updated(): the names that differ from the index this one was made from, so
        # warm_from() can patch that index's bodies instead of rendering them again.
        self._changed: frozenset[str] | None = None
        self._base: weakref.ref[RegistryIndex] | None = None

    @classmethod
    def updated(
        cls,
        previous: RegistryIndex,
        sources: Sequence[Sequence[Package]],
        changed: Collection[str],
        *,
        files: PackageFiles | None = None,
        unlisted: Collection[Package] = (),
    ) -> RegistryIndex:
        """The index of ``sources`` built from ``previous`` (the index it replaces) when only
        the packages named in ``changed`` differ between the two: the work is proportional to
        those names, not to the whole index.

        ``sources`` must be ``previous.sources`` with the packages of the ``changed`` names
        replaced (every other package the same object, in the same place), each source
        sorted by name (a store's revision is sorted by name and version), and ``unlisted``
        the complete set of hidden packages. The body cache starts empty; the search
        fragments of the unchanged packages and the document body cache are shared with
        ``previous`` (see :meth:`warm_from`).
        """
        self = cls.__new__(cls)
        self._sources = tuple(tuple(src) for src in sources)
        hidden = frozenset(unlisted)
        self._hidden = hidden
        self._listed = (
            tuple(tuple(p for p in src if p not in hidden) for src in self._sources)
            if hidden
            else self._sources
        )
        by_key = dict(previous._by_key)
        names = dict(previous._names)
        fragments = dict(previous._fragments)
        by_name = [dict(groups) for groups in previous._by_name]
        if len(by_name) != len(self._sources):
            raise ValueError("updated(): sources must keep the number of sources")
        for name in changed:
            for pkg in names.pop(name, ()):
                if by_key.get(pkg.key) is pkg:
                    del by_key[pkg.key]
                fragments.pop(pkg, None)
            found: list[Package] = []
            for groups, src in zip(by_name, self._sources, strict=True):
                lo = bisect.bisect_left(src, name, key=_name_of)
                hi = bisect.bisect_right(src, name, lo=lo, key=_name_of)
                group = src[lo:hi]
                found.extend(group)
                listed = tuple(p for p in group if p not in hidden) if hidden else group
                if listed:
                    groups[name] = listed
                else:
                    groups.pop(name, None)
            for pkg in found:
                by_key.setdefault(pkg.key, pkg)
            if found:
                names[name] = tuple(found)
        self._by_key = by_key
        self._names = names
        self._by_name = tuple(by_name)
        self._fragments = fragments
        self._files = files if files is not None else DISK_FILES
        old_bodies = previous._bodies
        self._bodies = BodyCache(old_bodies.max_entries, old_bodies.max_bytes)
        # Document bodies are keyed by package: the unchanged ones stay rendered.
        self._documents = previous._documents
        self._changed = frozenset(changed)
        self._base = weakref.ref(previous)
        return self

    # -- contents ---------------------------------------------------------------------------

    @property
    def sources(self) -> tuple[tuple[Package, ...], ...]:
        return self._sources

    @property
    def package_count(self) -> int:
        """Number of distinct served package versions (name+version) over all sources."""
        return len(self._by_key)

    def packages(self) -> Iterator[Package]:
        """Every served package version once (the one a lookup returns), in source order."""
        return iter(self._by_key.values())

    def lookup(self, name: str, version: str) -> Package | None:
        """Exact lookup by name and version string; earlier source wins (spec §4.2)."""
        return self._by_key.get((name, version))

    # -- stored files -----------------------------------------------------------------------

    def zip_file(self, pkg: Package) -> StoredFile | None:
        """The stored artifact zip of ``pkg`` (None: build it from the package tree)."""
        return self._files.zip_file(pkg)

    def signature_file(self, pkg: Package) -> StoredFile | None:
        """The stored detached signature of ``pkg`` (None: the package has none)."""
        return self._files.signature_file(pkg)

    def file_etag(self, pkg: Package, what: str) -> str | None:
        """A strong entity tag for a file of ``pkg`` (``what``: ``.zip``, ``.sig`` or a path
        in the package) when its bytes can never change (a store's artifacts are content
        addressed); None otherwise (plain EPR mode: files on disk may be edited)."""
        tagger = getattr(self._files, "file_etag", None)
        return tagger(pkg, what) if callable(tagger) else None

    # -- bodies -----------------------------------------------------------------------------

    @property
    def cache(self) -> BodyCache:
        """The /search and /categories body cache (for metrics and tests)."""
        return self._bodies

    def search_body(self, raw_query: str, *, allow_unknown: bool = True) -> bytes:
        """The /search response body for ``raw_query`` (the URL's query string, no ``?``).

        Raises ``QueryError`` (400) or ``PackageError`` (404 ``fetching package failed``).
        """
        key = ("search", raw_query, allow_unknown)
        body = self._bodies.get(key)
        if body is None:
            query = _search.parse_query(raw_query, "search", allow_unknown=allow_unknown)
            body = self._render_search(query)
            self._bodies.put(key, body)
        return body

    def categories_body(self, raw_query: str, *, allow_unknown: bool = True) -> bytes:
        """The /categories response body for ``raw_query``.

        Raises ``QueryError`` (400) or ``PackageError`` (404 with the bare message).
        """
        key = ("categories", raw_query, allow_unknown)
        body = self._bodies.get(key)
        if body is None:
            query = _search.parse_query(raw_query, "categories", allow_unknown=allow_unknown)
            hits = _search.select(self._listed, query)
            body = _categories_body(
                _search.count_categories((h.package for h in hits), query.include_policy_templates)
            )
            self._bodies.put(key, body)
        return body

    def search(self, query: _search.Query) -> list[JSONObject]:
        """The /search entries for a parsed query (uncached; entries are shared, read-only)."""
        return [hit.entry for hit in _search.select(self._candidates(query), query)]

    def categories(self, query: _search.Query) -> list[JSONObject]:
        """The /categories objects for a parsed query (uncached)."""
        return _search.categories(self._listed, query)

    def document_body(self, pkg: Package) -> bytes:
        """The full package document of ``pkg`` rendered (spec §6), cached."""
        key = ("document", pkg)  # packages hash by identity; the key keeps pkg alive
        body = self._documents.get(key)
        if body is None:
            body = Body(render.dumps(pkg.document))
            self._documents.put(key, body)
        return body

    def warm_from(self, previous: RegistryIndex, *, limit: int = 32) -> int:
        """Render here the ``limit`` /search and /categories queries ``previous`` answered most
        recently, so that swapping this index in keeps them fast. Queries that fail are
        skipped. Returns how many bodies were rendered."""
        changed = self._changed
        base = self._base() if self._base is not None else None
        patch = changed is not None and base is previous
        self._base = None  # the previous index is not kept
        done = 0
        for key in reversed(previous._bodies.key_list()):
            if done >= limit:
                break
            if not (isinstance(key, tuple) and len(key) == 3):
                continue
            endpoint, raw_query, allow_unknown = key
            if not isinstance(raw_query, str) or not isinstance(allow_unknown, bool):
                continue
            if endpoint not in ("search", "categories"):
                continue
            try:
                old = previous._bodies.peek(key) if patch else None
                if old is not None and changed is not None and self._bodies.peek(key) is None:
                    patched = self._patched(
                        previous, endpoint, raw_query, allow_unknown, old, changed
                    )
                    if patched is not None:
                        self._bodies.put(key, patched)
                        done += 1
                        continue
                if endpoint == "search":
                    self.search_body(raw_query, allow_unknown=allow_unknown)
                else:
                    self.categories_body(raw_query, allow_unknown=allow_unknown)
            except PackageStorageError:
                continue
            done += 1
        return done

    def _patched(
        self,
        previous: RegistryIndex,
        endpoint: str,
        raw_query: str,
        allow_unknown: bool,
        old: bytes,
        changed: frozenset[str],
    ) -> Body | None:
        """The body of ``previous`` for this query with only the ``changed`` names worked out
        again (every filter and the version choice work per name, so the rest is the same);
        None when ``old`` carries no layout to patch."""
        if endpoint == "search":
            layout = getattr(old, "layout", None)
            if not isinstance(layout, _Layout):
                return None
            query = _search.parse_query(raw_query, "search", allow_unknown=allow_unknown)
            hits = _search.select(self._narrowed(changed), query)
            return _patched_search(old, layout, self._chunks(hits), changed)
        counts = getattr(old, "counts", None)
        if not isinstance(counts, dict):
            return None
        query = _search.parse_query(raw_query, "categories", allow_unknown=allow_unknown)
        include = query.include_policy_templates
        gone = _search.select(previous._narrowed(changed), query)
        came = _search.select(self._narrowed(changed), query)
        merged = dict(counts)
        for c, n in _search.count_categories((h.package for h in gone), include).items():
            merged[c] = merged.get(c, 0) - n
        for c, n in _search.count_categories((h.package for h in came), include).items():
            merged[c] = merged.get(c, 0) + n
        return _categories_body({c: n for c, n in merged.items() if n > 0})

    def _narrowed(self, names: Collection[str]) -> list[tuple[Package, ...]]:
        """The listed sources narrowed to ``names`` (each source's order kept)."""
        ordered = sorted(names)
        return [tuple(p for n in ordered for p in groups.get(n, ())) for groups in self._by_name]

    def _chunks(self, hits: Sequence[_search.Hit]) -> list[tuple[str, bytes]]:
        """``hits`` (sorted by name) rendered per name: each name's fragments joined."""
        out: list[tuple[str, bytes]] = []
        group: list[bytes] = []
        name = ""
        for hit in hits:
            if group and hit.package.name != name:
                out.append((name, b",\n".join(group)))
                group = []
            name = hit.package.name
            group.append(_fragment(hit.entry) if hit.reduced else self._fragment_of(hit.package))
        if group:
            out.append((name, b",\n".join(group)))
        return out

    # -- internals --------------------------------------------------------------------------

    def _candidates(self, query: _search.Query) -> Sequence[Sequence[Package]]:
        """The sources narrowed to the queried package name when there is one (every filter
        and the version selection work per name, so the answer is the same)."""
        if query.endpoint == "search" and query.package:
            return [groups.get(query.package, ()) for groups in self._by_name]
        return self._listed

    def _fragment_of(self, pkg: Package) -> bytes:
        fragment = self._fragments.get(pkg)
        if fragment is None:
            fragment = _fragment(pkg.search_entry)
            self._fragments[pkg] = fragment
        return fragment

    def _render_search(self, query: _search.Query) -> Body:
        hits = _search.select(self._candidates(query), query)
        if query.package or len(hits) < LAYOUT_MIN_ENTRIES:
            return Body(
                render.search_body(
                    [
                        _fragment(hit.entry) if hit.reduced else self._fragment_of(hit.package)
                        for hit in hits
                    ]
                )
            )
        return _search_body(self._chunks(hits))


LAYOUT_MIN_ENTRIES = 64
"""Search bodies with at least this many entries keep their layout (patched at a switch)."""


class _Layout:
    """Where each name's entries are in a search body: ``names`` in body order and the end
    offset of each name's part (its fragments joined by ``,\\n``)."""

    __slots__ = ("ends", "names")

    def __init__(self, names: list[str], ends: array[int]) -> None:
        self.names = names
        self.ends = ends


def _search_body(chunks: Sequence[tuple[str, bytes]]) -> Body:
    """A /search body from per-name parts (same bytes as ``render.search_body`` of all the
    fragments), with its :class:`_Layout`."""
    if not chunks:
        return Body(b"[]")
    body = Body(b"[\n" + b",\n".join(part for _, part in chunks) + b"\n]\n")
    ends = array("Q")
    position = 2
    for _, part in chunks:
        position += len(part)
        ends.append(position)
        position += 2
    body.layout = _Layout([name for name, _ in chunks], ends)
    return body


def _patched_search(
    old: bytes, layout: _Layout, fresh: Sequence[tuple[str, bytes]], changed: frozenset[str]
) -> Body:
    """``old`` with the parts of the ``changed`` names replaced by ``fresh`` ones: the parts
    in between are copied as whole runs, so the cost is a copy of the body, not a render."""
    names, ends = layout.names, layout.ends
    parts = dict(fresh)
    segments: list[bytes] = []
    new_names: list[str] = []
    new_ends: array[int] = array("Q")
    position = 2  # where the next segment starts in the new body

    def add_run(lo: int, hi: int) -> None:  # old names[lo:hi], as one slice
        nonlocal position
        start = ends[lo - 1] + 2 if lo else 2
        segments.append(old[start : ends[hi - 1]])
        shift = position - start
        new_names.extend(names[lo:hi])
        new_ends.extend(e + shift for e in ends[lo:hi])
        position += ends[hi - 1] - start + 2

    def add_part(name: str, part: bytes) -> None:
        nonlocal position
        segments.append(part)
        new_names.append(name)
        position += len(part)
        new_ends.append(position)
        position += 2

    j = 0
    for name in sorted(changed):
        k = bisect.bisect_left(names, name, lo=j)
        if k > j:
            add_run(j, k)
        if k < len(names) and names[k] == name:
            k += 1
        part = parts.get(name)
        if part is not None:
            add_part(name, part)
        j = k
    if j < len(names):
        add_run(j, len(names))
    if not segments:
        return Body(b"[]")
    body = Body(b"[\n" + b",\n".join(segments) + b"\n]\n")
    body.layout = _Layout(new_names, new_ends)
    return body


def _categories_body(counts: dict[str, int]) -> Body:
    body = Body(render.categories_body(_search.category_objects(counts)))
    body.counts = counts
    return body
