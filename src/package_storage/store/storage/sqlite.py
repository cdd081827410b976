"""SQL catalog over SQLAlchemy Core: :class:`SQLCatalog` (dialect-neutral) and :class:`SQLiteCatalog`.

``SQLCatalog`` implements the whole :class:`~package_storage.store.storage.base.Catalog` protocol with
portable Core statements; a backend subclass only supplies the engine and how a transaction
starts (the write lock). PostgreSQL reuses it unchanged: its default ``_write_connection``
locks the ``catalog_state`` row with ``SELECT ... FOR UPDATE``, which serialises writers.

``SQLiteCatalog(path)`` is the embedded default: WAL mode (readers never block the writer and
vice versa), ``synchronous=FULL`` (a committed change survives a power cut), a busy timeout (a
writer waits for the lock instead of failing), foreign keys on. Write transactions start with
``BEGIN IMMEDIATE``, which takes SQLite's single write lock up front, so two processes
publishing at once are serialised and neither loses an update. Reads run in a deferred
transaction, which in WAL mode is a consistent snapshot.

See ``base.py`` for how revisions are stored (temporal stage entries + incremental digests).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Row, and_, create_engine, delete, event, func, or_, select
from sqlalchemy import union as sa_union
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from package_storage import __version__
from package_storage.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StorageError,
)
from package_storage.store.stages import StageGraph, stage_from_config
from package_storage.store.storage import migrations
from package_storage.store.storage import schema as s
from package_storage.store.storage.base import (
    ArtifactRecord,
    ChangeNotifier,
    Event,
    EventFilter,
    JSONObject,
    Revision,
    RevisionEntry,
    StageEntry,
    Tag,
    TokenRecord,
    Transaction,
    accumulate,
    check_digest,
    entry_hash,
    revision_digest,
)
from package_storage.store.storage.filewatch import catalog_notifier

_MOD = 1 << 256
_MAX_INT = 1 << 63

# Above this many changed name+versions since the previous revision, a new revision's digest is
# recomputed from scratch (a bulk import) instead of incrementally.
_INCREMENTAL_LIMIT = 256
_IN_CHUNK = 500  # digests per IN (...) query (SQLite bounds the bound parameters)
_CHANGES_LIMIT = 2000  # revision_changes: above this many changes, rebuild instead

_Key = tuple[str, str]


def one_line(exc: BaseException) -> str:
    """The driver's own first line of a SQLAlchemy error (without SQLAlchemy's statement and
    background link), e.g. ``connection failed: ... Connection refused``."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    return first


def _valid_tag(tag: str) -> bool:
    if not tag or len(tag) > 128 or tag.isdigit():
        return False
    return all(c.isascii() and (c.isalnum() or c in "-_.+") for c in tag)


def _entry(row: Row[Any]) -> StageEntry:
    m = row._mapping
    return StageEntry(
        stage=m["stage"],
        name=m["name"],
        version=m["version"],
        artifact=m["artifact"],
        added_at=m["added_at"],
        added_by=m["added_by"],
        yanked=bool(m["yanked"]),
    )


def _artifact(row: Row[Any]) -> ArtifactRecord:
    m = row._mapping
    return ArtifactRecord(
        digest=m["digest"],
        size=int(m["size"]),
        name=m["name"],
        version=m["version"],
        signature_digest=m["signature_digest"],
        manifest=dict(m["manifest"] or {}),
        created=m["created"],
    )


def _event(row: Row[Any]) -> Event:
    m = row._mapping
    return Event(
        id=int(m["id"]),
        time=m["time"],
        actor=m["actor"],
        action=m["action"],
        stage=m["stage"],
        name=m["name"],
        version=m["version"],
        reason=m["reason"],
        detail=dict(m["detail"] or {}),
    )


def _tag(row: Row[Any]) -> Tag:
    m = row._mapping
    return Tag(
        distribution=m["distribution"],
        tag=m["tag"],
        revision=int(m["revision"]),
        created=m["created"],
        created_by=m["created_by"],
    )


def _token(row: Row[Any]) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        secret_hash=row.secret_hash,
        scopes=tuple(row.scopes),
        created=row.created,
        created_by=row.created_by,
        expires=row.expires,
        revoked=row.revoked,
        revoked_by=row.revoked_by,
    )


def _live_at(seq: int) -> Any:
    se = s.stage_entries
    return and_(se.c.added_seq <= seq, or_(se.c.removed_seq.is_(None), se.c.removed_seq > seq))


class _Reader:
    """Read methods over one open connection (a read snapshot or a write transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._graph: StageGraph | None = None

    # --- stages ----------------------------------------------------------------------------

    def stages(self) -> StageGraph:
        if self._graph is None:
            rows = self._conn.execute(select(s.stages)).all()
            if not rows:
                raise StorageError("the catalog has no stage configuration")
            self._graph = StageGraph(
                stage_from_config(
                    {
                        "name": r.name,
                        "rank": int(r.rank),
                        "overwrite": r.overwrite,
                        "remove": r.remove,
                        "frozen": bool(r.frozen),
                        "sees": list(r.sees),
                        "promotes_to": r.promotes_to,
                        "publish": None if r.publish is None else bool(r.publish),
                    }
                )
                for r in rows
            )
        return self._graph

    # --- artifacts and entries -------------------------------------------------------------

    def get_artifact(self, digest: str) -> ArtifactRecord | None:
        row = self._conn.execute(select(s.artifacts).where(s.artifacts.c.digest == digest)).first()
        return None if row is None else _artifact(row)

    def get_artifacts(self, digests: Iterable[str]) -> dict[str, ArtifactRecord]:
        """The recorded artifacts among ``digests`` (absent ones are left out), in few queries."""
        wanted = list(dict.fromkeys(digests))
        found: dict[str, ArtifactRecord] = {}
        a = s.artifacts
        for i in range(0, len(wanted), _IN_CHUNK):
            q = select(a).where(a.c.digest.in_(wanted[i : i + _IN_CHUNK]))
            for row in self._conn.execute(q):
                record = _artifact(row)
                found[record.digest] = record
        return found

    def referenced_blobs(self) -> set[str]:
        a = s.artifacts
        result: set[str] = set()
        for digest, sig in self._conn.execute(select(a.c.digest, a.c.signature_digest)):
            result.add(digest)
            if sig:
                result.add(sig)
        return result

    def _live_row(self, stage: str, name: str, version: str) -> Row[Any] | None:
        se = s.stage_entries
        return self._conn.execute(
            select(se).where(
                se.c.stage == stage,
                se.c.name == name,
                se.c.version == version,
                se.c.removed_seq.is_(None),
            )
        ).first()

    def get_entry(self, stage: str, name: str, version: str) -> StageEntry | None:
        row = self._live_row(stage, name, version)
        return None if row is None else _entry(row)

    def entries(self, stage: str, name: str | None = None) -> list[StageEntry]:
        se = s.stage_entries
        q = select(se).where(se.c.stage == stage, se.c.removed_seq.is_(None))
        if name is not None:
            q = q.where(se.c.name == name)
        return [_entry(r) for r in self._conn.execute(q.order_by(se.c.name, se.c.version))]

    def find_entries(self, name: str, version: str | None = None) -> list[StageEntry]:
        se = s.stage_entries
        q = select(se).where(se.c.name == name, se.c.removed_seq.is_(None))
        if version is not None:
            q = q.where(se.c.version == version)
        q = q.order_by(se.c.version, se.c.stage)
        return [_entry(r) for r in self._conn.execute(q)]

    # --- revisions -------------------------------------------------------------------------

    def distributions(self) -> dict[str, int | None]:
        d = s.distributions
        return {
            r.name: None if r.current_revision is None else int(r.current_revision)
            for r in self._conn.execute(select(d).order_by(d.c.name))
        }

    def _current_number(self, distribution: str) -> int | None:
        d = s.distributions
        value = self._conn.execute(
            select(d.c.current_revision).where(d.c.name == distribution)
        ).scalar()
        return None if value is None else int(value)

    def _tags_of(self, distribution: str, number: int | None = None) -> dict[int, list[str]]:
        t = s.tags
        q = select(t.c.revision, t.c.tag).where(t.c.distribution == distribution)
        if number is not None:
            q = q.where(t.c.revision == number)
        result: dict[int, list[str]] = {}
        for rev, tag in self._conn.execute(q.order_by(t.c.created, t.c.tag)):
            result.setdefault(int(rev), []).append(tag)
        return result

    @staticmethod
    def _revision(row: Row[Any], current: int | None, tags: dict[int, list[str]]) -> Revision:
        m = row._mapping
        number = int(m["number"])
        return Revision(
            distribution=m["distribution"],
            number=number,
            digest=m["digest"],
            created=m["created"],
            server_version=m["server_version"],
            seq=int(m["seq"]),
            stages=tuple(m["stages"]),
            count=int(m["count"]),
            current=number == current,
            tags=tuple(tags.get(number, ())),
            commit=m["git_commit"],
        )

    def _revision_row(self, distribution: str, number: int) -> Row[Any]:
        r = s.revisions
        row = None
        if 0 <= number < _MAX_INT:  # larger numbers exist nowhere (and overflow SQL integers)
            row = self._conn.execute(
                select(r).where(r.c.distribution == distribution, r.c.number == number)
            ).first()
        if row is None:
            raise NotFoundError(f"distribution {distribution} has no revision {number}")
        return row

    def current_revision(self, distribution: str) -> Revision | None:
        number = self._current_number(distribution)
        return None if number is None else self.revision(distribution, number)

    def revision(self, distribution: str, number: int) -> Revision:
        row = self._revision_row(distribution, number)
        return self._revision(
            row, self._current_number(distribution), self._tags_of(distribution, number)
        )

    def revisions(self, distribution: str) -> list[Revision]:
        r = s.revisions
        current = self._current_number(distribution)
        tags = self._tags_of(distribution)
        rows = self._conn.execute(
            select(r).where(r.c.distribution == distribution).order_by(r.c.number)
        )
        return [self._revision(row, current, tags) for row in rows]

    def revisions_by_commit(self, distribution: str, prefix: str) -> list[Revision]:
        r = s.revisions
        if prefix and not all(c in "0123456789abcdef" for c in prefix):
            return []
        q = select(r).where(r.c.distribution == distribution, r.c.git_commit.is_not(None))
        if prefix:
            # a range on the indexed column (LIKE would not use the index everywhere)
            q = q.where(r.c.git_commit >= prefix, r.c.git_commit < prefix + "g")
        rows = self._conn.execute(q.order_by(r.c.number)).all()
        if not rows:
            return []
        current = self._current_number(distribution)
        tags = self._tags_of(distribution)
        return [self._revision(row, current, tags) for row in rows]

    def _resolve(self, stages: Sequence[str], seq: int) -> dict[_Key, tuple[str, str, bool]]:
        """(name, version) -> (artifact, stage, yanked) at ``seq``, first stage in ``stages``
        wins."""
        se = s.stage_entries
        result: dict[_Key, tuple[str, str, bool]] = {}
        for stage in stages:
            q = select(se.c.name, se.c.version, se.c.artifact, se.c.yanked).where(
                se.c.stage == stage, _live_at(seq)
            )
            for name, version, artifact, yanked in self._conn.execute(q):
                result.setdefault((name, version), (artifact, stage, bool(yanked)))
        return result

    def revision_entries(self, distribution: str, number: int) -> list[RevisionEntry]:
        row = self._revision_row(distribution, number)
        resolved = self._resolve(tuple(row.stages), int(row.seq))
        # Sort the (name, version) keys (tuples of str compare in C) rather than the records.
        return [
            RevisionEntry(name, version, *resolved[(name, version)])
            for name, version in sorted(resolved)
        ]

    def revision_changes(
        self, distribution: str, old: int, new: int, limit: int = _CHANGES_LIMIT
    ) -> list[tuple[str, str, RevisionEntry | None]] | None:
        """What serving revision ``new`` of ``distribution`` changes against revision ``old``:
        ``(name, version, entry)`` per name+version whose resolved entry may differ (``entry``
        None: not served by ``new``), sorted by key. None when the two cannot be compared
        cheaply: other stages, ``new`` older than ``old``, or more than ``limit`` changed
        name+versions (rebuild from :meth:`revision_entries` then)."""
        before = self._revision_row(distribution, old)
        after = self._revision_row(distribution, new)
        stages = tuple(after.stages)
        if tuple(before.stages) != stages:
            return None
        s1, s2 = int(before.seq), int(after.seq)
        if s2 < s1:
            return None
        se = s.stage_entries
        q = (
            select(se.c.name, se.c.version)
            .where(
                se.c.stage.in_(stages),
                or_(
                    and_(se.c.added_seq > s1, se.c.added_seq <= s2),
                    and_(se.c.removed_seq > s1, se.c.removed_seq <= s2),
                ),
            )
            .distinct()
            .limit(limit + 1)
        )
        keys = {(name, version) for name, version in self._conn.execute(q)}
        if len(keys) > limit:
            return None
        names = sorted({name for name, _ in keys})
        resolved: dict[_Key, RevisionEntry] = {}
        for stage in stages:
            for i in range(0, len(names), _IN_CHUNK):
                live = select(se.c.name, se.c.version, se.c.artifact, se.c.yanked).where(
                    se.c.stage == stage, se.c.name.in_(names[i : i + _IN_CHUNK]), _live_at(s2)
                )
                for name, version, artifact, yanked in self._conn.execute(live):
                    key = (name, version)
                    if key in keys and key not in resolved:
                        resolved[key] = RevisionEntry(name, version, artifact, stage, bool(yanked))
        return [(name, version, resolved.get((name, version))) for name, version in sorted(keys)]

    # --- tags and events -------------------------------------------------------------------

    def tag(self, distribution: str, tag: str) -> Tag:
        t = s.tags
        row = self._conn.execute(
            select(t).where(t.c.distribution == distribution, t.c.tag == tag)
        ).first()
        if row is None:
            raise NotFoundError(f"distribution {distribution} has no tag {tag}")
        return _tag(row)

    def tags(self, distribution: str | None = None) -> list[Tag]:
        t = s.tags
        q = select(t)
        if distribution is not None:
            q = q.where(t.c.distribution == distribution)
        q = q.order_by(t.c.distribution, t.c.created, t.c.tag)
        return [_tag(r) for r in self._conn.execute(q)]

    def events(self, query: EventFilter | None = None) -> list[Event]:
        f = query or EventFilter()
        e = s.events
        q = select(e)
        for column, value in (
            (e.c.stage, f.stage),
            (e.c.name, f.name),
            (e.c.version, f.version),
            (e.c.action, f.action),
            (e.c.actor, f.actor),
        ):
            if value is not None:
                q = q.where(column == value)
        if f.since is not None:
            q = q.where(e.c.time >= f.since)
        if f.until is not None:
            q = q.where(e.c.time < f.until)
        if f.after_id is not None:
            q = q.where(e.c.id > f.after_id)
        q = q.order_by(e.c.id.desc() if f.newest_first else e.c.id)
        if f.limit is not None:
            q = q.limit(f.limit)
        return [_event(r) for r in self._conn.execute(q)]

    def change_counter(self) -> int:
        value = self._conn.execute(
            select(s.catalog_state.c.change_seq).where(s.catalog_state.c.id == 1)
        ).scalar()
        return int(value or 0)

    def tokens(self) -> list[TokenRecord]:
        t = s.tokens
        return [_token(r) for r in self._conn.execute(select(t).order_by(t.c.created, t.c.id))]

    def token(self, token_id: str) -> TokenRecord | None:
        row = self._conn.execute(select(s.tokens).where(s.tokens.c.id == token_id)).first()
        return None if row is None else _token(row)

    def settings(self) -> dict[str, str]:
        t = s.settings
        return {r.key: r.value for r in self._conn.execute(select(t).order_by(t.c.key))}

    def last_change(self) -> datetime | None:
        value = self._conn.execute(
            select(s.catalog_state.c.changed_at).where(s.catalog_state.c.id == 1)
        ).scalar()
        assert value is None or isinstance(value, datetime)
        return value


class SQLTransaction(_Reader):
    """A writing transaction on a connection that already holds the write lock."""

    def __init__(self, conn: Connection, server_version: str) -> None:
        super().__init__(conn)
        self._server_version = server_version
        last = conn.execute(
            select(s.catalog_state.c.change_seq).where(s.catalog_state.c.id == 1)
        ).scalar()
        if last is None:
            raise StorageError("the catalog has no state row: run the migrations")
        self._seq = int(last) + 1
        self._time = datetime.now(UTC)
        self._dirty = False
        self._revised = False
        self._changed = False

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def time(self) -> datetime:
        return self._time

    @property
    def dirty(self) -> bool:
        return self._dirty

    @property
    def changed(self) -> bool:
        """True when this transaction changed anything (it will commit a new change_seq)."""
        return self._changed

    def _touch(self) -> None:
        self._changed = True
        if not self._dirty:
            self._conn.execute(
                s.catalog_state.update()
                .where(s.catalog_state.c.id == 1)
                .values(change_seq=self._seq, changed_at=self._time)
            )
            self._dirty = True

    def _require_stage(self, stage: str) -> None:
        if stage not in self.stages():
            raise NotFoundError(
                f"stage {stage} does not exist (stages: {', '.join(self.stages().names)})"
            )

    def _require_no_revision(self, what: str) -> None:
        if self._revised:
            raise StorageError(
                f"{what} after new_revision in the same transaction: change entries first,"
                " then make revisions"
            )

    # --- stages ----------------------------------------------------------------------------

    def set_stages(self, graph: StageGraph) -> None:
        se = s.stage_entries
        used = self._conn.execute(
            select(se.c.stage).where(se.c.removed_seq.is_(None)).distinct()
        ).scalars()
        dropped = sorted(set(used) - set(graph.names))
        if dropped:
            raise ConflictError(
                f"stage {dropped[0]} still has package versions: remove them before dropping"
                " the stage from the configuration"
            )
        self._touch()
        self._conn.execute(delete(s.stages))
        self._conn.execute(
            s.stages.insert(),
            [
                {
                    "name": st.name,
                    "rank": st.rank,
                    "overwrite": st.policy.overwrite,
                    "remove": st.policy.remove,
                    "frozen": st.policy.frozen,
                    "sees": list(st.sees),
                    "promotes_to": st.promotes_to,
                    "publish": st.publish,
                }
                for st in graph
            ],
        )
        self._graph = graph

    # --- artifacts and entries -------------------------------------------------------------

    def add_artifact(self, artifact: ArtifactRecord) -> ArtifactRecord:
        check_digest(artifact.digest)
        if artifact.signature_digest is not None:
            check_digest(artifact.signature_digest)
        if artifact.size < 0:
            raise InvalidInputError(f"artifact {artifact.digest}: size {artifact.size} < 0")
        existing = self.get_artifact(artifact.digest)
        if existing is not None:
            if existing.signature_digest is None and artifact.signature_digest is not None:
                self._touch()
                self._conn.execute(
                    s.artifacts.update()
                    .where(s.artifacts.c.digest == artifact.digest)
                    .values(signature_digest=artifact.signature_digest)
                )
                return self.get_artifact(artifact.digest) or existing
            return existing
        self._touch()
        record = dataclasses.replace(artifact, manifest=dict(artifact.manifest), created=self._time)
        self._conn.execute(s.artifacts.insert().values(**dataclasses.asdict(record)))
        return record

    def _end_row(self, row: Row[Any]) -> None:
        """End a live row's validity at this transaction (or drop it if it began in it)."""
        se = s.stage_entries
        if int(row.added_seq) == self._seq:
            self._conn.execute(delete(se).where(se.c.id == row.id))
        else:
            self._conn.execute(se.update().where(se.c.id == row.id).values(removed_seq=self._seq))

    def put_entry(
        self, stage: str, name: str, version: str, artifact: str, *, actor: str
    ) -> StageEntry | None:
        self._require_no_revision("put_entry")
        self._require_stage(stage)
        if not name or not version:
            raise InvalidInputError(f"entry {name!r} {version!r}: name and version are required")
        check_digest(artifact)
        if self.get_artifact(artifact) is None:
            raise NotFoundError(
                f"artifact {artifact} is not recorded: add_artifact before put_entry"
            )
        row = self._live_row(stage, name, version)
        previous = None if row is None else _entry(row)
        if row is not None:
            if row.artifact == artifact:
                return previous
            self._touch()
            self._end_row(row)
        self._touch()
        self._conn.execute(
            s.stage_entries.insert().values(
                stage=stage,
                name=name,
                version=version,
                artifact=artifact,
                added_seq=self._seq,
                removed_seq=None,
                added_at=self._time,
                added_by=actor,
                yanked=False,
            )
        )
        return previous

    def delete_entry(self, stage: str, name: str, version: str) -> StageEntry:
        self._require_no_revision("delete_entry")
        row = self._live_row(stage, name, version)
        if row is None:
            raise NotFoundError(f"stage {stage} has no {name} {version}")
        self._touch()
        self._end_row(row)
        return _entry(row)

    def set_yanked(self, stage: str, name: str, version: str, yanked: bool) -> StageEntry:
        self._require_no_revision("set_yanked")
        row = self._live_row(stage, name, version)
        if row is None:
            raise NotFoundError(f"stage {stage} has no {name} {version}")
        if bool(row.yanked) == yanked:
            return _entry(row)
        self._touch()
        self._end_row(row)
        values = {
            "stage": stage,
            "name": name,
            "version": version,
            "artifact": row.artifact,
            "added_seq": self._seq,
            "removed_seq": None,
            "added_at": row.added_at,
            "added_by": row.added_by,
            "yanked": yanked,
        }
        self._conn.execute(s.stage_entries.insert().values(**values))
        return dataclasses.replace(_entry(row), yanked=yanked)

    def advance(self) -> int:
        if self._dirty:
            self._seq += 1
            self._dirty = False
        self._revised = False
        return self._seq

    # --- revisions -------------------------------------------------------------------------

    def _advance(
        self, acc: int, count: int, since: int, stages: Sequence[str]
    ) -> tuple[int, int] | None:
        """Update (acc, count) from change sequence ``since`` to this transaction, or None
        when too much changed (the caller then recomputes from scratch)."""
        if since == self._seq:
            return acc, count
        se = s.stage_entries
        changed = sa_union(
            select(se.c.name, se.c.version).where(se.c.stage.in_(stages), se.c.added_seq > since),
            select(se.c.name, se.c.version).where(se.c.stage.in_(stages), se.c.removed_seq > since),
        )
        keys = [(r[0], r[1]) for r in self._conn.execute(changed)]
        if not keys:
            return acc, count
        if len(keys) > _INCREMENTAL_LIMIT:
            return None
        rank = {stage: i for i, stage in enumerate(stages)}
        # For each key and point in time (0 = previous revision, 1 = now): (rank, artifact).
        best: dict[_Key, list[tuple[int, str] | None]] = {k: [None, None] for k in keys}
        cols = (se.c.stage, se.c.artifact, se.c.added_seq, se.c.removed_seq)
        for name, version in keys:
            # One indexed lookup per changed key: (name, version) is selective, a row-value
            # IN list is not planned through the index by SQLite.
            q = select(*cols).where(
                se.c.name == name, se.c.version == version, se.c.stage.in_(stages)
            )
            slots = best[(name, version)]
            for stage, artifact, added, removed in self._conn.execute(q):
                for i, at in enumerate((since, self._seq)):
                    if added <= at and (removed is None or removed > at):
                        cand = (rank[stage], artifact)
                        current = slots[i]
                        if current is None or cand[0] < current[0]:
                            slots[i] = cand
        for (name, version), (old, new) in best.items():
            if old is not None:
                acc -= entry_hash(name, version, old[1])
                count -= 1
            if new is not None:
                acc += entry_hash(name, version, new[1])
                count += 1
        return acc % _MOD, count

    def new_revision(
        self,
        distribution: str,
        stages: Sequence[str] | None = None,
        *,
        server_version: str | None = None,
        make_current: bool = True,
        commit: str | None = None,
    ) -> Revision:
        graph = self.stages()
        if stages is None:
            stages_t = graph.resolution_order(distribution)
        else:
            stages_t = tuple(stages)
            for stage in stages_t:
                self._require_stage(stage)
            if len(set(stages_t)) != len(stages_t):
                raise InvalidInputError(f"revision stages {stages_t} list a stage twice")
        r = s.revisions
        prev = self._conn.execute(
            select(r).where(r.c.distribution == distribution).order_by(r.c.number.desc()).limit(1)
        ).first()
        state: tuple[int, int] | None = None
        if prev is not None and tuple(prev.stages) == stages_t:
            state = self._advance(
                int(prev.acc, 16), int(prev._mapping["count"]), int(prev.seq), stages_t
            )
        if state is None:
            resolved = self._resolve(stages_t, self._seq)
            state = accumulate((n, v, a) for (n, v), (a, _, _) in resolved.items())
        acc, count = state
        number = 1 if prev is None else int(prev.number) + 1
        self._touch()
        self._revised = True
        d = s.distributions
        if self._conn.execute(select(d.c.name).where(d.c.name == distribution)).first() is None:
            self._conn.execute(d.insert().values(name=distribution, current_revision=None))
        digest = revision_digest(acc, count)
        version = server_version or __version__
        self._conn.execute(
            r.insert().values(
                distribution=distribution,
                number=number,
                seq=self._seq,
                stages=list(stages_t),
                digest=digest,
                acc=f"{acc:064x}",
                count=count,
                created=self._time,
                server_version=version,
                git_commit=commit,
            )
        )
        if make_current:
            self._conn.execute(
                d.update().where(d.c.name == distribution).values(current_revision=number)
            )
        return Revision(
            distribution=distribution,
            number=number,
            digest=digest,
            created=self._time,
            server_version=version,
            seq=self._seq,
            stages=stages_t,
            count=count,
            current=make_current,
            tags=(),
            commit=commit,
        )

    def set_current(self, distribution: str, number: int) -> Revision:
        self._revision_row(distribution, number)
        self._touch()
        d = s.distributions
        self._conn.execute(
            d.update().where(d.c.name == distribution).values(current_revision=number)
        )
        return self.revision(distribution, number)

    def add_tag(self, distribution: str, tag: str, number: int, *, actor: str) -> Tag:
        if not _valid_tag(tag):
            raise InvalidInputError(
                f"tag {tag!r} is not valid: use 1-128 ASCII letters, digits, '-', '_', '.' or"
                " '+', not only digits (those name revisions)"
            )
        t = s.tags
        existing = self._conn.execute(
            select(t.c.revision).where(t.c.distribution == distribution, t.c.tag == tag)
        ).scalar()
        if existing is not None:
            raise ConflictError(
                f"tag {distribution}@{tag} already names revision {existing}: tags never move"
            )
        self._revision_row(distribution, number)
        self._touch()
        self._conn.execute(
            t.insert().values(
                distribution=distribution,
                tag=tag,
                revision=number,
                created=self._time,
                created_by=actor,
            )
        )
        return Tag(distribution, tag, number, self._time, actor)

    # --- settings ------------------------------------------------------------------------

    def set_setting(self, key: str, value: str) -> None:
        """Set the store setting ``key`` (see ``schema.settings``)."""
        t = s.settings
        self._touch()
        if self._conn.execute(select(t.c.key).where(t.c.key == key)).first() is None:
            self._conn.execute(t.insert().values(key=key, value=value))
        else:
            self._conn.execute(t.update().where(t.c.key == key).values(value=value))

    # --- tokens --------------------------------------------------------------------------

    def add_token(self, token: TokenRecord) -> TokenRecord:
        t = s.tokens
        held = self._conn.execute(
            select(t.c.id).where(t.c.name == token.name, t.c.revoked.is_(None))
        ).first()
        if held is not None:
            raise ConflictError(f"token {token.name} exists: revoke it first, or pick another name")
        record = dataclasses.replace(token, created=self._time, revoked=None, revoked_by=None)
        row = dataclasses.asdict(record)
        row["scopes"] = list(record.scopes)
        self._conn.execute(t.insert().values(**row))
        return record

    def revoke_token(self, token_id: str, *, actor: str) -> TokenRecord:
        found = self.token(token_id)
        if found is None:
            raise NotFoundError(f"no token with id {token_id}")
        if found.revoked is not None:
            return found
        self._conn.execute(
            s.tokens.update()
            .where(s.tokens.c.id == token_id)
            .values(revoked=self._time, revoked_by=actor)
        )
        return dataclasses.replace(found, revoked=self._time, revoked_by=actor)

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
        self._touch()
        event = Event(
            id=0,  # the database's, once inserted
            time=self._time if time is None else time,
            actor=actor,
            action=action,
            stage=stage,
            name=name,
            version=version,
            reason=reason,
            detail=dict(detail or {}),
        )
        row = dataclasses.asdict(event)
        del row["id"]
        pk = self._conn.execute(s.events.insert().values(**row)).inserted_primary_key
        assert pk is not None
        return dataclasses.replace(event, id=int(pk[0]))


class SQLCatalog:
    """The :class:`~package_storage.store.storage.base.Catalog` over a SQLAlchemy engine.

    Subclasses may override ``_write_connection`` / ``_read_connection`` (how transactions begin
    and hold the write lock), ``_before_commit`` (e.g. a change notification) and
    ``_integrity_problems`` (backend self-checks).

    Opening checks the schema (``migrations``): an empty database is created at the head
    (``create``, else NotFoundError) and seeded with the default stages; a schema older than the
    head is upgraded only with ``upgrade`` (``package-storage migrate``), otherwise refused like
    a newer one (SchemaVersionError naming the command to run). ``location`` names the store in
    those messages. After opening, ``created`` and ``migrated`` (revisions applied) tell what
    happened.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        server_version: str = __version__,
        create: bool = True,
        upgrade: bool = False,
        location: str | None = None,
    ) -> None:
        self._engine = engine
        self._server_version = server_version
        self.location = location or engine.url.render_as_string(hide_password=True)
        self.created = False
        self.migrated: list[str] = []
        self._schema_ready = False
        try:
            self._initialise(create=create, upgrade=upgrade)
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StorageError(f"cannot open catalog {self.location}: {one_line(exc)}") from exc
        except BaseException:
            engine.dispose()
            raise
        self._schema_ready = True

    @property
    def engine(self) -> Engine:
        return self._engine

    def _initialise(self, *, create: bool, upgrade: bool) -> None:
        with self._write_connection() as conn:
            state = migrations.schema_state(conn)
            if state.empty:
                if not create:
                    raise NotFoundError(
                        f"no package store at {self.location}: run `package-storage init"
                        f" --store {self.location}`"
                    )
                self.migrated = migrations.upgrade(conn)
                self.created = True
                tx = SQLTransaction(conn, self._server_version)
                tx.set_stages(StageGraph.default())
            elif upgrade and not state.current and not state.newer:
                self.migrated = migrations.upgrade(conn)
            else:
                migrations.check_current(state, self.location)

    # --- transaction plumbing (backend hooks) ----------------------------------------------

    def _write_connection(self) -> AbstractContextManager[Connection]:
        return self._locked_connection()

    @contextmanager
    def _locked_connection(self) -> Iterator[Connection]:
        """A connection in a transaction holding the store-wide write lock (portable form:
        a row lock on ``catalog_state``). While the schema is being created or migrated
        (``_schema_ready`` False) there is no row yet: a backend where several processes may
        initialise one database at once overrides this with its own lock (PostgreSQL:
        ``pg_advisory_xact_lock``)."""
        with self._engine.begin() as conn:
            if self._schema_ready:
                conn.execute(
                    select(s.catalog_state.c.change_seq)
                    .where(s.catalog_state.c.id == 1)
                    .with_for_update()
                )
            yield conn

    def _read_connection(self) -> AbstractContextManager[Connection]:
        return self._snapshot_connection()

    @contextmanager
    def _snapshot_connection(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn
            conn.rollback()

    def _integrity_problems(self, conn: Connection) -> list[str]:
        del conn
        return []

    def _before_commit(self, conn: Connection, tx: SQLTransaction) -> None:
        """Called inside a transaction that changed something, just before it commits."""
        del conn, tx

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        try:
            with self._write_connection() as conn:
                tx = SQLTransaction(conn, self._server_version)
                yield tx
                if tx.changed:
                    self._before_commit(conn, tx)
        except SQLAlchemyError as exc:
            raise StorageError(
                f"catalog transaction failed, nothing was changed: {one_line(exc)}"
            ) from exc

    def transaction(self) -> AbstractContextManager[Transaction]:
        return self._transaction()

    def write_connection(self) -> AbstractContextManager[Connection]:
        """The raw connection of a writing transaction (the store-wide write lock held,
        committed when the block ends, rolled back on an exception): for whole-table work
        below the record API (``transfer/copystore.py``)."""
        return self._write_connection()

    @contextmanager
    def _reader(self) -> Iterator[_Reader]:
        try:
            with self._read_connection() as conn:
                yield _Reader(conn)
        except SQLAlchemyError as exc:
            raise StorageError(f"catalog read failed: {one_line(exc)}") from exc

    # --- reads -----------------------------------------------------------------------------

    def stages(self) -> StageGraph:
        with self._reader() as r:
            return r.stages()

    def get_artifact(self, digest: str) -> ArtifactRecord | None:
        with self._reader() as r:
            return r.get_artifact(digest)

    def get_artifacts(self, digests: Iterable[str]) -> dict[str, ArtifactRecord]:
        with self._reader() as r:
            return r.get_artifacts(digests)

    def referenced_blobs(self) -> set[str]:
        with self._reader() as r:
            return r.referenced_blobs()

    def get_entry(self, stage: str, name: str, version: str) -> StageEntry | None:
        with self._reader() as r:
            return r.get_entry(stage, name, version)

    def entries(self, stage: str, name: str | None = None) -> list[StageEntry]:
        with self._reader() as r:
            return r.entries(stage, name)

    def find_entries(self, name: str, version: str | None = None) -> list[StageEntry]:
        with self._reader() as r:
            return r.find_entries(name, version)

    def distributions(self) -> dict[str, int | None]:
        with self._reader() as r:
            return r.distributions()

    def current_revision(self, distribution: str) -> Revision | None:
        with self._reader() as r:
            return r.current_revision(distribution)

    def revision(self, distribution: str, number: int) -> Revision:
        with self._reader() as r:
            return r.revision(distribution, number)

    def revision_entries(self, distribution: str, number: int) -> list[RevisionEntry]:
        with self._reader() as r:
            return r.revision_entries(distribution, number)

    def revision_changes(
        self, distribution: str, old: int, new: int, limit: int = _CHANGES_LIMIT
    ) -> list[tuple[str, str, RevisionEntry | None]] | None:
        with self._reader() as r:
            return r.revision_changes(distribution, old, new, limit)

    def revisions(self, distribution: str) -> list[Revision]:
        with self._reader() as r:
            return r.revisions(distribution)

    def revisions_by_commit(self, distribution: str, prefix: str) -> list[Revision]:
        with self._reader() as r:
            return r.revisions_by_commit(distribution, prefix)

    def tag(self, distribution: str, tag: str) -> Tag:
        with self._reader() as r:
            return r.tag(distribution, tag)

    def tags(self, distribution: str | None = None) -> list[Tag]:
        with self._reader() as r:
            return r.tags(distribution)

    def events(self, query: EventFilter | None = None) -> list[Event]:
        with self._reader() as r:
            return r.events(query)

    def change_counter(self) -> int:
        with self._reader() as r:
            return r.change_counter()

    def last_change(self) -> datetime | None:
        with self._reader() as r:
            return r.last_change()

    def tokens(self) -> list[TokenRecord]:
        with self._reader() as r:
            return r.tokens()

    def token(self, token_id: str) -> TokenRecord | None:
        with self._reader() as r:
            return r.token(token_id)

    def settings(self) -> dict[str, str]:
        """The store settings (``schema.settings``: e.g. ``blobs``)."""
        with self._reader() as r:
            return r.settings()

    # --- maintenance -----------------------------------------------------------------------

    def check(self, *, deep: bool = False) -> list[str]:
        problems: list[str] = []
        with self._read_connection() as conn:
            problems += self._integrity_problems(conn)
            if problems:
                return problems
            state = migrations.schema_state(conn)
            if not state.current:
                problems.append(
                    f"catalog schema is at {state.describe()}, expected revision"
                    f" {migrations.head()}"
                )
                return problems
            reader = _Reader(conn)
            seq = reader.change_counter()
            se, r, d = s.stage_entries, s.revisions, s.distributions
            top = conn.execute(
                select(
                    func.max(se.c.added_seq),
                    func.max(se.c.removed_seq),
                    select(func.max(r.c.seq)).scalar_subquery(),
                )
            ).one()
            for label, value in zip(("entry added", "entry removed", "revision"), top, strict=True):
                if value is not None and int(value) > seq:
                    problems.append(
                        f"{label} at change {value} is newer than the change counter {seq}"
                    )
            try:
                graph = reader.stages()
            except Exception as exc:
                problems.append(f"stage configuration is invalid: {exc}")
                return problems
            used = conn.execute(
                select(se.c.stage).where(se.c.removed_seq.is_(None)).distinct()
            ).scalars()
            for stage in sorted(set(used) - set(graph.names)):
                problems.append(f"stage {stage} has package versions but is not configured")
            for name, current in conn.execute(select(d.c.name, d.c.current_revision)):
                if current is None:
                    continue
                found = conn.execute(
                    select(r.c.number).where(r.c.distribution == name, r.c.number == current)
                ).first()
                if found is None:
                    problems.append(f"distribution {name} points at missing revision {current}")
            q = select(r)
            if not deep:
                q = q.join(
                    d, and_(d.c.name == r.c.distribution, d.c.current_revision == r.c.number)
                )
            for row in conn.execute(q.order_by(r.c.distribution, r.c.number)).all():
                resolved = reader._resolve(tuple(row.stages), int(row.seq))
                acc, count = accumulate((n, v, a) for (n, v), (a, _, _) in resolved.items())
                if revision_digest(acc, count) != row.digest or count != int(row._mapping["count"]):
                    problems.append(
                        f"revision {row.distribution}@{row.number} digest {row.digest} does not"
                        f" match its entries ({count} entries)"
                    )
        return problems

    def close(self) -> None:
        self._engine.dispose()


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout = 60000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
    finally:
        cur.close()


class SQLiteCatalog(SQLCatalog):
    """The embedded catalog: one SQLite file (``path``), created when new (``create``), its
    schema checked on open (see :class:`SQLCatalog`)."""

    def __init__(
        self,
        path: str | Path,
        *,
        server_version: str = __version__,
        create: bool = True,
        upgrade: bool = False,
        location: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # AUTOCOMMIT at the driver level: we issue BEGIN IMMEDIATE / BEGIN / COMMIT ourselves.
        engine = create_engine(f"sqlite:///{self.path}", isolation_level="AUTOCOMMIT")
        event.listen(engine, "connect", _sqlite_on_connect)
        super().__init__(
            engine,
            server_version=server_version,
            create=create,
            upgrade=upgrade,
            location=location or str(self.path),
        )

    def change_notifier(self) -> ChangeNotifier | None:
        """File-change events on the database and its write-ahead log (see ``filewatch``)."""
        return catalog_notifier(self.path)

    @contextmanager
    def _begin(self, statement: str) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.exec_driver_sql(statement)
            try:
                yield conn
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            try:
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise

    def _write_connection(self) -> AbstractContextManager[Connection]:
        return self._begin("BEGIN IMMEDIATE")

    def _read_connection(self) -> AbstractContextManager[Connection]:
        return self._begin("BEGIN")

    def _integrity_problems(self, conn: Connection) -> list[str]:
        problems = [
            f"sqlite integrity: {row[0]}"
            for row in conn.exec_driver_sql("PRAGMA integrity_check")
            if row[0] != "ok"
        ]
        for table, rowid, parent, _ in conn.exec_driver_sql("PRAGMA foreign_key_check"):
            problems.append(f"sqlite foreign key: {table} row {rowid} references missing {parent}")
        return problems
