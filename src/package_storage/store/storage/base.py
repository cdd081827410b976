"""Storage protocols: a content-addressed :class:`BlobStore` and a SQL :class:`Catalog`.

Backends: ``localfs.LocalBlobStore`` + ``sqlite.SQLiteCatalog`` (embedded default, one directory);
later S3 + PostgreSQL. ``tests/contract/`` runs one suite against every backend, so everything a
caller may rely on is written down here.

Blob store
==========

Bytes keyed by their sha256 (64 lowercase hex digits). ``put`` is atomic (temp file + fsync +
rename on local disks; single PUT on object stores) and idempotent. A crash during ``put``
leaves at most an invisible temporary object: ``exists``/``iter_digests`` never show partial
data. Blobs are written *before* the catalog transaction that references them, so a crash
between the two leaves an unreferenced blob (garbage, never an inconsistency).

Catalog
=======

All metadata lives in the catalog: the stage configuration, artifacts, stage entries, revisions,
tags and events. Every change goes through a transaction::

    with catalog.transaction() as tx:          # takes the store-wide write lock
        graph = tx.stages()
        graph.check_publish("snapshot")
        tx.add_artifact(ArtifactRecord(digest, size, "apache", "1.2.3"))
        previous = tx.put_entry("snapshot", "apache", "1.2.3", digest, actor="ci")
        tx.record_event("publish", actor="ci", stage="snapshot", name="apache", version="1.2.3")
        for dist in graph.affected_distributions("snapshot"):
            tx.new_revision(dist)
    # committed here; an exception inside the block rolls everything back

Rules of a transaction:

* Writers are serialised across processes by a write lock taken when the transaction starts
  (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a row lock on the catalog state row). Reads inside the
  transaction therefore see the latest committed state and no update is lost.
* An exception inside the ``with`` block rolls back everything; so does a crash (kill -9).
* Each writing transaction has one change sequence number ``tx.seq`` and one time ``tx.time``;
  ``change_counter()`` is the sequence of the last committed writing transaction, so a server
  polls that one cheap number to learn that something changed.
* Change entries first, then make revisions: ``put_entry``/``delete_entry`` after a
  ``new_revision`` in the same transaction raise ``StorageError`` (a revision is the state at
  the end of its transaction).

Revisions: why they are cheap
-----------------------------

Copying 10,000 rows per distribution for every change would make a publish O(store size).
Instead stage entries are kept as a *temporal table*: each row is valid from the change sequence
that added it (``added_seq``) until the one that removed or replaced it (``removed_seq``, NULL
while live); rows are never rewritten otherwise. A revision stores only the change sequence it
was taken at and the stages it resolves (most stable first), so making one is a single-row
insert, and its entries are reconstructed on read::

    entries(rev) = for each stage in rev.stages: rows with added_seq <= rev.seq < removed_seq
                   (first stage holding a name+version wins)

Because the history rows a revision reads never change, a revision is immutable by
construction, and old revisions stay servable by number.

The revision ``digest`` is a content digest of the served set of (name, version, artifact
digest): ``revision_digest`` of a multiset hash (sum modulo 2**256 of the sha256 of each entry).
It depends only on the set (hence equals a digest over the sorted list, whatever the order it
is computed in) and can be updated incrementally: a new revision adds/subtracts the hashes of
the few name+versions that changed since the distribution's previous revision, found through
indexes on ``(stage, added_seq)`` and ``(stage, removed_seq)``. :func:`content_digest` computes
the same value from scratch (used by ``check`` and by tests).

Times are timezone-aware UTC ``datetime`` objects; :func:`format_time` renders them for JSON.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from package_storage.errors import InvalidInputError, NotFoundError
from package_storage.store.stages import StageGraph

JSONObject = dict[str, Any]

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_MOD = 1 << 256


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is 64 lowercase hex digits, else raise InvalidInputError."""
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise InvalidInputError(f"digest {digest!r} is not a sha256 (64 lowercase hex digits)")
    return digest


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``, e.g. ``2024-05-06T07:08:09.123Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """The zip of one package version, stored once in the blob store under ``digest``.

    ``manifest`` is a small JSON summary of the manifest (title, type, ...), not the package.
    ``created`` is set by the catalog (ignored on ``add_artifact``).
    """

    digest: str
    size: int
    name: str
    version: str
    signature_digest: str | None = None
    manifest: JSONObject = field(default_factory=dict)
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class StageEntry:
    """``name version`` is in ``stage`` with the artifact ``artifact`` (a blob digest)."""

    stage: str
    name: str
    version: str
    artifact: str
    added_at: datetime
    added_by: str
    yanked: bool = False


@dataclass(frozen=True, slots=True, order=True)
class RevisionEntry:
    """One package version served by a revision, and the stage its copy comes from;
    ``yanked``: hidden from search and categories, still downloadable."""

    name: str
    version: str
    artifact: str
    stage: str
    yanked: bool = False


@dataclass(frozen=True, slots=True)
class Revision:
    """An immutable, numbered state of a distribution.

    ``seq`` is the change sequence the revision was taken at and ``stages`` the stages it
    resolves, most stable first; ``count`` is the number of entries it serves. ``current`` and
    ``tags`` are filled in on read (they are not part of the immutable record).
    """

    distribution: str
    number: int
    digest: str
    created: datetime
    server_version: str
    seq: int
    stages: tuple[str, ...]
    count: int
    current: bool = False
    tags: tuple[str, ...] = ()
    commit: str | None = None  # the git commit a history import made this revision from
    # Filled in by StoreService.revisions: the first event recorded by the transaction that
    # made the revision (its id and title; "(+N more)" when it recorded several).
    event: int | None = None
    event_title: str = ""

    def as_json(self) -> JSONObject:
        """The revisions JSON object: revision, digest, created, current, tags (and commit,
        for a revision made from a git commit)."""
        data: JSONObject = {
            "revision": self.number,
            "digest": self.digest,
            "created": format_time(self.created),
            "current": self.current,
            "tags": list(self.tags),
        }
        if self.commit is not None:
            data["commit"] = self.commit
        return data


@dataclass(frozen=True, slots=True)
class Tag:
    """A permanent name for one revision of a distribution (``production@8.12.0``)."""

    distribution: str
    tag: str
    revision: int
    created: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded change: who, when, what, in which stage, why."""

    id: int
    time: datetime
    actor: str
    action: str
    stage: str | None
    name: str | None
    version: str | None
    reason: str | None
    detail: JSONObject


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A management API token as stored: never the secret, only its hash (``store/tokens.py``).

    ``id`` is the public part of the secret (the lookup key); ``scopes`` are scope strings
    (``read``, ``publish:snapshot``, ...). A revoked token keeps its row (the audit history
    names it); a new token may take the name of a revoked one.
    """

    id: str
    name: str
    secret_hash: str
    scopes: tuple[str, ...]
    created: datetime
    created_by: str
    expires: datetime | None = None
    revoked: datetime | None = None
    revoked_by: str | None = None


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to list; every field set narrows the result. Ordered by id."""

    stage: str | None = None
    name: str | None = None
    version: str | None = None
    action: str | None = None
    actor: str | None = None
    since: datetime | None = None  # time >= since
    until: datetime | None = None  # time < until
    after_id: int | None = None  # id > after_id (paging)
    limit: int | None = None
    newest_first: bool = False


# --- revision digests ------------------------------------------------------------------------


def entry_hash(name: str, version: str, artifact: str) -> int:
    """The 256-bit hash of one served entry (its contribution to the multiset hash)."""
    data = f"{name}\0{version}\0{artifact}".encode()
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def accumulate(entries: Iterable[tuple[str, str, str]], acc: int = 0) -> tuple[int, int]:
    """(multiset hash, count) of ``(name, version, artifact)`` triples added to ``acc``."""
    count = 0
    for name, version, artifact in entries:
        acc = (acc + entry_hash(name, version, artifact)) % _MOD
        count += 1
    return acc, count


def revision_digest(acc: int, count: int) -> str:
    """The revision digest (sha256 hex) of a multiset hash and entry count."""
    data = f"package-storage revision v1\n{count}\n{acc:064x}\n".encode()
    return hashlib.sha256(data).hexdigest()


def content_digest(entries: Iterable[tuple[str, str, str]]) -> str:
    """Digest of a set of ``(name, version, artifact)``, independent of order, from scratch."""
    acc, count = accumulate(set(entries))
    return revision_digest(acc, count)


# --- protocols -------------------------------------------------------------------------------


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed bytes (sha256)."""

    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256 hex. Atomic and idempotent."""
        ...

    def put_file(self, path: Path) -> tuple[str, int]:
        """Store a file's bytes, streaming (no full read into memory); return (digest, size)."""
        ...

    def get(self, digest: str) -> bytes:
        """The bytes of ``digest``; NotFoundError when absent."""
        ...

    def open(self, digest: str) -> BinaryIO:
        """A readable binary stream of ``digest`` (caller closes); NotFoundError when absent."""
        ...

    def path_for(self, digest: str) -> Path | None:
        """A local file holding ``digest`` (for sendfile), or None (absent or not local)."""
        ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> bool:
        """Remove ``digest``; True when it existed. Idempotent."""
        ...

    def iter_digests(self) -> Iterator[str]:
        """Every complete blob (never a partial or temporary one), in no particular order."""
        ...

    def verify(self, digest: str) -> bool:
        """True when ``digest`` exists and its bytes hash to ``digest``."""
        ...


def verify_by_reading(blobs: BlobStore, digest: str) -> bool:
    """``BlobStore.verify`` for any store: read the blob and compare its sha256 (False when absent)."""
    hasher = hashlib.sha256()
    try:
        with blobs.open(digest) as fh:
            while chunk := fh.read(1 << 20):
                hasher.update(chunk)
    except NotFoundError:
        return False
    return hasher.hexdigest() == digest


class CatalogReader(Protocol):
    """Read methods, available on the catalog (each call is one consistent read) and on a
    transaction (reading the transaction's own state)."""

    def stages(self) -> StageGraph:
        """The stage configuration stored in the catalog (defaults on a fresh store)."""
        ...

    def get_artifact(self, digest: str) -> ArtifactRecord | None: ...

    def referenced_blobs(self) -> set[str]:
        """Every blob digest the catalog references (artifacts and signatures)."""
        ...

    def get_entry(self, stage: str, name: str, version: str) -> StageEntry | None:
        """The live entry of ``name version`` in ``stage``, or None."""
        ...

    def entries(self, stage: str, name: str | None = None) -> list[StageEntry]:
        """Live entries of ``stage`` (optionally of one package), sorted by name, version."""
        ...

    def find_entries(self, name: str, version: str | None = None) -> list[StageEntry]:
        """Live entries of ``name`` (and ``version``) in every stage."""
        ...

    def distributions(self) -> dict[str, int | None]:
        """Distributions that have revisions, with their current revision number."""
        ...

    def current_revision(self, distribution: str) -> Revision | None:
        """The revision ``distribution`` serves by default, or None before its first one."""
        ...

    def revision(self, distribution: str, number: int) -> Revision:
        """Revision ``number`` of ``distribution``; NotFoundError when absent."""
        ...

    def revision_entries(self, distribution: str, number: int) -> list[RevisionEntry]:
        """What revision ``number`` serves, sorted by (name, version); NotFoundError when absent."""
        ...

    def revisions(self, distribution: str) -> list[Revision]:
        """Every revision of ``distribution``, oldest first (with current flag and tags)."""
        ...

    def revisions_by_commit(self, distribution: str, prefix: str) -> list[Revision]:
        """Revisions of ``distribution`` made from a git commit whose id starts with
        ``prefix`` (lowercase hex; an empty prefix: every revision with a commit), oldest
        first."""
        ...

    def tag(self, distribution: str, tag: str) -> Tag:
        """NotFoundError when ``distribution`` has no such tag."""
        ...

    def tags(self, distribution: str | None = None) -> list[Tag]:
        """Tags (of one distribution or all), sorted by distribution then creation."""
        ...

    def events(self, query: EventFilter | None = None) -> list[Event]:
        """Recorded events matching ``query``, by id (oldest first unless newest_first)."""
        ...

    def change_counter(self) -> int:
        """Sequence of the last committed change (0 on a fresh store). Cheap: poll it."""
        ...

    def tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones included, by creation time."""
        ...

    def token(self, token_id: str) -> TokenRecord | None:
        """The token with public id ``token_id``, or None."""
        ...

    def settings(self) -> dict[str, str]:
        """The store's settings (key -> value; e.g. ``blobs``: where its blobs live)."""
        ...

    def last_change(self) -> datetime | None:
        """Time of the last committed change, or None on a fresh store."""
        ...


class Transaction(CatalogReader, Protocol):
    """One writing transaction (see the module docstring). Obtain with ``catalog.transaction()``."""

    @property
    def seq(self) -> int:
        """The change sequence number this transaction commits as."""
        ...

    @property
    def time(self) -> datetime:
        """The transaction's timestamp, used for every record it writes."""
        ...

    def set_stages(self, graph: StageGraph) -> None:
        """Replace the stage configuration. ConflictError when a dropped stage still has entries."""
        ...

    def add_artifact(self, artifact: ArtifactRecord) -> ArtifactRecord:
        """Record an artifact (idempotent: an existing record with that digest is returned
        unchanged, except that a missing signature digest is filled in)."""
        ...

    def put_entry(
        self, stage: str, name: str, version: str, artifact: str, *, actor: str
    ) -> StageEntry | None:
        """Make ``artifact`` the live entry of ``name version`` in ``stage``.

        Returns the entry it replaced (None when there was none). Pure storage: policies are the
        caller's business. NotFoundError for an unknown stage or an unrecorded artifact.
        """
        ...

    def delete_entry(self, stage: str, name: str, version: str) -> StageEntry:
        """Remove the live entry; returns it. NotFoundError when there is none."""
        ...

    def set_yanked(self, stage: str, name: str, version: str, yanked: bool) -> StageEntry:
        """Mark the live entry yanked (or not): its row ends and a copy with the flag starts
        at this change, so earlier revisions keep what they showed. NotFoundError when there
        is no live entry; returns the new entry (unchanged when the flag already holds)."""
        ...

    def advance(self) -> int:
        """Start the next change inside this transaction (a history import records many
        states in one transaction): later writes get the next change sequence, revisions
        made before keep theirs. Returns the new sequence."""
        ...

    def new_revision(
        self,
        distribution: str,
        stages: Sequence[str] | None = None,
        *,
        server_version: str | None = None,
        make_current: bool = True,
        commit: str | None = None,
    ) -> Revision:
        """A new revision of ``distribution`` holding the state at the end of this change.

        ``stages`` (most stable first) defaults to ``stages().resolution_order(distribution)``;
        ``server_version`` to the running package version. The revision becomes current unless
        ``make_current`` is False. ``commit``: the git commit it was made from (history import).
        """
        ...

    def set_current(self, distribution: str, number: int) -> Revision:
        """Point ``distribution`` at revision ``number`` (rollback). NotFoundError if absent."""
        ...

    def add_tag(self, distribution: str, tag: str, number: int, *, actor: str) -> Tag:
        """Name revision ``number`` permanently. ConflictError when the tag exists (tags never
        move); NotFoundError when the revision does not exist."""
        ...

    def add_token(self, token: TokenRecord) -> TokenRecord:
        """Record a new token. ConflictError when an unrevoked token has its name."""
        ...

    def revoke_token(self, token_id: str, *, actor: str) -> TokenRecord:
        """Mark the token revoked at this transaction's time (idempotent: a revoked token is
        returned unchanged). NotFoundError when there is no such token."""
        ...

    def set_setting(self, key: str, value: str) -> None:
        """Set the store setting ``key`` to ``value``."""
        ...

    def record_event(
        self,
        action: str,
        *,
        actor: str,
        stage: str | None = None,
        name: str | None = None,
        version: str | None = None,
        reason: str | None = None,
        detail: JSONObject | None = None,
        time: datetime | None = None,
    ) -> Event:
        """Record an event at ``time`` (default: the transaction's time; a history import
        gives the commit's)."""
        ...


class Catalog(CatalogReader, Protocol):
    """The SQL catalog. Safe to share between threads of one process; open one per process."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A writing transaction holding the store-wide write lock until it ends."""
        ...

    def check(self, *, deep: bool = False) -> list[str]:
        """Consistency problems (empty when consistent): database integrity, dangling
        references, current pointers, and revision digests (current revisions; all with
        ``deep``)."""
        ...

    def close(self) -> None: ...


class ChangeNotifier(Protocol):
    """Wakes a reader up when the catalog may have changed (a hint, never the change itself:
    the reader then reads ``change_counter()`` to learn whether and what changed).

    SQLite: file-change events on the catalog's database and write-ahead log
    (:mod:`~package_storage.store.storage.filewatch`). PostgreSQL can plug in here with
    ``LISTEN``: a writing transaction runs ``NOTIFY`` before it commits and a listening
    connection's notification ends :meth:`wait`. A notifier may miss or merge events (a full
    event queue, a dropped connection), so readers keep a slow poll as the fallback.
    """

    def wait(self, timeout: float) -> bool:
        """Block until a change may have happened (True) or ``timeout`` seconds passed
        (False). Returns at once with True when a change arrived since the last call."""
        ...

    def active(self) -> bool:
        """False once notifications stopped (an error, :meth:`close`): poll instead."""
        ...

    def close(self) -> None:
        """Stop watching; a blocked :meth:`wait` returns (True) soon after."""
        ...


@runtime_checkable
class NotifyingCatalog(Protocol):
    """A catalog that can tell a reader about changes (see :class:`ChangeNotifier`)."""

    def change_notifier(self) -> ChangeNotifier | None:
        """A new notifier for this catalog (the caller closes it), or None when this
        catalog or platform cannot notify (the reader then polls)."""
        ...
