"""Copy a whole store to another one, on any backends: :func:`copy_store`.

What is copied: every blob the catalog references (artifacts and signatures), then every row
of every catalog table (``store/storage/schema.py``: the stage configuration, artifacts, stage
entries with their whole temporal history, distributions, revisions, tags, events, tokens and
the keys kept in the catalog) and the change counter. Keys an older directory store keeps as
files (``DIR/keys``) go into the target's keyring (its catalog; a signing key without
passphrase is sealed with ``PACKAGE_STORAGE_KEY_PASSPHRASE``, or kept in the target's own
``DIR/keys`` for a directory target, or refused up front for a database target). Both catalogs share the table
definitions, so the copy is table by table, in batches, below the record API: ids, change
sequences, times and actors stay exactly as they were, and so do revision numbers and digests.

Order and resumability:

1. One consistent read of the source (a snapshot: SQLite's deferred transaction, PostgreSQL's
   ``REPEATABLE READ``) is held for the whole copy, so a writer working on the source meanwhile
   is not seen half-way.
2. Blobs first (streamed, several at once; a blob the target already holds is skipped), as
   every writer does: the target's catalog never references a blob it lacks.
3. Then the catalog rows, in one writing transaction of the target (its write lock held): the
   target's rows are replaced by the source's. An interruption rolls the whole catalog part
   back; a rerun skips the blobs already there and does it again.
4. Last, the check: every revision's digest in the target equals the source's, and the
   target's own check (current revisions' digests recomputed from its entries) is clean.

The target must be empty (no artifact, event, revision, tag or token: a fresh ``init``) or an
earlier copy of the same source (its newest event is the source's event with that id, and it
is not ahead of the source): a rerun refreshes such a copy. Anything else is refused with one
line, and nothing is changed.

Tables whose rows describe the target itself rather than the store's contents
(:data:`NOT_COPIED`: the schema version and the ``settings``, e.g. where its blobs live) are
left as they are.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import BigInteger, Engine, Integer, Table, func, inspect, select, text
from sqlalchemy.engine import Connection

from package_storage.errors import ConflictError, NotFoundError, SignatureError, StorageError
from package_storage.packages.signing import load_secret_key
from package_storage.store.keyring import StoreKeyring
from package_storage.store.storage import migrations
from package_storage.store.storage import schema as s
from package_storage.store.storage.base import BlobStore
from package_storage.store.storage.sqlite import SQLCatalog

# Rows that describe the catalog itself, not the store's contents. The change counter
# (``catalog_state``) is set, not copied row for row.
NOT_COPIED = frozenset({"schema_version", "catalog_state", "alembic_version", "settings"})

# Tables whose rows make a store "not empty" (a fresh ``init`` has only stages).
_CONTENT_TABLES = ("artifacts", "stage_entries", "revisions", "tags", "events", "tokens")

DEFAULT_BATCH = 1000
DEFAULT_THREADS = 4
_CHUNK = 1 << 20


class CopySide(Protocol):
    """One end of a copy: an opened store's SQL catalog and blob store."""

    @property
    def catalog(self) -> SQLCatalog: ...

    @property
    def blobs(self) -> BlobStore: ...

    def keyring(self, actor: str | None = None) -> StoreKeyring: ...


@dataclass(frozen=True, slots=True)
class CopyProgress:
    """Progress of one phase: ``blobs`` (``done`` of ``total`` blobs, ``bytes`` copied so far)
    or ``rows`` (``done`` of ``total`` catalog rows)."""

    phase: str
    done: int
    total: int
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class DistributionCheck:
    """The revisions of one distribution in both stores after the copy."""

    distribution: str
    revisions: int
    current: int | None
    source_digest: str | None
    target_digest: str | None
    same: bool


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What :func:`copy_store` did and found."""

    blobs_copied: int
    blobs_skipped: int
    bytes_copied: int
    rows: dict[str, int]
    key_files: int  # keys of the source's DIR/keys carried into the target's keyring
    change_seq: int
    refreshed: bool  # the target was an earlier copy (a rerun), not an empty store
    distributions: tuple[DistributionCheck, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def same(self) -> bool:
        return not self.problems and all(d.same for d in self.distributions)

    def as_json(self) -> dict[str, Any]:
        return {
            "same": self.same,
            "refreshed": self.refreshed,
            "change_seq": self.change_seq,
            "blobs": {
                "copied": self.blobs_copied,
                "skipped": self.blobs_skipped,
                "bytes": self.bytes_copied,
            },
            "rows": dict(self.rows),
            "key_files": self.key_files,
            "distributions": [
                {
                    "distribution": d.distribution,
                    "revisions": d.revisions,
                    "current": d.current,
                    "source_digest": d.source_digest,
                    "target_digest": d.target_digest,
                    "same": d.same,
                }
                for d in self.distributions
            ],
            "problems": list(self.problems),
        }


ProgressCallback = Callable[[CopyProgress], None]


# --- reading the source ----------------------------------------------------------------------


@contextlib.contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One consistent, read-only view of the catalog behind ``engine`` for as long as the
    block runs (SQLite: a deferred transaction in WAL mode; PostgreSQL: REPEATABLE READ)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("ROLLBACK")
            return
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin() as tx:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET TRANSACTION READ ONLY"))
            yield conn
            tx.rollback()


def copied_tables(conn: Connection) -> list[Table]:
    """The tables :func:`copy_store` copies, parents before children (foreign keys)."""
    present = set(inspect(conn).get_table_names())
    return [t for t in s.metadata.sorted_tables if t.name not in NOT_COPIED and t.name in present]


def _order(table: Table) -> list[Any]:
    return list(table.primary_key.columns) or list(table.columns)


def _rows(conn: Connection, table: Table, batch: int) -> Iterator[list[dict[str, Any]]]:
    result = conn.execution_options(yield_per=batch).execute(select(table).order_by(*_order(table)))
    for part in result.partitions(batch):
        yield [dict(row._mapping) for row in part]


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def _schema_version(conn: Connection) -> str:
    return migrations.schema_state(conn).describe()


# --- the target's relation to the source -----------------------------------------------------


def _newest_event(conn: Connection) -> tuple[int, Any, str, str] | None:
    e = s.events
    row = conn.execute(
        select(e.c.id, e.c.time, e.c.actor, e.c.action).order_by(e.c.id.desc()).limit(1)
    ).first()
    return None if row is None else (int(row[0]), row[1], row[2], row[3])


def _event(conn: Connection, event_id: int) -> tuple[int, Any, str, str] | None:
    e = s.events
    row = conn.execute(
        select(e.c.id, e.c.time, e.c.actor, e.c.action).where(e.c.id == event_id)
    ).first()
    return None if row is None else (int(row[0]), row[1], row[2], row[3])


def _change_seq(conn: Connection) -> int:
    value = conn.execute(
        select(s.catalog_state.c.change_seq).where(s.catalog_state.c.id == 1)
    ).scalar()
    return int(value or 0)


def check_target(source: Connection, target: Connection, target_name: str) -> bool:
    """Whether the target is an earlier copy of the source (True) or empty (False);
    ConflictError when it is neither (an unrelated store: nothing may be overwritten)."""
    tables = {t.name: t for t in s.metadata.sorted_tables}
    held = [name for name in _CONTENT_TABLES if _count(target, tables[name]) > 0]
    if not held:
        return False
    newest = _newest_event(target)
    if newest is None:
        raise ConflictError(
            f"target store {target_name} is not empty (it holds {', '.join(held)}) and has no"
            " history to show it is a copy of the source: copy into an empty store"
        )
    if _event(source, newest[0]) != newest:
        raise ConflictError(
            f"target store {target_name} is not empty and is not a copy of the source (its"
            f" newest event #{newest[0]} {newest[3]} by {newest[2]} is not the source's):"
            " copy into an empty store"
        )
    if _change_seq(target) > _change_seq(source):
        raise ConflictError(
            f"target store {target_name} is ahead of the source (change {_change_seq(target)}"
            f" > {_change_seq(source)}): it was changed after the copy; copy into an empty store"
        )
    return True


# --- blobs -----------------------------------------------------------------------------------


def referenced_blobs(conn: Connection) -> list[str]:
    """Every blob the catalog references (artifacts and signatures), sorted."""
    a = s.artifacts
    digests: set[str] = set()
    for digest, sig in conn.execute(select(a.c.digest, a.c.signature_digest)):
        digests.add(digest)
        if sig:
            digests.add(sig)
    return sorted(digests)


def _copy_blob(source: BlobStore, target: BlobStore, digest: str, spool: Path) -> int:
    """Copy one blob (streamed through a local file unless the source has one); its size."""
    local = source.path_for(digest)
    if local is not None:
        got, size = target.put_file(local)
    else:
        fd, name = tempfile.mkstemp(prefix="copy-", suffix=".blob", dir=spool)
        path = Path(name)
        try:
            with source.open(digest) as reader, open(fd, "wb") as writer:
                shutil.copyfileobj(reader, writer, _CHUNK)
            got, size = target.put_file(path)
        finally:
            path.unlink(missing_ok=True)
    if got != digest:
        raise StorageError(
            f"blob {digest} of the source store is corrupt (its bytes hash to {got}):"
            " run `package-storage fsck` on the source"
        )
    return size


def copy_blobs(
    source: BlobStore,
    target: BlobStore,
    digests: Sequence[str],
    *,
    threads: int = DEFAULT_THREADS,
    progress: ProgressCallback | None = None,
) -> tuple[int, int, int]:
    """Copy the blobs the target lacks: (copied, skipped, bytes). NotFoundError naming a blob
    the source lacks (its catalog references it: the source needs ``fsck``)."""
    lock = threading.Lock()
    state = {"done": 0, "copied": 0, "bytes": 0}

    def one(digest: str, spool: Path) -> None:
        copied = 0
        size = 0
        if not target.exists(digest):
            if not source.exists(digest):
                raise NotFoundError(
                    f"blob {digest} is referenced by the source's catalog but missing from its"
                    " blob store: run `package-storage fsck` on the source"
                )
            size = _copy_blob(source, target, digest, spool)
            copied = 1
        with lock:
            state["done"] += 1
            state["copied"] += copied
            state["bytes"] += size
            if progress is not None:
                progress(CopyProgress("blobs", state["done"], len(digests), state["bytes"]))

    if progress is not None:
        progress(CopyProgress("blobs", 0, len(digests)))
    with tempfile.TemporaryDirectory(prefix="package-storage-copy-") as tmp:
        spool = Path(tmp)
        pool = ThreadPoolExecutor(max_workers=max(1, threads))
        try:
            for future in [pool.submit(one, d, spool) for d in digests]:
                future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # what is done stays, nothing more
            raise
        pool.shutdown(wait=True)
    return state["copied"], len(digests) - state["copied"], state["bytes"]


# --- rows ------------------------------------------------------------------------------------


def _reset_sequences(conn: Connection, tables: Iterable[Table]) -> None:
    """After rows were inserted with their ids, move PostgreSQL's id sequences past them."""
    if conn.dialect.name != "postgresql":
        return  # SQLite's AUTOINCREMENT follows the largest inserted id by itself
    for table in tables:
        columns = list(table.primary_key.columns)
        if len(columns) != 1 or not isinstance(columns[0].type, Integer | BigInteger):
            continue
        column = columns[0]
        if column.autoincrement is False:
            continue
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'),"
                f" COALESCE((SELECT MAX({column.name}) FROM {table.name}), 1),"
                f" (SELECT COUNT(*) FROM {table.name}) > 0)"
            )
        )


def copy_rows(
    source: Connection,
    target: Connection,
    tables: Sequence[Table],
    *,
    batch: int = DEFAULT_BATCH,
    progress: ProgressCallback | None = None,
) -> dict[str, int]:
    """Replace the target's rows of ``tables`` by the source's; rows copied per table."""
    totals = {t.name: _count(source, t) for t in tables}
    total = sum(totals.values())
    for table in reversed(tables):  # children first
        target.execute(table.delete())
    done = 0
    if progress is not None:
        progress(CopyProgress("rows", 0, total))
    copied: dict[str, int] = {}
    for table in tables:
        copied[table.name] = 0
        for rows in _rows(source, table, batch):
            target.execute(table.insert(), rows)
            copied[table.name] += len(rows)
            done += len(rows)
            if progress is not None:
                progress(CopyProgress("rows", done, total))
    _reset_sequences(target, tables)
    state = source.execute(select(s.catalog_state).where(s.catalog_state.c.id == 1)).first()
    if state is None:
        raise StorageError("the source catalog has no state row: run its migrations")
    target.execute(
        s.catalog_state.update()
        .where(s.catalog_state.c.id == 1)
        .values(change_seq=state.change_seq, changed_at=state.changed_at)
    )
    return copied


# --- the check -------------------------------------------------------------------------------


def _revision_digests(conn: Connection) -> dict[str, dict[int, str]]:
    r = s.revisions
    result: dict[str, dict[int, str]] = {}
    for dist, number, digest in conn.execute(
        select(r.c.distribution, r.c.number, r.c.digest).order_by(r.c.distribution, r.c.number)
    ):
        result.setdefault(dist, {})[int(number)] = digest
    return result


def _currents(conn: Connection) -> dict[str, int | None]:
    d = s.distributions
    return {
        name: None if current is None else int(current)
        for name, current in conn.execute(select(d.c.name, d.c.current_revision))
    }


def compare_revisions(
    source: Connection, target: SQLCatalog
) -> tuple[tuple[DistributionCheck, ...], tuple[str, ...]]:
    """Every distribution's revision digests in the source snapshot against the target's,
    and the target's own check."""
    with snapshot(target.engine) as conn:
        theirs = _revision_digests(conn)
        their_current = _currents(conn)
    ours = _revision_digests(source)
    our_current = _currents(source)
    checks: list[DistributionCheck] = []
    problems: list[str] = []
    for dist in sorted(set(ours) | set(theirs) | set(our_current)):
        mine, other = ours.get(dist, {}), theirs.get(dist, {})
        current = our_current.get(dist)
        target_current = their_current.get(dist)
        same = mine == other and current == target_current
        if not same:
            differing = sorted(n for n in set(mine) | set(other) if mine.get(n) != other.get(n))
            problems.append(
                f"distribution {dist}: revisions {differing[:5]} differ (current"
                f" {current} / {target_current})"
            )
        checks.append(
            DistributionCheck(
                distribution=dist,
                revisions=len(mine),
                current=current,
                source_digest=None if current is None else mine.get(current),
                target_digest=None if target_current is None else other.get(target_current),
                same=same,
            )
        )
    problems.extend(f"target: {p}" for p in target.check())
    return tuple(checks), tuple(problems)


# --- key files of older directory stores ------------------------------------------------------


def _legacy_signing_text(source: StoreKeyring) -> str | None:
    """The source's signing key when only its ``DIR/keys`` file holds it (a key in the
    catalog travels with the rows)."""
    if source.keystore is not None and any(r.role == "signing" for r in source.keystore.records()):
        return None
    path = source.store_dir / "keys" / "signing.asc" if source.store_dir is not None else None
    if path is None or not path.is_file():
        return None
    return source.signing_key_armored()


def check_key_files(source: StoreKeyring, target: StoreKeyring, target_name: str) -> None:
    """Refuse, before anything is copied, a signing key file the target could not keep (a
    key without passphrase, no passphrase set, a target without a directory)."""
    text = _legacy_signing_text(source)
    if text is None or target.store_dir is not None or target.passphrase() is not None:
        return
    try:
        load_secret_key(text, None)
    except SignatureError:
        return  # protected: stored as it is
    raise SignatureError(
        f"the source's signing key ({source.signing_location()}) has no passphrase and"
        f" {target_name} keeps keys only in its catalog, never in clear: set"
        " PACKAGE_STORAGE_KEY_PASSPHRASE to store it encrypted, or import it there later with"
        " `package-storage keys import FILE --key-file`"
    )


def copy_key_files(source: StoreKeyring, target: StoreKeyring) -> int:
    """Carry the source's ``DIR/keys`` files into the target's keyring; how many keys."""
    carried = 0
    if source.store_dir is None:
        return 0
    files = set(source.legacy_files())
    for key in source.trusted_keys():
        if source.trusted_dir / f"{key.fingerprint}.asc" in files:
            target.add_trusted(key.armored)
            carried += 1
    text = _legacy_signing_text(source)
    if text is not None:
        target.set_signing_key(text, replace=True)
        carried += 1
    return carried


# --- the whole copy --------------------------------------------------------------------------


def copy_store(
    source: CopySide,
    target: CopySide,
    *,
    target_name: str = "target",
    batch: int = DEFAULT_BATCH,
    threads: int = DEFAULT_THREADS,
    progress: ProgressCallback | None = None,
) -> CopyReport:
    """Copy everything of ``source`` into ``target`` (see the module docstring).

    ConflictError when the target is neither empty nor an earlier copy of the source;
    StorageError when the schema versions differ or a blob is corrupt; NotFoundError when the
    source's catalog references a blob its blob store lacks. Nothing is changed in the target's
    catalog unless the whole copy succeeds.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    source_keys, target_keys = source.keyring(), target.keyring()
    check_key_files(source_keys, target_keys, target_name)
    with snapshot(source.catalog.engine) as src:
        with snapshot(target.catalog.engine) as probe:
            mine, theirs = _schema_version(src), _schema_version(probe)
            if mine != theirs:
                raise StorageError(
                    f"schema versions differ (source {mine}, {target_name} {theirs}): run"
                    " `package-storage migrate` on the older one first"
                )
            check_target(src, probe, target_name)
        digests = referenced_blobs(src)
        copied, skipped, size = copy_blobs(
            source.blobs, target.blobs, digests, threads=threads, progress=progress
        )
        with target.catalog.write_connection() as dst:
            refreshed = check_target(src, dst, target_name)  # again, under the write lock
            rows = copy_rows(src, dst, copied_tables(src), batch=batch, progress=progress)
        key_files = copy_key_files(source_keys, target_keys)
        distributions, problems = compare_revisions(src, target.catalog)
        change_seq = _change_seq(src)
    return CopyReport(
        blobs_copied=copied,
        blobs_skipped=skipped,
        bytes_copied=size,
        rows=rows,
        key_files=key_files,
        change_seq=change_seq,
        refreshed=refreshed,
        distributions=distributions,
        problems=problems,
    )


__all__ = [
    "NOT_COPIED",
    "CopyProgress",
    "CopyReport",
    "CopySide",
    "DistributionCheck",
    "copy_store",
]
