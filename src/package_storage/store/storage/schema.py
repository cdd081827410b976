"""Catalog tables (SQLAlchemy Core 2), shared by SQLite and PostgreSQL.

Tables (see ``base.py`` for the model):

``schema_version``  one row, kept for package-storage before Alembic: the hand-written schema
                    version (3 at the Alembic baseline, 4 since; older code refuses a store
                    whose version it does not know).
``alembic_version`` (Alembic's) the revision the schema is at (``migrations/``).
``catalog_state``   one row: ``change_seq`` (sequence of the last committed change) and
                    ``changed_at``; writers lock this row (PostgreSQL) and servers poll it.
``settings``        key/value settings of the store, e.g. ``blobs`` (where its blobs live).
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

The tables here are what the code reads and writes; the schema of a database is made and
upgraded only by the Alembic migrations of ``migrations/`` (see its docstring: to change the
schema, edit the tables here *and* add a revision there; a test checks that the migrated
schema equals these tables on SQLite and PostgreSQL).

Nothing here names a PostgreSQL-only option (``postgresql_where=...``): SQLAlchemy imports its
whole PostgreSQL dialect to check such an option, in every process that imports this module
(issue 15: a ``publish`` on a directory store must not). The two partial unique indexes are
declared with their SQLite predicate; on PostgreSQL the migrations create them with the same
``WHERE`` (``versions/r0001_baseline_v3.py``), which a test checks on a real server.
"""

from __future__ import annotations

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
)
from sqlalchemy.types import TypeDecorator


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


def _key(length: int) -> String:
    """Names, versions and stage names: compared and sorted byte by byte on every backend
    (SQLite's default; PostgreSQL databases often default to a language collation)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


NAME = _key(255)
STAGE = _key(64)
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

settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# The keys of ``settings``.
SETTING_BLOBS = "blobs"
"""Where the blobs of the store live (a folder or ``s3://BUCKET/PREFIX``), set by ``init``."""

LEGACY_SCHEMA_VERSION = 4
"""``schema_version.version`` of every Alembic-managed store: higher than package-storage
before Alembic knew (3), so that older code refuses the store instead of writing into it."""

stages = Table(
    "stages",
    metadata,
    Column("name", STAGE, primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("overwrite", String(16), nullable=False),
    Column("remove", String(16), nullable=False),
    Column("frozen", Boolean, nullable=False),
    Column("sees", JSON, nullable=False),
    Column("promotes_to", STAGE, nullable=True),
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
    Column("stage", STAGE, nullable=False),
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
    sqlite_where=stage_entries.c.removed_seq.is_(None),  # (PostgreSQL too: see the docstring)
)
Index("ix_stage_entries_key", stage_entries.c.name, stage_entries.c.version)
Index("ix_stage_entries_added", stage_entries.c.stage, stage_entries.c.added_seq)
Index("ix_stage_entries_removed", stage_entries.c.stage, stage_entries.c.removed_seq)

distributions = Table(
    "distributions",
    metadata,
    Column("name", STAGE, primary_key=True),
    Column("current_revision", Integer, nullable=True),
)

revisions = Table(
    "revisions",
    metadata,
    Column("distribution", STAGE, ForeignKey("distributions.name"), primary_key=True),
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
    Column("distribution", STAGE, primary_key=True),
    Column("tag", _key(128), primary_key=True),
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
    Column("stage", STAGE, nullable=True),
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
    sqlite_where=tokens.c.revoked.is_(None),  # (PostgreSQL too: see the docstring)
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
