"""Baseline: the catalog schema 3 of package-storage before Alembic.

A fresh database gets the tables as they were at schema 3. A store made before Alembic (a
``schema_version`` table and no ``alembic_version``) is adopted: schema 1 and 2 stores get the
columns, index and table added since (what the hand-written migrations did), a schema 3 store
is left as it is; either way its rows are untouched. The definitions are frozen here on purpose:
later changes of ``schema.py`` come with their own revision.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_TIME = sa.DateTime(timezone=True)
_DIGEST = sa.String(64)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _key(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _create_tokens() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("secret_hash", _DIGEST, nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("expires", _TIME, nullable=True),
        sa.Column("revoked", _TIME, nullable=True),
        sa.Column("revoked_by", sa.String(255), nullable=True),
    )
    op.create_index(
        "uq_tokens_live_name",
        "tokens",
        ["name"],
        unique=True,
        sqlite_where=sa.text("revoked IS NULL"),
        postgresql_where=sa.text("revoked IS NULL"),
    )


def _create() -> None:
    op.create_table(
        "schema_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated", _TIME, nullable=False),
    )
    op.create_table(
        "catalog_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", _TIME, nullable=True),
    )
    op.create_table(
        "stages",
        sa.Column("name", _key(64), primary_key=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("overwrite", sa.String(16), nullable=False),
        sa.Column("remove", sa.String(16), nullable=False),
        sa.Column("frozen", sa.Boolean(), nullable=False),
        sa.Column("sees", sa.JSON(), nullable=False),
        sa.Column("promotes_to", _key(64), nullable=True),
        sa.Column("publish", sa.Boolean(), nullable=True),
    )
    op.create_table(
        "artifacts",
        sa.Column("digest", _DIGEST, primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("name", _key(255), nullable=False),
        sa.Column("version", _key(255), nullable=False),
        sa.Column("signature_digest", _DIGEST, nullable=True),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("created", _TIME, nullable=False),
    )
    op.create_index("ix_artifacts_name_version", "artifacts", ["name", "version"])
    op.create_table(
        "stage_entries",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("stage", _key(64), nullable=False),
        sa.Column("name", _key(255), nullable=False),
        sa.Column("version", _key(255), nullable=False),
        sa.Column("artifact", _DIGEST, sa.ForeignKey("artifacts.digest"), nullable=False),
        sa.Column("added_seq", sa.BigInteger(), nullable=False),
        sa.Column("removed_seq", sa.BigInteger(), nullable=True),
        sa.Column("added_at", _TIME, nullable=False),
        sa.Column("added_by", sa.String(255), nullable=False),
        sa.Column("yanked", sa.Boolean(), nullable=False, server_default=sa.false()),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "uq_stage_entries_live",
        "stage_entries",
        ["stage", "name", "version"],
        unique=True,
        sqlite_where=sa.text("removed_seq IS NULL"),
        postgresql_where=sa.text("removed_seq IS NULL"),
    )
    op.create_index("ix_stage_entries_key", "stage_entries", ["name", "version"])
    op.create_index("ix_stage_entries_added", "stage_entries", ["stage", "added_seq"])
    op.create_index("ix_stage_entries_removed", "stage_entries", ["stage", "removed_seq"])
    op.create_table(
        "distributions",
        sa.Column("name", _key(64), primary_key=True),
        sa.Column("current_revision", sa.Integer(), nullable=True),
    )
    op.create_table(
        "revisions",
        sa.Column("distribution", _key(64), sa.ForeignKey("distributions.name"), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("digest", _DIGEST, nullable=False),
        sa.Column("acc", _DIGEST, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.Column("server_version", sa.String(64), nullable=False),
        sa.Column("git_commit", sa.String(40), nullable=True),
    )
    op.create_index("ix_revisions_commit", "revisions", ["distribution", "git_commit"])
    op.create_table(
        "tags",
        sa.Column("distribution", _key(64), primary_key=True),
        sa.Column("tag", _key(128), primary_key=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["distribution", "revision"], ["revisions.distribution", "revisions.number"]
        ),
    )
    op.create_table(
        "events",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("time", _TIME, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("stage", _key(64), nullable=True),
        sa.Column("name", _key(255), nullable=True),
        sa.Column("version", _key(255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_stage", "events", ["stage"])
    op.create_index("ix_events_name_version", "events", ["name", "version"])
    _create_tokens()
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # as schema.UTCDateTime stores it there
    op.bulk_insert(
        sa.table(
            "schema_version",
            sa.column("id", sa.Integer()),
            sa.column("version", sa.Integer()),
            sa.column("updated", _TIME),
        ),
        [{"id": 1, "version": 3, "updated": now}],
    )
    op.bulk_insert(
        sa.table(
            "catalog_state",
            sa.column("id", sa.Integer()),
            sa.column("change_seq", sa.BigInteger()),
            sa.column("changed_at", _TIME),
        ),
        [{"id": 1, "change_seq": 0, "changed_at": None}],
    )


def _adopt(version: int) -> None:
    """Bring a hand-written schema 1 or 2 store to schema 3 (idempotent steps)."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if version < 2:
        columns = {
            table: {c["name"] for c in inspector.get_columns(table)}
            for table in ("stages", "revisions", "stage_entries")
        }
        if "publish" not in columns["stages"]:
            op.add_column("stages", sa.Column("publish", sa.Boolean(), nullable=True))
        if "git_commit" not in columns["revisions"]:
            op.add_column("revisions", sa.Column("git_commit", sa.String(40), nullable=True))
        if "yanked" not in columns["stage_entries"]:
            op.add_column(
                "stage_entries",
                sa.Column("yanked", sa.Boolean(), nullable=False, server_default=sa.false()),
            )
        if "ix_revisions_commit" not in {i["name"] for i in inspector.get_indexes("revisions")}:
            op.create_index("ix_revisions_commit", "revisions", ["distribution", "git_commit"])
    if version < 3 and not inspector.has_table("tokens"):
        _create_tokens()
    op.execute(sa.text("UPDATE schema_version SET version = 3 WHERE id = 1"))


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("schema_version"):
        _create()
        return
    version = bind.execute(sa.text("SELECT version FROM schema_version WHERE id = 1")).scalar()
    _adopt(int(version or 1))


def downgrade() -> None:
    for table in (
        "tokens",
        "events",
        "tags",
        "revisions",
        "distributions",
        "stage_entries",
        "artifacts",
        "stages",
        "catalog_state",
        "schema_version",
    ):
        op.drop_table(table)
