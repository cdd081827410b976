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
each sorted by name and version, with ``signature_path`` when the artifact has a signature,
deprecation notices propagated per source.

Packages come from their *derived documents* (``packages/derived.py``; ``derived=``, a
:class:`~package_storage.packages.doccache.DocCache`, the store's ``DIR/derived``), written
when the version was published or imported: reading a store opens no zip (the package's tree
is a :class:`~package_storage.packages.derived.LazyTree`, opened on the first file asked for),
and each package keeps its derived document's bytes as its documents, decoded only to render
an answer (a document body is then cached per package, in one cache every index built here
shares, so a switch does not render the unchanged ones again). Distributions that serve a
stage alike (production's entries in production, staging and snapshot) share that stage's
state, built once.
An artifact without one (stored by an older version, or by a bypass of the service) is read
from its zip once (``read_package(ZipTree, validate=False)``: it was validated at publish) and
its derived document stored. The catalog records of the artifacts to read are fetched in one
query where the catalog offers ``get_artifacts``.

Switching is cheap because the work follows the change, not the store: a package is
identified by its artifact digest and parsed packages are reused from the indexes already
built (current and recently used tag/revision indexes) and a small LRU; when the catalog offers
``revision_changes`` (what differs between two revisions of a distribution) the new revision
is the previous one with that difference applied (per stage, sorted lists patched by bisection;
deprecations propagated again for the changed names only; :meth:`RegistryIndex.updated`), and
the previous index's most recent /search and /categories answers are patched for the changed
names (:meth:`RegistryIndex.warm_from`) before one reference assignment swaps the new index in:
a request uses the index it resolved from start to end, so no request sees half of a revision.
A switch the difference cannot describe (other stages, a rollback, more than 2,000 changed
name+versions, a late signature among the reused artifacts) rebuilds the index whole.

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

import bisect
import dataclasses
import functools
import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from package_storage.errors import NotFoundError, PackageStorageError
from package_storage.packages.derived import LazyTree, dump_package, load_package
from package_storage.packages.doccache import DocCache
from package_storage.packages.manifest import propagate_deprecations, read_package, with_signature
from package_storage.packages.model import DocumentPair, JSONObject, Package
from package_storage.packages.trees import ZipTree
from package_storage.registry.http.app import ROUTE_HEADS
from package_storage.registry.index import (
    DEFAULT_DOCUMENT_CACHE_BYTES,
    DEFAULT_DOCUMENT_CACHE_ENTRIES,
    BodyCache,
    FetchFile,
    RedirectFile,
    RegistryIndex,
    StoredFile,
)
from package_storage.store.storage.base import (
    ArtifactRecord,
    BlobStore,
    CatalogReader,
    ChangeNotifier,
    EventFilter,
    NotifyingCatalog,
    Revision,
    RevisionEntry,
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

    def file_etag(self, pkg: Package, what: str) -> str | None:
        """Strong entity tags from the blob digests: the zip's and the signature's own, a
        file in the package that of its zip and its path (artifacts never change)."""
        loaded = self._digests.get(pkg)
        if loaded is None:
            return None
        if what == ".zip":
            return f'"{loaded.artifact}"'
        if what == ".sig":
            return None if loaded.signature is None else f'"{loaded.signature}"'
        path = hashlib.blake2b(what.encode("utf-8", "surrogateescape"), digest_size=8)
        return f'"{loaded.artifact[:32]}-{path.hexdigest()}"'


@dataclass(frozen=True, slots=True)
class StageState:
    """The packages one stage contributes to a built revision, sorted by (name, version):
    ``keys``, the parsed artifacts with their yanked flag (``items``) and the packages as
    served (``packages``: deprecation notices propagated, yanked ones marked), all parallel."""

    keys: tuple[tuple[str, str], ...]
    items: tuple[tuple[LoadedArtifact, bool], ...]
    packages: tuple[Package, ...]


@dataclass(frozen=True, slots=True)
class BuiltRevision:
    """A revision with its index. ``loaded`` maps artifact digest -> parsed artifact (the
    reuse table for later builds); ``build_seconds`` is how long the build took (of which
    ``warm_seconds`` rendering the previous index's recent queries); ``incremental``: built by
    applying the catalog's difference to the previous revision. ``stages``, ``owners``,
    ``yanked`` and ``refs`` (artifact digest -> entries using it) are what the next
    incremental build starts from."""

    revision: Revision
    index: RegistryIndex
    loaded: Mapping[str, LoadedArtifact]
    parsed: int
    build_seconds: float
    stages: Mapping[str, StageState] = dataclasses.field(default_factory=dict)
    owners: Mapping[Package, LoadedArtifact] = dataclasses.field(default_factory=dict)
    yanked: frozenset[Package] = frozenset()
    refs: Mapping[str, int] = dataclasses.field(default_factory=dict)
    incremental: bool = False
    warm_seconds: float = 0.0


SwapListener = Callable[[str, BuiltRevision], None]
"""Called after a distribution's current index was swapped: ``(distribution, built)``."""


def with_yanked(pkg: Package) -> Package:
    """``pkg`` whose package document says ``"yanked": true`` (a new object: parsed packages
    are shared between revisions, and the version may be unyanked later)."""
    return dataclasses.replace(pkg, documents=pkg.documents.edited(_mark_yanked))


def _mark_yanked(document: JSONObject, entry: JSONObject) -> DocumentPair:
    return {**document, "yanked": True}, entry


def _served(items: Sequence[tuple[LoadedArtifact, bool]]) -> list[Package]:
    """The packages of ``items`` (one stage, or one name of it) as served: deprecation
    notices propagated per name, yanked versions marked."""
    packages = propagate_deprecations([item.package for item, _ in items])
    return [
        with_yanked(pkg) if is_yanked else pkg
        for (_, is_yanked), pkg in zip(items, packages, strict=True)
    ]


class _TreeOpener:
    """Opens the zip tree of artifact ``digest`` for a :class:`LazyTree` (one small object per
    served version, where a ``functools.partial`` of the bound method takes four)."""

    __slots__ = ("digest", "location", "registry")

    def __init__(self, registry: StoreRegistry, digest: str, location: str) -> None:
        self.registry = registry
        self.digest = digest
        self.location = location

    def __call__(self) -> ZipTree:
        return self.registry._open_tree(self.digest, self.location)


def _key_of(entry: RevisionEntry, item: LoadedArtifact) -> tuple[str, str]:
    """(name, version) of ``entry`` made of the package's own strings when they are equal:
    the catalog's rows give fresh strings per revision, which a store of 12,000 versions
    served in three distributions would otherwise hold three times (~9 MB)."""
    pkg = item.package
    name = pkg.name if pkg.name == entry.name else entry.name
    version = pkg.version.original
    return (name, version if version == entry.version else entry.version)


def _same_state(
    state: StageState, items: Sequence[tuple[tuple[str, str], LoadedArtifact, bool]]
) -> bool:
    """True when ``state`` holds exactly ``items`` (keys, parsed artifacts and yanked flags)."""
    if len(state.keys) != len(items):
        return False
    for (key, item, is_yanked), old_key, (old_item, old_yanked) in zip(
        items, state.keys, state.items, strict=True
    ):
        if item is not old_item or is_yanked != old_yanked or key != old_key:
            return False
    return True


def _name_slice(keys: Sequence[tuple[str, str]], name: str) -> tuple[int, int]:
    """The positions of ``name``'s keys in sorted ``keys``."""
    lo = bisect.bisect_left(keys, (name,))
    hi = bisect.bisect_left(keys, (name, "\U0010ffff"), lo=lo)
    return lo, hi


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
        derived: DocCache | None = None,
        artifact_url: Callable[[str], str] | None = None,
    ) -> None:
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError(f"poll interval must be positive, got {poll_interval}")
        self.catalog = catalog
        self.blobs = blobs
        self.derived = derived
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
        # Package-document bodies of every index built here (keyed by package: the
        # distributions and revisions share most packages, a switch keeps them rendered).
        self._documents = BodyCache(DEFAULT_DOCUMENT_CACHE_ENTRIES, DEFAULT_DOCUMENT_CACHE_BYTES)
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

    def _cached(
        self, digest: str, tables: list[Mapping[str, LoadedArtifact]]
    ) -> LoadedArtifact | None:
        """The parsed artifact ``digest`` from an index already built or the LRU, or None."""
        for table in tables:
            found = table.get(digest)
            if found is not None and self._usable(found):
                return found
        with self._lookup_lock:
            found = self._recent.get(digest)
            if found is not None:
                self._recent.move_to_end(digest)
        return found if found is not None and self._usable(found) else None

    def _records(self, digests: list[str]) -> dict[str, ArtifactRecord]:
        """The catalog records of ``digests``, in one query when the catalog can
        (``get_artifacts``), else one by one."""
        bulk = getattr(self.catalog, "get_artifacts", None)
        if callable(bulk) and len(digests) > 1:
            found: dict[str, ArtifactRecord] = bulk(digests)
            return found
        records: dict[str, ArtifactRecord] = {}
        for digest in digests:
            record = self.catalog.get_artifact(digest)
            if record is not None:
                records[digest] = record
        return records

    def _open_tree(self, digest: str, location: str) -> ZipTree:
        path = self.blobs.path_for(digest)
        if path is not None:  # reopened from the blob store if a cache evicts the file
            return ZipTree.open(path, reopen=functools.partial(self.blobs.path_for, digest))
        return ZipTree.from_bytes(self.blobs.get(digest), location)

    def _read(self, digest: str, record: ArtifactRecord) -> tuple[LoadedArtifact, bool]:
        """The artifact ``digest`` read: from its derived document when there is one (the zip
        is opened only when a file of it is asked for), else from the zip, storing the derived
        document for the next time. The bool: the zip was parsed now."""
        location = f"{record.name}-{record.version}.zip ({digest[:12]})"
        pkg: Package | None = None
        parsed = False
        docs = self.derived
        if docs is not None:
            data = docs.get(digest)
            if data is not None:
                tree = LazyTree("zip", location, _TreeOpener(self, digest, location))
                try:
                    pkg = load_package(data, tree)
                except (ValueError, KeyError, TypeError, PackageStorageError) as exc:
                    log.warning(
                        "derived document of %s unreadable, reading the zip: %s", location, exc
                    )
                    pkg = None
        if pkg is None:
            pkg = read_package(self._open_tree(digest, location), validate=False)
            parsed = True
            if docs is not None:
                derived = dump_package(pkg)
                if derived is not None:
                    docs.put(digest, derived)
        if record.signature_digest:
            pkg = with_signature(pkg)
        loaded = LoadedArtifact(pkg, digest, record.signature_digest or None)
        if self._package_cache_size:
            with self._lookup_lock:
                self._recent[digest] = loaded
                while len(self._recent) > self._package_cache_size:
                    self._recent.popitem(last=False)
        return loaded, parsed

    def _load_all(
        self, digests: Iterable[str], tables: list[Mapping[str, LoadedArtifact]]
    ) -> tuple[dict[str, LoadedArtifact], int]:
        """Every artifact of ``digests`` (reused from ``tables`` and the LRU where possible,
        else read: the catalog records in one query) and how many zips were parsed."""
        loaded: dict[str, LoadedArtifact] = {}
        wanted: dict[str, None] = {}  # digests to read, in order
        for digest in digests:
            if digest in loaded or digest in wanted:
                continue
            found = self._cached(digest, tables)
            if found is None:
                wanted[digest] = None
            else:  # keyed by the parsed artifact's own string: one copy for all revisions
                loaded[found.artifact] = found
        parsed = 0
        if wanted:
            records = self._records(list(wanted))
            for digest in wanted:
                record = records.get(digest)
                if record is None:
                    raise NotFoundError(f"artifact {digest} is not recorded in the catalog")
                loaded[digest], fresh = self._read(digest, record)
                parsed += fresh
        return loaded, parsed

    def _build(
        self, revision: Revision, *, previous: BuiltRevision | None, warm: bool = False
    ) -> BuiltRevision:
        start = time.perf_counter()
        built = self._build_incremental(revision, previous) if previous is not None else None
        if built is None:
            built = self._build_full(revision, previous)
        warm_seconds = 0.0
        if warm and previous is not None:
            started = time.perf_counter()
            built.index.warm_from(previous.index, limit=WARM_QUERIES)
            warm_seconds = time.perf_counter() - started
        return dataclasses.replace(
            built, build_seconds=time.perf_counter() - start, warm_seconds=warm_seconds
        )

    def _build_full(self, revision: Revision, previous: BuiltRevision | None) -> BuiltRevision:
        entries = self.catalog.revision_entries(revision.distribution, revision.number)
        loaded, parsed = self._load_all((e.artifact for e in entries), self._tables(previous))
        by_stage: dict[str, list[tuple[tuple[str, str], LoadedArtifact, bool]]] = {
            s: [] for s in revision.stages
        }
        for entry in entries:
            item = loaded[entry.artifact]
            by_stage.setdefault(entry.stage, []).append((_key_of(entry, item), item, entry.yanked))
        states: dict[str, StageState] = {}
        owners: dict[Package, LoadedArtifact] = {}
        yanked: set[Package] = set()
        # A stage every distribution that sees it serves alike (production's entries in
        # production, staging and snapshot): the state another built revision holds for the
        # same entries is taken over (memory and work once, not once per distribution).
        known = [b.stages for b in (previous, *self._current.values()) if b is not None]
        for stage, items in by_stage.items():
            state = next(
                (st for st in (k.get(stage) for k in known) if st and _same_state(st, items)),
                None,
            )
            if state is None:
                packages = _served([(item, is_yanked) for _, item, is_yanked in items])
                state = StageState(
                    keys=tuple(k for k, _, _ in items),
                    items=tuple((item, is_yanked) for _, item, is_yanked in items),
                    packages=tuple(packages),
                )
            for (item, is_yanked), pkg in zip(state.items, state.packages, strict=True):
                owners[pkg] = item
                if is_yanked:
                    yanked.add(pkg)
            states[stage] = state
        index = RegistryIndex(
            [states[s].packages for s in by_stage],
            files=StoreFiles(self.blobs, owners, self.artifact_url),
            previous=previous.index if previous is not None else None,
            unlisted=yanked,
            documents=self._documents,
        )
        refs: dict[str, int] = {}
        for entry in entries:
            digest = loaded[entry.artifact].artifact
            refs[digest] = refs.get(digest, 0) + 1
        return BuiltRevision(
            revision=revision,
            index=index,
            loaded=loaded,
            parsed=parsed,
            build_seconds=0.0,
            stages=states,
            owners=owners,
            yanked=frozenset(yanked),
            refs=refs,
        )

    def _build_incremental(
        self, revision: Revision, previous: BuiltRevision
    ) -> BuiltRevision | None:
        """``revision`` built from ``previous`` (another revision of the same distribution) by
        applying the catalog's difference between the two; None when that is not possible
        (no difference from the catalog, other stages, a late signature among the reused
        artifacts): build it whole then."""
        diff = getattr(self.catalog, "revision_changes", None)
        old = previous.revision
        if (
            not callable(diff)
            or old.distribution != revision.distribution
            or old.stages != revision.stages
            or tuple(previous.stages) != revision.stages
            or any(
                not self._usable(previous.loaded.get(d))
                for d in self._signed_late
                if d in previous.loaded
            )
        ):
            return None
        changes: list[tuple[str, str, RevisionEntry | None]] | None = diff(
            revision.distribution, old.number, revision.number
        )
        if changes is None:
            return None
        tables = self._tables(previous)
        fresh_loaded, parsed = self._load_all(
            (e.artifact for _, _, e in changes if e is not None), tables
        )
        # Lists copied from the previous state on a stage's first change only.
        keys: dict[str, Sequence[tuple[str, str]]] = dict(
            (stage, state.keys) for stage, state in previous.stages.items()
        )
        items: dict[str, Sequence[tuple[LoadedArtifact, bool]]] = dict(
            (stage, state.items) for stage, state in previous.stages.items()
        )

        def editable(stage: str) -> tuple[list[tuple[str, str]], list[tuple[LoadedArtifact, bool]]]:
            stage_keys, stage_items = keys[stage], items[stage]
            if not isinstance(stage_keys, list) or not isinstance(stage_items, list):
                stage_keys, stage_items = keys[stage], items[stage] = (
                    list(stage_keys),
                    list(stage_items),
                )
            return stage_keys, stage_items

        touched: dict[str, set[str]] = {}
        refs = dict(previous.refs)
        loaded = dict(previous.loaded)
        for name, version, entry in changes:
            key = (name, version)
            for stage in revision.stages:  # out of the stage that served it
                i = bisect.bisect_left(keys[stage], key)
                if i < len(keys[stage]) and keys[stage][i] == key:
                    stage_keys, stage_items = editable(stage)
                    digest = stage_items[i][0].artifact
                    del stage_keys[i]
                    del stage_items[i]
                    touched.setdefault(stage, set()).add(name)
                    left = refs[digest] - 1
                    if left:
                        refs[digest] = left
                    else:
                        del refs[digest]
                        loaded.pop(digest, None)
                    break
            if entry is not None:  # into the stage that serves it now
                stage_keys, stage_items = editable(entry.stage)
                i = bisect.bisect_left(stage_keys, key)
                item = fresh_loaded[entry.artifact]
                stage_keys.insert(i, _key_of(entry, item))
                stage_items.insert(i, (item, entry.yanked))
                touched.setdefault(entry.stage, set()).add(name)
                refs[item.artifact] = refs.get(item.artifact, 0) + 1
                loaded[item.artifact] = item
        owners = dict(previous.owners)
        yanked = set(previous.yanked)
        states = dict(previous.stages)
        changed_names: set[str] = set()
        for stage, names in touched.items():
            old_state = previous.stages[stage]
            stage_keys, stage_items = editable(stage)
            packages = list(old_state.packages)
            # Old packages of the changed names leave; the served ones of those names come.
            for name in sorted(names, reverse=True):
                lo, hi = _name_slice(old_state.keys, name)
                for pkg in old_state.packages[lo:hi]:
                    owners.pop(pkg, None)
                    yanked.discard(pkg)
                del packages[lo:hi]
            # Indexes of ``packages`` now lag behind ``stage_keys``: insert name by name in
            # ascending order, each at its place in the new keys.
            for name in sorted(names):
                lo, hi = _name_slice(stage_keys, name)
                group = stage_items[lo:hi]
                served = _served(group)
                for (item, is_yanked), pkg in zip(group, served, strict=True):
                    owners[pkg] = item
                    if is_yanked:
                        yanked.add(pkg)
                packages[lo:lo] = served
            if len(packages) != len(stage_keys):  # pragma: no cover - a broken invariant
                return None
            states[stage] = StageState(tuple(stage_keys), tuple(stage_items), tuple(packages))
            changed_names |= names
        index = RegistryIndex.updated(
            previous.index,
            [states[s].packages for s in revision.stages],
            changed_names,
            files=StoreFiles(self.blobs, owners, self.artifact_url),
            unlisted=yanked,
        )
        return BuiltRevision(
            revision=revision,
            index=index,
            loaded=loaded,
            parsed=parsed,
            build_seconds=0.0,
            stages=states,
            owners=owners,
            yanked=frozenset(yanked),
            refs=refs,
            incremental=True,
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
