"""Proxy mode (spec §10): local packages first, then the upstream registry's.

:class:`ProxyRegistry` wraps any registry (plain EPR mode, a store's distributions, the
loading placeholder): every index it resolves is wrapped in a :class:`ProxyIndex`, which
answers like the local index plus

* ``/search``: the upstream's answer to the same path and raw query joined after the local
  result (local wins on equal name+version), the newest version per name kept again unless
  ``all=true``, then sorted by name and version (spec §4.3, §4.5). Upstream entries are not
  filtered again here.
* ``/categories``: the upstream's counts added by id; ids only the upstream has keep its title
  and parent fields, re-resolved from the categories table when that title is a known id (the
  reference's quirk, spec §5.3).
* package index, files, zips and signatures of a version no local source has: looked up on the
  upstream (:meth:`ProxyIndex.upstream_package`); the read app renders the document or
  redirects (301) to the upstream's file (:meth:`ProxyIndex.file_url`).

When the upstream cannot be reached (after its retries, see ``proxy_client``), ``/search`` and
``/categories`` answer from the local packages alone (``strict``: 500 like the reference);
requests for versions the local sources do not have answer 500.

Local bodies come from the local index's cache; the upstream is asked on every request (the
reference keeps no copy either). When it answers the same bytes as before for the same local
body, the merged answer made then is reused (it would be the same bytes): a proxied request
then costs the upstream round trip and a lookup.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from package_storage.errors import UpstreamError
from package_storage.packages import render
from package_storage.packages.categories import CATEGORIES
from package_storage.packages.model import JSONObject, Package
from package_storage.packages.versions import Version
from package_storage.registry import search as _search
from package_storage.registry.bodies import Body
from package_storage.registry.index import BodyCache
from package_storage.registry.proxy_client import (
    Upstream,
    UpstreamCategory,
    UpstreamUnavailable,
    decode_categories,
    decode_search,
    parse_json,
)

log = logging.getLogger(__name__)

# How many wrapped indexes a ProxyRegistry keeps (one per distribution/revision in use).
WRAPPED_INDEXES = 64
# Merged answers kept per index (module doc), and the largest upstream answer remembered.
MERGED_ENTRIES = 64
MERGED_BYTES = 64 << 20
MERGED_MAX_UPSTREAM_BYTES = 4 << 20


class LocalIndex(Protocol):
    """What the proxy needs of a local index (``index.RegistryIndex``)."""

    def search_body(self, raw_query: str, *, allow_unknown: bool = ...) -> bytes: ...

    def categories_body(self, raw_query: str, *, allow_unknown: bool = ...) -> bytes: ...

    def lookup(self, name: str, version: str) -> Package | None: ...

    def document_body(self, pkg: Package) -> bytes: ...

    def zip_file(self, pkg: Package) -> Any: ...

    def signature_file(self, pkg: Package) -> Any: ...


class LocalRegistry(Protocol):
    def resolve(self, prefix: str | None) -> Any: ...


@dataclass(frozen=True, slots=True)
class UpstreamPackage:
    """A package version only the upstream has: its identity and rendered document."""

    name: str
    version: str
    body: Body


# --- merging (pure) ------------------------------------------------------------------------

_NAME = re.compile(rb'\A  \{\n    "name": ("(?:[^"\\]|\\.)*")')
_VERSION = re.compile(rb'\n    "version": ("(?:[^"\\]|\\.)*")')


def split_search_body(body: bytes) -> list[tuple[str, str, bytes]]:
    """``(name, version, fragment)`` of each element of a /search body rendered by
    ``render.search_body`` (our own renderer: elements indented by two spaces, their keys by
    four; JSON strings never hold raw newlines, so the element boundaries are unambiguous)."""
    if body.strip() == b"[]":
        return []
    inner = body[2:].rstrip(b"\n")
    if not (body.startswith(b"[\n") and inner.endswith(b"\n]")):
        raise ValueError("not a rendered /search body")
    inner = inner[:-2]
    out: list[tuple[str, str, bytes]] = []
    pieces = inner.split(b"\n  },\n  {\n")
    for i, piece in enumerate(pieces):
        fragment = (
            (b"" if i == 0 else b"  {\n") + piece + (b"" if i == len(pieces) - 1 else b"\n  }")
        )
        name = _NAME.match(fragment)
        version = _VERSION.search(fragment)
        if name is None or version is None:
            raise ValueError("a /search element without name or version")
        out.append((json.loads(name.group(1)), json.loads(version.group(1)), fragment))
    return out


def _fragment(entry: JSONObject) -> bytes:
    """An upstream entry as an element of a top-level array (not cached: per request)."""
    return b"  " + render.dumps(entry).rstrip(b"\n").replace(b"\n", b"\n  ")


def merge_search(
    local: Sequence[tuple[str, str, bytes]],
    upstream: Sequence[tuple[str, Version, JSONObject]],
    *,
    all_versions: bool,
) -> bytes:
    """The proxied /search body: ``local`` elements (already selected and sorted), then the
    upstream entries not already there (same name and version), newest per name unless
    ``all_versions``, sorted by name (bytewise) and version."""
    items: list[tuple[str, Version, int, bytes | JSONObject]] = []
    seen: set[tuple[str, Version]] = set()
    for name, version_text, fragment in local:
        version = Version.parse_lenient(version_text)
        seen.add((name, version))
        items.append((name, version, len(items), fragment))
    for name, version, entry in upstream:
        if (name, version) in seen:
            continue
        items.append((name, version, len(items), entry))
    if not all_versions:
        newest: dict[str, tuple[str, Version, int, bytes | JSONObject]] = {}
        for item in items:
            current = newest.get(item[0])
            if current is None or current[1] < item[1]:
                newest[item[0]] = item
        items = list(newest.values())
    items.sort(key=lambda it: (it[0].encode(), it[1].sort_key, it[2]))
    return render.search_body(
        [part if isinstance(part, bytes) else _fragment(part) for _, _, _, part in items]
    )


def merge_categories(
    local: Sequence[JSONObject], upstream: Sequence[UpstreamCategory]
) -> list[JSONObject]:
    """Local /categories objects plus the upstream's counts (spec §5.3 proxy rule)."""
    merged: dict[str, JSONObject] = {str(obj["id"]): dict(obj) for obj in local}
    for up in upstream:
        current = merged.get(up.id)
        if current is not None:
            current["count"] = int(current["count"]) + up.count
            continue
        obj: JSONObject = {"id": up.id, "title": up.title, "count": up.count}
        known = CATEGORIES.get(up.title)
        if known is not None:
            obj["title"] = known.title
        parent_id, parent_title = up.parent_id, up.parent_title
        if known is not None and known.parent_id:
            parent = CATEGORIES.get(known.parent_id)
            parent_id = known.parent_id
            parent_title = parent.title if parent else known.parent_id
        if parent_id:
            obj["parent_id"] = parent_id
        if parent_title:
            obj["parent_title"] = parent_title
        merged[up.id] = obj
    return [merged[cid] for cid in sorted(merged, key=str.encode)]


# --- the index -----------------------------------------------------------------------------


class ProxyIndex:
    """A local index answering with the upstream's packages as well (module doc)."""

    def __init__(self, local: LocalIndex, upstream: Upstream) -> None:
        self.local = local
        self.upstream = upstream
        # Merged answers by (local body, upstream body): asked every time, the upstream mostly
        # answers the same bytes, and then the merge is not done again.
        self._merged = BodyCache(MERGED_ENTRIES, MERGED_BYTES)

    # -- the local index's interface (answers of the local packages alone) ------------------

    def search_body(self, raw_query: str, *, allow_unknown: bool = True) -> bytes:
        return self.local.search_body(raw_query, allow_unknown=allow_unknown)

    def categories_body(self, raw_query: str, *, allow_unknown: bool = True) -> bytes:
        return self.local.categories_body(raw_query, allow_unknown=allow_unknown)

    def lookup(self, name: str, version: str) -> Package | None:
        return self.local.lookup(name, version)

    def document_body(self, pkg: Package) -> bytes:
        return self.local.document_body(pkg)

    def zip_file(self, pkg: Package) -> Any:
        return self.local.zip_file(pkg)

    def signature_file(self, pkg: Package) -> Any:
        return self.local.signature_file(pkg)

    # -- proxied answers --------------------------------------------------------------------

    async def proxied_search_body(
        self, path: str, raw_query: str, *, allow_unknown: bool = True
    ) -> bytes:
        """The /search answer with the upstream's entries. Raises what the local index
        raises (bad query first, before the upstream is asked) and ``UpstreamError``."""
        local = self.local.search_body(raw_query, allow_unknown=allow_unknown)
        query = _search.parse_query(raw_query, "search", allow_unknown=allow_unknown)
        try:
            content = await self.upstream.fetch(path, raw_query)
            key = ("search", local, content, query.all)
            merged = self._merged.get(key)
            if merged is not None:
                return merged
            entries = decode_search(parse_json(content, path))
        except UpstreamError as exc:
            self._fallback(exc)
            return local
        if not entries:
            return local
        upstream = [(e.name, e.version, e.entry) for e in entries]
        body = Body(merge_search(split_search_body(local), upstream, all_versions=query.all))
        self._remember(key, content, body)
        return body

    async def proxied_categories_body(
        self, path: str, raw_query: str, *, allow_unknown: bool = True
    ) -> bytes:
        """The /categories answer with the upstream's counts (errors as for search)."""
        local = self.local.categories_body(raw_query, allow_unknown=allow_unknown)
        try:
            content = await self.upstream.fetch(path, raw_query)
            key = ("categories", local, content)
            merged = self._merged.get(key)
            if merged is not None:
                return merged
            categories = decode_categories(parse_json(content, path))
        except UpstreamError as exc:
            self._fallback(exc)
            return local
        if not categories:
            return local
        body = Body(render.categories_body(merge_categories(json.loads(local), categories)))
        self._remember(key, content, body)
        return body

    def _remember(self, key: tuple[Any, ...], content: bytes, body: Body) -> None:
        if len(content) <= MERGED_MAX_UPSTREAM_BYTES:
            self._merged.put(key, body)

    def _fallback(self, exc: UpstreamError) -> None:
        """Answer from the local packages after ``exc`` (re-raised when strict)."""
        if self.upstream.strict:
            raise exc
        if not isinstance(exc, UpstreamUnavailable) and not self.upstream.down:
            # Not an outage (the client logged that): an unusable answer, logged each time.
            log.warning(f"proxy mode: {exc.message}; answering from the local packages only")

    async def upstream_package(self, name: str, version: str) -> UpstreamPackage | None:
        """The upstream's version ``name`` ``version`` (None: the upstream has none, 404).
        Raises ``UpstreamError`` when the upstream fails (a 500 for the client)."""
        found = await self.upstream.package(name, version)
        if found is None:
            return None
        found_name, found_version, document = found
        return UpstreamPackage(found_name, str(found_version), Body(render.dumps(document)))

    def file_url(self, pkg: UpstreamPackage, kind: str, file: str = "") -> str:
        """Where the upstream serves a file of ``pkg``: ``kind`` is ``static`` (``file``),
        ``zip`` or ``signature`` (the artifact directory is the literal ``package``: the
        directory segment of ``/epr/...`` is ignored by registries)."""
        if kind == "static":
            return self.upstream.url(f"/package/{pkg.name}/{pkg.version}/{file}")
        suffix = ".zip.sig" if kind == "signature" else ".zip"
        return self.upstream.url(f"/epr/package/{pkg.name}-{pkg.version}{suffix}")


class ProxyRegistry:
    """Wraps ``inner`` so that every index it resolves is a :class:`ProxyIndex` over
    ``upstream`` (the wrappers are kept per local index, so they cost nothing per request)."""

    def __init__(self, inner: LocalRegistry, upstream: Upstream) -> None:
        self.inner = inner
        self.upstream = upstream
        self._wrapped: OrderedDict[int, tuple[Any, ProxyIndex]] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, prefix: str | None) -> ProxyIndex | None:
        local = self.inner.resolve(prefix)
        if local is None:
            return None
        key = id(local)
        with self._lock:
            held = self._wrapped.get(key)
            if held is not None and held[0] is local:
                self._wrapped.move_to_end(key)
                return held[1]
            wrapped = ProxyIndex(local, self.upstream)
            self._wrapped[key] = (local, wrapped)
            while len(self._wrapped) > WRAPPED_INDEXES:
                self._wrapped.popitem(last=False)
            return wrapped
