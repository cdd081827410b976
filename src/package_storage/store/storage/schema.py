"""Catalog tables (SQLAlchemy Core 2), shared by SQLite and PostgreSQL, and their migrations.

Tables (see ``base.py`` for the model):

``schema_version``  one row: the schema version of the store.
``catalog_state``   one row: ``change_seq`` (sequence of the last committed change) and
                    ``changed_at``; writers lock this row (PostgreSQL) and servers poll it.
``stages``          the stage configuration (one row per stage; ``publish`` since v2).
``artifacts``       one row per stored zip (digest = blob digest).
``stage_entries``   temporal table of stage contents: a row is live from ``added_seq`` until
                    ``removed_seq`` (NULL while live). A partial unique index allows one live row
                    per (stage, name, version). ``yanked`` (v2): the version is hidden from
                    search and categories (still downloadable); yanking ends the row and adds a
                    yanked copy, so revisions keep what they showed.
``distributions``   one row per distribution with its current revision number.
``revisions``       immutable: (distribution, number), the change sequence it was taken at, the
                    stages it resolves, its digest, multiset accumulator and entry count;
                    ``git_commit`` (v2) the git commit a history import made it from.
``tags``            (distribution, tag) -> revision; unique, never updated or deleted.
``events``          the audit history.
``tokens``          management API tokens: name, scopes, expiry, revocation, the secret's hash.
``store_keys``      the store's OpenPGP keys: the signing key (protected, sealed or a file's
                    path: never in clear) and the trusted keys (``store/keyrecord.py``).

Migrations: a fresh database is created from the table definitions below and stamped with
:data:`SCHEMA_VERSION`. An existing database at version N gets every migration with a higher
version, in order, inside the caller's (write-locked) transaction. To change the schema: edit
the tables, bump ``SCHEMA_VERSION`` and append a :class:`Migration` that brings version
``SCHEMA_VERSION - 1`` to it. A store newer than the code is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

from package_storage.errors import StorageError


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


NAME = String(255)
DIGEST = String(64)

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
)

catalog_state = Table(
    "catalog_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("change_seq", BigInteger, nullable=False),
    Column("changed_at", UTCDateTime, nullable=True),
)

stages = Table(
    "stages",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("overwrite", String(16), nullable=False),
    Column("remove", String(16), nullable=False),
    Column("frozen", Boolean, nullable=False),
    Column("sees", JSON, nullable=False),
    Column("promotes_to", String(64), nullable=True),
    Column("publish", Boolean, nullable=True),  # v2; NULL: derived from the graph
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("name", NAME, nullable=False),
    Column("version", NAME, nullable=False),
    Column("signature_digest", DIGEST, nullable=True),
    Column("manifest", JSON, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Index("ix_artifacts_name_version", "name", "version"),
)

stage_entries = Table(
    "stage_entries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("stage", String(64), nullable=False),
    Column("name", NAME, nullable=False),
    Column("version", NAME, nullable=False),
    Column("artifact", DIGEST, ForeignKey("artifacts.digest"), nullable=False),
    Column("added_seq", BigInteger, nullable=False),
    Column("removed_seq", BigInteger, nullable=True),
    Column("added_at", UTCDateTime, nullable=False),
    Column("added_by", String(255), nullable=False),
    Column("yanked", Boolean, nullable=False, server_default=false()),  # v2
    sqlite_autoincrement=True,
)
# One live row per (stage, name, version).
Index(
    "uq_stage_entries_live",
    stage_entries.c.stage,
    stage_entries.c.name,
    stage_entries.c.version,
    unique=True,
    sqlite_where=stage_entries.c.removed_seq.is_(None),
    postgresql_where=stage_entries.c.removed_seq.is_(None),
)
Index("ix_stage_entries_key", stage_entries.c.name, stage_entries.c.version)
Index("ix_stage_entries_added", stage_entries.c.stage, stage_entries.c.added_seq)
Index("ix_stage_entries_removed", stage_entries.c.stage, stage_entries.c.removed_seq)

distributions = Table(
    "distributions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("current_revision", Integer, nullable=True),
)

revisions = Table(
    "revisions",
    metadata,
    Column("distribution", String(64), ForeignKey("distributions.name"), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("stages", JSON, nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("acc", DIGEST, nullable=False),
    Column("count", Integer, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("server_version", String(64), nullable=False),
    Column("git_commit", String(40), nullable=True),  # v2: the git commit a history import took
)
Index("ix_revisions_commit", revisions.c.distribution, revisions.c.git_commit)

tags = Table(
    "tags",
    metadata,
    Column("distribution", String(64), primary_key=True),
    Column("tag", String(128), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    ForeignKeyConstraint(
        ["distribution", "revision"], ["revisions.distribution", "revisions.number"]
    ),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("time", UTCDateTime, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("stage", String(64), nullable=True),
    Column("name", NAME, nullable=True),
    Column("version", NAME, nullable=True),
    Column("reason", Text, nullable=True),
    Column("detail", JSON, nullable=False),
    Index("ix_events_stage", "stage"),
    Index("ix_events_name_version", "name", "version"),
    sqlite_autoincrement=True,
)


# Management API tokens (``store/tokens.py``): the secret's hash only, never the secret.
tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("secret_hash", DIGEST, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("expires", UTCDateTime, nullable=True),
    Column("revoked", UTCDateTime, nullable=True),
    Column("revoked_by", String(255), nullable=True),
)
# One unrevoked token per name.
Index(
    "uq_tokens_live_name",
    tokens.c.name,
    unique=True,
    sqlite_where=tokens.c.revoked.is_(None),
    postgresql_where=tokens.c.revoked.is_(None),
)


# The store's OpenPGP keys (``store/keyrecord.py``): the signing key (at most one row) and
# trusted keys. ``public`` always; a signing key also ``secret`` (passphrase-protected or sealed
# with the passphrase: never in clear) or ``path`` (a key file the operator named).
store_keys = Table(
    "store_keys",
    metadata,
    Column("role", String(16), primary_key=True),
    Column("fingerprint", String(40), primary_key=True),
    Column("public", Text, nullable=False),
    Column("secret", Text, nullable=True),
    Column("path", Text, nullable=True),
    Column("created", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
)


# --- migrations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Migration:
    """Brings a store from ``version - 1`` to ``version``."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn, checkfirst=True)


def _create_tokens(conn: Connection) -> None:
    tokens.create(conn, checkfirst=True)
    for index in tokens.indexes:
        index.create(conn, checkfirst=True)


def _v2_stages_commits_yanks(conn: Connection) -> None:
    """v2: ``stages.publish`` (explicit publish setting), ``revisions.git_commit`` (the git commit
    of a revision made by a history import, indexed for ``dist@<commit>``) and
    ``stage_entries.yanked``."""
    columns = {
        table: {c["name"] for c in inspect(conn).get_columns(table)}
        for table in ("stages", "revisions", "stage_entries")
    }
    if "publish" not in columns["stages"]:
        conn.execute(text("ALTER TABLE stages ADD COLUMN publish BOOLEAN"))
    if "git_commit" not in columns["revisions"]:
        conn.execute(text("ALTER TABLE revisions ADD COLUMN git_commit VARCHAR(40)"))
    if "yanked" not in columns["stage_entries"]:
        conn.execute(
            text("ALTER TABLE stage_entries ADD COLUMN yanked BOOLEAN NOT NULL DEFAULT FALSE")
        )
    indexes = {i["name"] for i in inspect(conn).get_indexes("revisions")}
    if "ix_revisions_commit" not in indexes:
        next(i for i in revisions.indexes if i.name == "ix_revisions_commit").create(conn)


# Ordered; version 1 is the initial schema.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial catalog schema", _create_v1),
    Migration(
        2, "stage publish setting, revision commits, yanked entries", _v2_stages_commits_yanks
    ),
    Migration(3, "management API tokens", _create_tokens),
    Migration(
        4, "store keys in the catalog", lambda conn: store_keys.create(conn, checkfirst=True)
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def current_version(conn: Connection) -> int | None:
    """The store's schema version, or None when the database has no catalog yet."""
    if not inspect(conn).has_table(schema_version.name):
        return None
    row = conn.execute(select(schema_version.c.version).where(schema_version.c.id == 1)).first()
    return None if row is None else int(row[0])


def migrate(conn: Connection) -> bool:
    """Create or upgrade the schema on ``conn`` (inside the caller's locked transaction).

    Returns True when the database was created from scratch (the caller then seeds it).
    """
    now = datetime.now(UTC)
    version = current_version(conn)
    if version is None:
        metadata.create_all(conn, checkfirst=True)
        conn.execute(schema_version.insert().values(id=1, version=SCHEMA_VERSION, updated=now))
        conn.execute(catalog_state.insert().values(id=1, change_seq=0, changed_at=None))
        return True
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"catalog schema version {version} is newer than this server supports"
            f" ({SCHEMA_VERSION}): upgrade package-storage"
        )
    for migration in MIGRATIONS:
        if migration.version > version:
            migration.apply(conn)
            conn.execute(
                schema_version.update()
                .where(schema_version.c.id == 1)
                .values(version=migration.version, updated=now)
            )
    return False
