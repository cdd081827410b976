"""Serving a store: the read app's :class:`~package_storage.registry.http.app.Registry` over a catalog and
a blob store.

Prefixes (design §2): ``None`` (un-prefixed paths) is the current revision of the default
distribution; ``snapshot`` the current revision of ``snapshot``; ``production@8.12.0`` the
revision tagged ``8.12.0``; ``production@7`` revision 7 (tags are never all digits, so the two
cannot be confused); ``production@5df4ae7`` the revision a history import made from that git
commit (7-40 hex digits, after tags). A stage without any revision yet is served as an empty
distribution (200 and ``[]``). Anything else resolves to None (404 from the app). Distributions named like
a route head of the reference (``search``, ``package``, ``epr``, ...) are never asked for: the
app routes those segments itself.

Yanked versions (``package-storage yank``) stay in the revision: served by their exact version
(package document marked ``"yanked": true``, zip and signature downloadable) but left out of
``/search`` and ``/categories``, so a client choosing the latest version never picks one.

Index of a revision: one package source per stage in the revision's ``stages`` order (most
stable first, so on a clash the index's "earlier source wins" serves the more stable copy),
each package read from its artifact zip (``read_package(ZipTree, validate=False)``: it was
validated at publish) with ``signature_path`` when the artifact has a signature, deprecation
notices propagated per source.

Switching is cheap because parsed packages are reused: a package is identified by its artifact
digest, so the packages of a new revision are looked up in the indexes already built (current
and recently used tag/revision indexes) and in a small LRU of recently parsed ones; only new
artifacts are parsed. The new index takes over the search fragments of the shared packages and
pre-renders the old index's most recent queries, then one reference assignment swaps it in:
a request uses the index it resolved from start to end, so no request sees half of a revision.

Change detection: a watch thread (:meth:`StoreRegistry.start`) reads ``catalog.change_counter()``
when the catalog's :class:`~package_storage.store.storage.base.ChangeNotifier` wakes it (SQLite:
file-change events on the database and its write-ahead log, a few ms after the writer's
commit), again :data:`SETTLE_SECONDS` later (an event can arrive just before its commit is
visible), and in any case every ``poll_interval`` seconds (the fallback: default
:data:`DEFAULT_FALLBACK_INTERVAL` with notifications, :data:`DEFAULT_POLL_INTERVAL` without,
i.e. when ``notify=False``, the catalog cannot notify, or watching stopped with an error). When
the counter moved, the distributions whose current revision number changed are rebuilt (beside
the old index) and swapped, each as soon as it is ready. Tag and
revision indexes are immutable and built on demand, in the thread of the first request that asks
for one (that request waits for the build: ~0.1 s for a 10,000-version revision whose packages
are mostly cached, longer for an old revision whose artifacts must be parsed), then kept in a
small LRU.

The signature state of an artifact is read when the artifact is first parsed (it is part of the
cached package); a signature added later (a ``signature_added`` event, found when the poll sees
the change) makes that cached parse stale, and the next build reads the artifact again.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from package_storage.errors import NotFoundError, PackageStorageError
from package_storage.packages.manifest import propagate_deprecations, read_package, with_signature
from package_storage.packages.model import Package
from package_storage.packages.trees import ZipTree
from package_storage.registry.http.app import ROUTE_HEADS
from package_storage.registry.index import FetchFile, RedirectFile, RegistryIndex, StoredFile
from package_storage.store.storage.base import (
    BlobStore,
    CatalogReader,
    ChangeNotifier,
    EventFilter,
    NotifyingCatalog,
    Revision,
)
from package_storage.store.storage.blobcache import BlobCache
from package_storage.store.storage.localfs import LocalBlobStore

log = logging.getLogger("package_storage.store_registry")

DEFAULT_DISTRIBUTION = "production"
DEFAULT_POLL_INTERVAL = 0.1
"""Seconds between two reads of the change counter when the catalog cannot notify."""
DEFAULT_FALLBACK_INTERVAL = 5.0
"""Seconds between two reads of the change counter while notifications work (missed events)."""
SETTLE_SECONDS = 0.05
DEFAULT_REVISION_CACHE = 8
DEFAULT_PACKAGE_CACHE = 4096
WARM_QUERIES = 32
_MISSING_CACHE = 1024
_COMMIT_RE = re.compile(r"[0-9a-f]{7,40}")


@dataclass(frozen=True, slots=True)
class LoadedArtifact:
    """One parsed artifact: the package as read (signature applied, deprecation notices not
    yet propagated) and the blob digests behind it."""

    package: Package
    artifact: str
    signature: str | None


class StoreFiles:
    """:class:`~package_storage.registry.index.PackageFiles` of a built revision: zips and signatures
    are blobs: a local file when the blob store has one (a local folder, or a blob already in
    the replica cache), else a :class:`FetchFile` the server fetches off its event loop, or,
    with ``artifact_url`` (``serve --artifact-redirect``), a redirect to that URL."""

    def __init__(
        self,
        blobs: BlobStore,
        digests: Mapping[Package, LoadedArtifact],
        artifact_url: Callable[[str], str] | None = None,
    ) -> None:
        self._blobs = blobs
        self._digests = digests
        self._artifact_url = artifact_url
        self._local = isinstance(blobs, LocalBlobStore)

    def _blob(self, digest: str) -> StoredFile:
        if self._artifact_url is not None:
            return RedirectFile(self._artifact_url(digest))
        if self._local:
            path = self._blobs.path_for(digest)
            return path if path is not None else self._blobs.get(digest)
        if isinstance(self._blobs, BlobCache):
            hit = self._blobs.cached_path(digest)
            if hit is not None:
                return hit
        return FetchFile(functools.partial(self._fetch, digest))

    def _fetch(self, digest: str) -> Path | bytes:
        path = self._blobs.path_for(digest)
        return path if path is not None else self._blobs.get(digest)

    def zip_file(self, pkg: Package) -> StoredFile | None:
        loaded = self._digests.get(pkg)
        return None if loaded is None else self._blob(loaded.artifact)

    def signature_file(self, pkg: Package) -> StoredFile | None:
        loaded = self._digests.get(pkg)
        if loaded is None or loaded.signature is None:
            return None
        return self._blob(loaded.signature)


@dataclass(frozen=True, slots=True)
class BuiltRevision:
    """A revision with its index. ``loaded`` maps artifact digest -> parsed artifact (the
    reuse table for later builds); ``build_seconds`` is how long the build took."""

    revision: Revision
    index: RegistryIndex
    loaded: Mapping[str, LoadedArtifact]
    parsed: int
    build_seconds: float


SwapListener = Callable[[str, BuiltRevision], None]
"""Called after a distribution's current index was swapped: ``(distribution, built)``."""


def with_yanked(pkg: Package) -> Package:
    """``pkg`` whose package document says ``"yanked": true`` (a new object: parsed packages
    are shared between revisions, and the version may be unyanked later)."""
    return dataclasses.replace(pkg, document={**pkg.document, "yanked": True})


def parse_prefix(prefix: str) -> tuple[str, str | None]:
    """``dist`` -> (dist, None); ``dist@ref`` -> (dist, ref). Raises ValueError when malformed."""
    distribution, at, ref = prefix.partition("@")
    if not distribution or (at and not ref) or "@" in ref:
        raise ValueError(f"malformed distribution prefix {prefix!r}")
    return distribution, (ref if at else None)


class StoreRegistry:
    """The read app's registry over a store (see the module docstring).

    Construction builds the current index of every distribution (blocking: a server is ready
    when this returns). :meth:`start` runs the poll thread; :meth:`refresh` is one poll step
    (tests and callers without a thread call it directly). Safe to use from several threads.
    """

    def __init__(
        self,
        catalog: CatalogReader,
        blobs: BlobStore,
        *,
        default_distribution: str = DEFAULT_DISTRIBUTION,
        poll_interval: float | None = None,
        notify: bool = True,
        revision_cache_size: int = DEFAULT_REVISION_CACHE,
        package_cache_size: int = DEFAULT_PACKAGE_CACHE,
        on_swap: Iterable[SwapListener] = (),
        artifact_url: Callable[[str], str] | None = None,
    ) -> None:
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError(f"poll interval must be positive, got {poll_interval}")
        self.catalog = catalog
        self.blobs = blobs
        # serve --artifact-redirect: blob digest -> pre-signed URL (zips and .sig answered 302)
        self.artifact_url = artifact_url
        self.default_distribution = default_distribution
        self._poll_interval = poll_interval
        self.notify = notify
        self._notifier: ChangeNotifier | None = None
        self._revision_cache_size = max(0, revision_cache_size)
        self._package_cache_size = max(0, package_cache_size)
        self._listeners = list(on_swap)
        # Swapped as a whole (one reference assignment); never mutated in place.
        self._current: Mapping[str, BuiltRevision] = {}
        self._revisions: OrderedDict[tuple[str, int], BuiltRevision] = OrderedDict()
        self._tags: dict[tuple[str, str], int] = {}
        self._missing: OrderedDict[str, None] = OrderedDict()
        self._recent: OrderedDict[str, LoadedArtifact] = OrderedDict()
        self._seen_counter: int | None = None
        self._failed: set[tuple[str, int]] = set()
        self._unreachable: set[str] = set()
        # Artifacts that received their signature after they were first published: a cached
        # parse without signature_path is stale for them (found through the events).
        self._signed_late: set[str] = set()
        # Stages of the store: a stage without a revision yet is served as an empty
        # distribution (200 and ``[]``), not as an unknown one (404); re-read at each poll.
        self._stage_names: frozenset[str] = frozenset()
        self._empty = RegistryIndex([])
        newest = self.catalog.events(EventFilter(newest_first=True, limit=1))
        self._event_cursor = newest[0].id if newest else 0
        # One refresh at a time (the poll thread and direct callers). Tag/revision builds and
        # resolving never take it; the small shared tables are guarded by ``_lookup_lock``.
        self._build_lock = threading.RLock()
        self._lookup_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    # --- Registry ------------------------------------------------------------------------------

    def resolve(self, prefix: str | None) -> RegistryIndex | None:
        if prefix is None:
            return self._current_index(self.default_distribution)
        try:
            distribution, ref = parse_prefix(prefix)
        except ValueError:
            return None
        if ref is None:
            return self._current_index(distribution)
        found = self.revision_index(distribution, ref)
        return None if found is None else found.index

    def _current_index(self, distribution: str) -> RegistryIndex | None:
        """The current index of ``distribution``; an empty index for a stage that has no
        revision yet (a fresh store, a stage nothing was promoted to); None when unknown."""
        built = self._current.get(distribution)
        if built is not None:
            return built.index
        return self._empty if distribution in self._stage_names else None

    # --- public helpers ------------------------------------------------------------------------

    @property
    def current(self) -> Mapping[str, BuiltRevision]:
        """The current built revision per distribution (a snapshot)."""
        return self._current

    def add_listener(self, listener: SwapListener) -> None:
        """Call ``listener(distribution, built)`` after every swap of a current index."""
        self._listeners.append(listener)

    def current_revision(self, distribution: str) -> BuiltRevision | None:
        return self._current.get(distribution)

    def revision_index(self, distribution: str, ref: str) -> BuiltRevision | None:
        """The built revision ``ref`` (a tag or a revision number) of ``distribution``, built
        on demand and kept in a small LRU; None when there is no such revision."""
        number = self._revision_number(distribution, ref)
        if number is None:
            return None
        with self._lookup_lock:
            if f"{distribution}@{ref}" in self._missing:
                return None
        key = (distribution, number)
        current = self._current.get(distribution)
        if current is not None and current.revision.number == number:
            return current
        with self._lookup_lock:
            built = self._revisions.get(key)
            if built is not None:
                self._revisions.move_to_end(key)
                return built
        # Built in the calling thread without the refresh lock (a request never waits for a
        # poll's rebuild); two concurrent builds of one revision are harmless (same content).
        try:
            revision = self.catalog.revision(distribution, number)
        except NotFoundError:
            self._remember_missing(f"{distribution}@{ref}")
            return None
        built = self._build(revision, previous=current)
        with self._lookup_lock:
            if self._revision_cache_size:
                self._revisions[key] = built
                self._revisions.move_to_end(key)
                while len(self._revisions) > self._revision_cache_size:
                    self._revisions.popitem(last=False)
        return built

    def refresh(self) -> bool:
        """One poll step: when the change counter moved, rebuild every distribution whose
        current revision changed, each swapped in as soon as it is built (the default
        distribution first). Returns True when something was swapped. A failing build keeps
        the old index (logged once per revision) and is retried at the next poll."""
        counter = self.catalog.change_counter()
        if counter == self._seen_counter:
            return False
        changed: list[tuple[str, BuiltRevision]] = []
        with self._build_lock:
            self._note_late_signatures()
            self._stage_names = frozenset(self.catalog.stages().names)
            currents = self.catalog.distributions()
            complete = True
            order = sorted(currents, key=lambda d: d != self.default_distribution)
            for distribution in order:
                number = currents[distribution]
                if distribution in ROUTE_HEADS and distribution not in self._unreachable:
                    self._unreachable.add(distribution)
                    log.warning(
                        "distribution %s has the name of an API route: it is served without"
                        " prefix only (when it is the default distribution)",
                        distribution,
                    )
                built = self._current.get(distribution)
                if number is None or (built is not None and built.revision.number == number):
                    continue
                try:
                    fresh = self._build_current(distribution, number, built)
                except PackageStorageError as exc:
                    complete = False
                    if (distribution, number) not in self._failed:
                        self._failed.add((distribution, number))
                        log.error("cannot serve %s revision %s: %s", distribution, number, exc)
                    continue
                # The swap: one reference assignment of a new mapping.
                self._current = {**self._current, distribution: fresh}
                changed.append((distribution, fresh))
                self._notify(distribution, fresh)
            served = {d for d, n in currents.items() if n is not None}
            dropped = set(self._current) - served
            if dropped:
                self._current = {d: b for d, b in self._current.items() if d in served}
            with self._lookup_lock:
                self._missing.clear()  # a tag or revision may exist now
            if complete:
                self._seen_counter = counter
        return bool(changed or dropped)

    def _notify(self, distribution: str, built: BuiltRevision) -> None:
        log.info(
            "serving %s revision %d (%d packages, %d parsed, %.0f ms)",
            distribution,
            built.revision.number,
            built.index.package_count,
            built.parsed,
            built.build_seconds * 1000,
        )
        for listener in self._listeners:
            try:
                listener(distribution, built)
            except Exception as exc:  # a listener must not stop the swaps
                log.error("swap listener failed: %s", exc)

    # --- watch thread --------------------------------------------------------------------------

    @property
    def notified(self) -> bool:
        """True while the watch thread is woken by catalog notifications (not only polling)."""
        notifier = self._notifier
        return notifier is not None and notifier.active()

    @property
    def poll_interval(self) -> float:
        """Seconds between two fallback reads of the change counter (see the module docstring)."""
        if self._poll_interval is not None:
            return self._poll_interval
        return DEFAULT_FALLBACK_INTERVAL if self.notified else DEFAULT_POLL_INTERVAL

    def start(self) -> None:
        """Start the watch thread (idempotent): notifications when the catalog offers them and
        ``notify`` is on, polling as the fallback."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        if self.notify and self._notifier is None and isinstance(self.catalog, NotifyingCatalog):
            try:
                self._notifier = self.catalog.change_notifier()
            except Exception as exc:  # e.g. no inotify instance left: poll instead
                log.warning(f"no change notifications from the catalog, polling: {exc}")
        self._thread = threading.Thread(
            target=self._poll, name="package-storage-store-poll", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the watch thread and wait for it."""
        self._stop.set()
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            notifier.close()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None

    def __enter__(self) -> StoreRegistry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when woken early (a notification, or stop)."""
        notifier = self._notifier
        if notifier is not None and notifier.active():
            return notifier.wait(timeout)
        return self._stop.wait(timeout)

    def _poll(self) -> None:
        # A first check soon after start: a change made while the watch was being set up.
        settle = True
        while True:
            woke = self._wait(SETTLE_SECONDS if settle else self.poll_interval)
            if self._stop.is_set():
                return
            try:
                self.refresh()
            except Exception as exc:  # the catalog may be briefly unavailable; keep polling
                log.error("store poll failed: %s", exc)
            # After a notification, check once more shortly: the event may have come just
            # before its commit was visible to readers.
            settle = woke

    # --- building ------------------------------------------------------------------------------

    def _revision_number(self, distribution: str, ref: str) -> int | None:
        if ref.isascii() and ref.isdigit():
            return int(ref)
        key = (distribution, ref)
        number = self._tags.get(key)
        if number is not None:
            return number
        text = f"{distribution}@{ref}"
        with self._lookup_lock:
            if text in self._missing:
                return None
        try:
            number = self.catalog.tag(distribution, ref).revision
        except NotFoundError:
            number = self._commit_revision(distribution, ref)
            if number is None:
                self._remember_missing(text)
                return None
        self._tags[key] = number  # tags never move; a commit's revision never changes
        return number

    def _commit_revision(self, distribution: str, ref: str) -> int | None:
        """The (newest) revision made from git commit ``ref`` (7-40 hex digits, a prefix of
        the id); None when there is none or the prefix is ambiguous."""
        if not _COMMIT_RE.fullmatch(ref):
            return None
        found = self.catalog.revisions_by_commit(distribution, ref)
        if len({r.commit for r in found}) != 1:
            return None
        return found[-1].number

    def _remember_missing(self, text: str) -> None:
        with self._lookup_lock:
            self._missing[text] = None
            while len(self._missing) > _MISSING_CACHE:
                self._missing.popitem(last=False)

    def _build_current(
        self, distribution: str, number: int, previous: BuiltRevision | None
    ) -> BuiltRevision:
        with self._lookup_lock:
            cached = self._revisions.get((distribution, number))  # e.g. a rollback
        if cached is not None:
            return cached
        revision = self.catalog.revision(distribution, number)
        return self._build(revision, previous=previous, warm=True)

    def _tables(self, previous: BuiltRevision | None) -> list[Mapping[str, LoadedArtifact]]:
        tables: list[Mapping[str, LoadedArtifact]] = []
        if previous is not None:
            tables.append(previous.loaded)
        tables.extend(b.loaded for b in self._current.values() if b is not previous)
        with self._lookup_lock:
            tables.extend(b.loaded for b in self._revisions.values())
        return tables

    def _note_late_signatures(self) -> None:
        """Remember artifacts whose signature was added since the last poll."""
        for event in self.catalog.events(EventFilter(after_id=self._event_cursor)):
            self._event_cursor = event.id
            digest = event.detail.get("digest")
            if event.detail.get("signature_added") and isinstance(digest, str):
                self._signed_late.add(digest)

    def _usable(self, found: LoadedArtifact | None) -> bool:
        return found is not None and not (
            found.signature is None and found.artifact in self._signed_late
        )

    def _load(
        self, digest: str, tables: list[Mapping[str, LoadedArtifact]]
    ) -> tuple[LoadedArtifact, bool]:
        """The parsed artifact ``digest`` and whether it had to be parsed now."""
        for table in tables:
            found = table.get(digest)
            if found is not None and self._usable(found):
                return found, False
        with self._lookup_lock:
            found = self._recent.get(digest)
            if found is not None:
                self._recent.move_to_end(digest)
        if found is not None and self._usable(found):
            return found, False
        record = self.catalog.get_artifact(digest)
        if record is None:
            raise NotFoundError(f"artifact {digest} is not recorded in the catalog")
        path = self.blobs.path_for(digest)
        location = f"{record.name}-{record.version}.zip ({digest[:12]})"
        tree = (
            ZipTree.open(path, reopen=functools.partial(self.blobs.path_for, digest))
            if path is not None
            else ZipTree.from_bytes(self.blobs.get(digest), location)
        )
        pkg = read_package(tree, validate=False)
        if record.signature_digest:
            pkg = with_signature(pkg)
        loaded = LoadedArtifact(pkg, digest, record.signature_digest or None)
        if self._package_cache_size:
            with self._lookup_lock:
                self._recent[digest] = loaded
                while len(self._recent) > self._package_cache_size:
                    self._recent.popitem(last=False)
        return loaded, True

    def _build(
        self, revision: Revision, *, previous: BuiltRevision | None, warm: bool = False
    ) -> BuiltRevision:
        start = time.perf_counter()
        entries = self.catalog.revision_entries(revision.distribution, revision.number)
        tables = self._tables(previous)
        by_stage: dict[str, list[tuple[LoadedArtifact, bool]]] = {s: [] for s in revision.stages}
        loaded: dict[str, LoadedArtifact] = {}
        parsed = 0
        for entry in entries:
            item = loaded.get(entry.artifact)
            if item is None:
                item, fresh = self._load(entry.artifact, tables)
                parsed += fresh
                loaded[entry.artifact] = item
            by_stage.setdefault(entry.stage, []).append((item, entry.yanked))
        sources: list[list[Package]] = []
        owners: dict[Package, LoadedArtifact] = {}
        yanked: list[Package] = []
        for items in by_stage.values():
            packages = propagate_deprecations([item.package for item, _ in items])
            source: list[Package] = []
            for (item, is_yanked), pkg in zip(items, packages, strict=True):
                if is_yanked:
                    pkg = with_yanked(pkg)
                    yanked.append(pkg)
                owners[pkg] = item
                source.append(pkg)
            sources.append(source)
        index = RegistryIndex(
            sources,
            files=StoreFiles(self.blobs, owners, self.artifact_url),
            previous=previous.index if previous is not None else None,
            unlisted=yanked,
        )
        if warm and previous is not None:
            index.warm_from(previous.index, limit=WARM_QUERIES)
        return BuiltRevision(
            revision=revision,
            index=index,
            loaded=loaded,
            parsed=parsed,
            build_seconds=time.perf_counter() - start,
        )

    # --- introspection -------------------------------------------------------------------------

    def cached_revisions(self) -> Iterator[tuple[str, int]]:
        """Keys of the tag/revision indexes currently kept (least recently used first)."""
        with self._lookup_lock:
            return iter(list(self._revisions))


__all__ = [
    "DEFAULT_DISTRIBUTION",
    "BuiltRevision",
    "LoadedArtifact",
    "StoreFiles",
    "StoreRegistry",
    "SwapListener",
    "parse_prefix",
]
