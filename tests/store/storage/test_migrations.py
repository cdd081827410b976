"""Alembic migrations of the catalog (``store/storage/migrations``) on SQLite and PostgreSQL:
the migrated schema is exactly ``schema.py``'s, a store made by package-storage before Alembic
(schema 3, ``data/v3_store.sql``, dumped from a store the hand-written code made) is refused
until ``migrate`` and then keeps every row, and older or newer schemas are refused with the
command to run."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from package_storage.errors import NotFoundError, SchemaVersionError
from package_storage.store.stages import StageGraph
from package_storage.store.storage import migrations, schema
from package_storage.store.storage.postgres import PostgresCatalog
from package_storage.store.storage.sqlite import SQLCatalog, SQLiteCatalog
from pg_server import temporary_database

V3_DUMP = Path(__file__).parent / "data" / "v3_store.sql"

# What the store of V3_DUMP held when the hand-written code made it (read back from that code).
V3_DIGESTS = {
    "production": "46abb5e62948100e4d331c046343e141320235d19dc8dcf180ea2ee38b08c5a0",
    "snapshot": "f04af872f3edb824adda3f1a65cf859c7c68c8ffe5e82cd64d68e1bb69768516",
    "staging": "46abb5e62948100e4d331c046343e141320235d19dc8dcf180ea2ee38b08c5a0",
}


def v3_store(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = sqlite3.connect(path)
    raw.executescript(V3_DUMP.read_text())
    raw.close()
    return path


def dump(path: Path) -> list[str]:
    raw = sqlite3.connect(path)
    try:
        return list(raw.iterdump())
    finally:
        raw.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., SQLCatalog]]:
    """Opens the test's catalog (fresh per test) with the given keyword arguments."""
    if request.param == "sqlite":
        path = tmp_path / "catalog.db"
        yield lambda **kw: SQLiteCatalog(path, **kw)
        return
    with temporary_database("ps_migrations") as url:
        yield lambda **kw: PostgresCatalog(url, **kw)


def test_migrated_schema_is_the_tables_of_schema_py(opener: Callable[..., SQLCatalog]) -> None:
    cat = opener()
    assert cat.created and cat.migrated == ["0001", "0002", "0003"]
    with cat.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
        version = conn.execute(text("SELECT version FROM schema_version")).scalar()
    assert diff == []
    assert version == schema.LEGACY_SCHEMA_VERSION
    assert cat.stages() == StageGraph.default()
    assert cat.settings() == {}
    assert cat.check(deep=True) == []
    cat.close()


def test_the_head_constant_is_alembics_head() -> None:
    """``migrations.HEAD`` (what opening a store compares with, without importing Alembic) is
    the head Alembic finds in ``versions/``: adding a revision means changing it too."""
    assert migrations.head() == migrations.HEAD == migrations.alembic_head()
    assert migrations.known(migrations.HEAD)
    assert migrations.known("0001") and not migrations.known("9999")


def test_the_recorded_revision_is_read_as_alembic_reads_it(
    opener: Callable[..., SQLCatalog],
) -> None:
    cat = opener()
    with cat.engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.HEAD
        assert migrations.current_revision(conn) == (
            MigrationContext.configure(conn).get_current_revision()
        )
    with cat.engine.begin() as conn:  # two rows (unmerged branches): Alembic's own refusal
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0002')"))
    with cat.engine.connect() as conn, pytest.raises(Exception, match="more than one head"):
        migrations.current_revision(conn)
    with cat.engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    with cat.engine.connect() as conn:
        assert migrations.current_revision(conn) is None
        conn.execute(text("DROP TABLE alembic_version"))
        assert migrations.current_revision(conn) is None
    cat.close()


def test_the_live_row_indexes_are_partial_on_both_backends(
    opener: Callable[..., SQLCatalog],
) -> None:
    """One live row per (stage, name, version) and one unrevoked token per name: the
    migrations make these unique indexes partial on SQLite and PostgreSQL alike (schema.py
    declares only the SQLite predicate: naming a PostgreSQL option there would import the
    PostgreSQL dialect into every process)."""
    cat = opener()
    with cat.engine.connect() as conn:
        found = {
            index["name"]: index
            for table in ("stage_entries", "tokens")
            for index in inspect(conn).get_indexes(table)
        }
        dialect = conn.dialect.name
    cat.close()
    for name, column in (
        ("uq_stage_entries_live", "removed_seq"),
        ("uq_tokens_live_name", "revoked"),
    ):
        index = found[name]
        assert index["unique"]
        where = str(index.get("dialect_options", {}).get(f"{dialect}_where", ""))
        assert column in where and "null" in where.lower(), (name, index)


def test_an_empty_database_is_not_a_store_without_create(
    opener: Callable[..., SQLCatalog],
) -> None:
    with pytest.raises(NotFoundError, match="run `package-storage init --store"):
        opener(create=False)


def test_reopening_a_current_store_changes_nothing(opener: Callable[..., SQLCatalog]) -> None:
    cat = opener()
    counter = cat.change_counter()
    cat.close()
    again = opener(create=False, upgrade=True)
    assert (again.created, again.migrated) == (False, [])
    assert again.change_counter() == counter
    again.close()


def _set_revision(cat: SQLCatalog, revision: str) -> None:
    with cat.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def test_a_newer_schema_is_refused_even_by_migrate(opener: Callable[..., SQLCatalog]) -> None:
    cat = opener()
    _set_revision(cat, "9999")
    cat.close()
    for kwargs in ({}, {"upgrade": True}):
        with pytest.raises(SchemaVersionError, match=r"newer than this package-storage.*upgrade"):
            opener(**kwargs)


def test_an_older_schema_is_refused_with_the_migrate_command(
    opener: Callable[..., SQLCatalog],
) -> None:
    cat = opener()
    location = cat.location
    with cat.engine.begin() as conn:  # back to the baseline
        conn.execute(text("DROP TABLE settings"))
        conn.execute(text("DROP TABLE store_keys"))
    _set_revision(cat, "0001")
    cat.close()
    with pytest.raises(SchemaVersionError) as refused:
        opener()
    assert str(refused.value) == (
        f"store {location}: its catalog is at revision 0001, older than this package-storage"
        f" (revision {migrations.head()}): run `package-storage migrate --store {location}`"
    )
    assert "\n" not in str(refused.value)
    upgraded = opener(upgrade=True)
    assert upgraded.migrated == ["0002", "0003"]
    with upgraded.transaction() as tx:
        tx.set_setting(schema.SETTING_BLOBS, "/srv/blobs")
    assert upgraded.settings() == {"blobs": "/srv/blobs"}
    upgraded.close()


def test_a_v3_store_of_the_hand_written_code_is_adopted_without_loss(tmp_path: Path) -> None:
    db = v3_store(tmp_path / "store" / "catalog.db")
    before = dump(db)
    with pytest.raises(SchemaVersionError, match=r"schema 3 \(before Alembic\).*migrate"):
        SQLiteCatalog(db)
    assert dump(db) == before  # refusing wrote nothing
    cat = SQLiteCatalog(db, upgrade=True)
    assert cat.migrated == ["0001", "0002", "0003"]
    assert not cat.created
    assert cat.check(deep=True) == []
    assert {d: cat.current_revision(d).digest for d in cat.distributions()} == V3_DIGESTS  # type: ignore[union-attr]
    assert [e.action for e in cat.events()] == ["publish"] * 3 + ["promote", "yank"]
    assert [t.tag for t in cat.tags("production")] == ["v1"]
    assert [t.name for t in cat.tokens()] == ["ci"]
    assert cat.revisions_by_commit("production", "0123456")[0].number == 1
    assert [e.yanked for e in cat.entries("snapshot")] == [True, False]
    assert cat.change_counter() == 4
    assert cat.get_artifact(cat.entries("production")[0].artifact).signature_digest  # type: ignore[union-attr]
    with cat.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
    with cat.transaction() as tx:  # and it takes changes as a new store does
        tx.set_yanked("snapshot", "apache", "1.0.1", False)
        tx.new_revision("snapshot")
    assert cat.check(deep=True) == []
    cat.close()
    again = SQLiteCatalog(db, create=False)
    assert again.change_counter() == 5
    again.close()


def test_a_v1_store_is_brought_to_the_head(tmp_path: Path) -> None:
    """Schema 1 (before the publish, git_commit and yanked columns and the tokens table)."""
    db = v3_store(tmp_path / "catalog.db")
    raw = sqlite3.connect(db)
    raw.execute("DROP INDEX ix_revisions_commit")
    raw.execute("UPDATE stage_entries SET yanked = 0")
    for table, column in (
        ("stages", "publish"),
        ("revisions", "git_commit"),
        ("stage_entries", "yanked"),
    ):
        raw.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    raw.execute("DROP TABLE tokens")
    raw.execute("UPDATE schema_version SET version = 1")
    raw.commit()
    raw.close()
    cat = SQLiteCatalog(db, upgrade=True)
    assert cat.check(deep=True) == []
    assert cat.stages() == StageGraph.default()
    assert cat.tokens() == []
    with cat.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
    cat.close()


def test_a_legacy_schema_newer_than_3_is_refused(tmp_path: Path) -> None:
    db = v3_store(tmp_path / "catalog.db")
    raw = sqlite3.connect(db)
    raw.execute("UPDATE schema_version SET version = 7")
    raw.commit()
    raw.close()
    with pytest.raises(SchemaVersionError, match=r"schema 7.*newer"):
        SQLiteCatalog(db, upgrade=True)


def test_concurrent_creation_on_postgresql_creates_once() -> None:
    """Several processes' first open of one empty database: the advisory lock lets one
    create the schema; the others find it current."""
    with temporary_database("ps_migrations") as url:
        errors: list[BaseException] = []
        created: list[bool] = []

        def open_close() -> None:
            try:
                cat = PostgresCatalog(url)
                created.append(cat.created)
                cat.close()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_close) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(created) == [False, False, False, True]
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM stages")).scalar() == 3
        engine.dispose()
