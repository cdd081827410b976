"""Schema migrations of the catalog (Alembic), the same for SQLite and PostgreSQL.

Revisions live in ``versions/`` (``rNNNN_<what>.py``, each naming its ``down_revision``); the
Alembic configuration is made here in code: no ``alembic.ini`` and no ``env.py`` at run time.
:func:`schema_state` reads where a database is, :func:`upgrade` brings it to :func:`head`
inside the caller's transaction (which holds the store's write lock, so two processes never
migrate one database at once), and :func:`check_current` refuses a database that is not at the
head with one line naming the command to run.

The baseline ``0001`` is schema 3 of package-storage before Alembic: a store made then (a
``schema_version`` row and no ``alembic_version`` table) is *older* than the head and is
adopted by ``package-storage migrate``, its rows untouched.

To change the schema: edit the tables in ``schema.py``, add ``versions/rNNNN_<what>.py``
with ``revision = "NNNN"`` and ``down_revision`` = the previous head, ``upgrade()`` and
``downgrade()`` written with ``alembic.op`` for both backends, and set :data:`HEAD` to
``"NNNN"``. Write the definitions out in the revision (never import ``schema.py`` there:
revisions are frozen history). ``tests/store/storage/test_migrations.py`` checks that upgrading
an empty database gives exactly the tables of ``schema.py`` on both backends, and that
:data:`HEAD` is Alembic's head of ``versions/``.

Alembic is imported only to migrate or to explain a schema that is not at the head: opening a
current store (every command but ``init`` and ``migrate``) reads the ``alembic_version`` row
and compares it with :data:`HEAD` (issue 15: a ``publish`` process does not pay for Alembic,
Mako and Pygments).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from package_storage.errors import SchemaVersionError

if TYPE_CHECKING:  # imported on use: see the module's docstring
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext, MigrationInfo
    from alembic.script import ScriptDirectory

SCRIPT_DIR = Path(__file__).parent
HEAD = "0003"
"""The revision this package-storage writes and expects: the head of ``versions/`` (the newest
``rNNNN_*.py``; a test checks that Alembic finds the same one)."""
VERSION_TABLE = "alembic_version"
"""Alembic's table of the applied revision (its default name, as our configuration leaves it)."""
LEGACY_TABLE = "schema_version"
LEGACY_BASELINE = 3
"""The hand-written schema version the Alembic baseline equals."""


@functools.cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_DIR))
    return config


def head() -> str:
    """The revision this package-storage writes and expects (:data:`HEAD`)."""
    return HEAD


def alembic_head() -> str:
    """The head of ``versions/`` as Alembic finds it (imports Alembic): :data:`HEAD` must be
    this one."""
    heads = _script().get_heads()
    assert len(heads) == 1, f"the migrations have {len(heads)} heads: merge them"
    return heads[0]


def known(revision: str) -> bool:
    """True when ``revision`` is one of ours (older or at the head)."""
    if revision == HEAD:
        return True
    from alembic.util.exc import CommandError

    try:
        return _script().get_revision(revision) is not None
    except CommandError:
        return False


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database's schema is: ``revision`` (Alembic's, None before Alembic),
    ``legacy`` (the hand-written ``schema_version``, None when there is no such table)."""

    revision: str | None
    legacy: int | None

    @property
    def empty(self) -> bool:
        """No catalog at all (a new database)."""
        return self.revision is None and self.legacy is None

    @property
    def current(self) -> bool:
        return self.revision == head()

    @property
    def newer(self) -> bool:
        """Written by a newer package-storage: never touched by this one."""
        if self.revision is not None:
            return not known(self.revision)
        return self.legacy is not None and self.legacy > LEGACY_BASELINE

    def describe(self) -> str:
        if self.revision is not None:
            return f"revision {self.revision}"
        if self.legacy is not None:
            return f"schema {self.legacy} (before Alembic)"
        return "no schema"


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in the database on ``conn`` (None before Alembic), read as
    Alembic's ``MigrationContext.get_current_revision`` reads it, without importing Alembic
    unless the table holds more than one row (then Alembic's own refusal is raised)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()
    return str(rows[0]) if rows else None


def schema_state(conn: Connection) -> SchemaState:
    revision = current_revision(conn)
    legacy = None
    if inspect(conn).has_table(LEGACY_TABLE):
        value = conn.execute(text(f"SELECT version FROM {LEGACY_TABLE} WHERE id = 1")).scalar()
        legacy = None if value is None else int(value)
    return SchemaState(revision, legacy)


def check_current(state: SchemaState, location: str) -> None:
    """Refuse a schema older or newer than :func:`head` (SchemaVersionError, one line)."""
    if state.current:
        return
    if state.newer:
        raise SchemaVersionError(
            f"store {location}: its catalog is at {state.describe()}, newer than this"
            f" package-storage knows (up to revision {head()}): upgrade package-storage"
        )
    raise SchemaVersionError(
        f"store {location}: its catalog is at {state.describe()}, older than this"
        f" package-storage (revision {head()}): run `package-storage migrate --store"
        f" {location}`"
    )


def upgrade(conn: Connection) -> list[str]:
    """Bring the schema on ``conn`` to the head inside the caller's transaction; returns the
    revisions applied, oldest first. A newer schema is refused (SchemaVersionError)."""
    from alembic.runtime.environment import EnvironmentContext

    state = schema_state(conn)
    if state.newer:
        check_current(state, str(conn.engine.url.render_as_string(hide_password=True)))
    script = _script()
    applied: list[str] = []

    def steps(rev: object, _context: MigrationContext) -> object:
        return script._upgrade_revs("head", rev)  # type: ignore[arg-type]

    def note(
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: Collection[Any],
        run_args: Mapping[str, Any],
    ) -> None:
        del ctx, heads, run_args
        applied.extend(step.up_revision_ids)

    with EnvironmentContext(_config(), script, fn=steps) as env:
        env.configure(connection=conn, on_version_apply=note)
        with env.begin_transaction():
            env.run_migrations()
    return applied


__all__ = [
    "HEAD",
    "SchemaState",
    "alembic_head",
    "check_current",
    "current_revision",
    "head",
    "known",
    "schema_state",
    "upgrade",
]
