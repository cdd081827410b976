"""SQLiteCatalog and schema specifics: pragmas, migrations, self-checks."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from package_storage.errors import StorageError
from package_storage.store.stages import StageGraph
from package_storage.store.storage import schema
from package_storage.store.storage.base import ArtifactRecord, content_digest
from package_storage.store.storage.sqlite import SQLiteCatalog


def digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "catalog.db"


def populate(cat: SQLiteCatalog) -> None:
    with cat.transaction() as tx:
        for i in range(3):
            d = digest(f"p{i}")
            tx.add_artifact(ArtifactRecord(d, 1, "pkg", f"1.0.{i}"))
            tx.put_entry("production", "pkg", f"1.0.{i}", d, actor="t")
        for dist in tx.stages().distributions():
            tx.new_revision(dist)


def test_pragmas_and_schema_version(db: Path) -> None:
    cat = SQLiteCatalog(db)
    with cat.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 1000
    cat.close()
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT version FROM schema_version").fetchone() == (schema.SCHEMA_VERSION,)
    raw.close()


def test_newer_schema_is_refused(db: Path) -> None:
    SQLiteCatalog(db).close()
    raw = sqlite3.connect(db)
    raw.execute("UPDATE schema_version SET version = 999")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError, match="schema version 999 is newer than this server"):
        SQLiteCatalog(db)


def test_migrations_run_in_order(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SQLiteCatalog(db).close()
    applied: list[int] = []
    base = schema.SCHEMA_VERSION

    def step(version: int) -> schema.Migration:
        return schema.Migration(version, f"step {version}", lambda conn: applied.append(version))

    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, step(base + 1), step(base + 2)))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", base + 2)
    cat = SQLiteCatalog(db)
    cat.close()
    assert applied == [base + 1, base + 2]
    SQLiteCatalog(db).close()
    assert applied == [base + 1, base + 2]  # not applied twice
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT version FROM schema_version").fetchone() == (base + 2,)
    raw.close()


def test_a_version_1_store_is_migrated_on_open_and_keeps_its_content(db: Path) -> None:
    """A store written before schema 2 (no publish, git_commit, yanked columns) opens: the
    migration adds them, and entries, revisions and events stay as they were."""
    cat = SQLiteCatalog(db)
    digest = "ab" * 32
    with cat.transaction() as tx:
        tx.add_artifact(ArtifactRecord(digest, 3, "apache", "1.0.0"))
        tx.put_entry("production", "apache", "1.0.0", digest, actor="old")
        tx.record_event("publish", actor="old", stage="production", name="apache")
        for dist in tx.stages().affected_distributions("production"):
            tx.new_revision(dist)
    before = (cat.revision_entries("production", 1), cat.revision("production", 1).digest)
    cat.close()
    raw = sqlite3.connect(db)  # turn it into a version 1 store
    raw.execute("DROP INDEX ix_revisions_commit")
    for table, column in (
        ("stages", "publish"),
        ("revisions", "git_commit"),
        ("stage_entries", "yanked"),
    ):
        raw.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    raw.execute("UPDATE schema_version SET version = 1")
    raw.commit()
    assert "yanked" not in {r[1] for r in raw.execute("PRAGMA table_info(stage_entries)")}
    raw.close()
    again = SQLiteCatalog(db)
    assert (again.revision_entries("production", 1), again.revision("production", 1).digest) == (
        before
    )
    assert again.stages() == StageGraph.default()
    assert [e.actor for e in again.events()] == ["old"]
    assert again.check(deep=True) == []
    with again.transaction() as tx:  # the new columns work
        tx.set_yanked("production", "apache", "1.0.0", True)
        tx.new_revision("production", commit="0123456789abcdef0123456789abcdef01234567")
    assert [e.yanked for e in again.revision_entries("production", 2)] == [True]
    assert again.revisions_by_commit("production", "0123456")[0].number == 2
    again.close()
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT version FROM schema_version").fetchone() == (schema.SCHEMA_VERSION,)
    raw.close()


def test_default_stages_seeded_once(db: Path) -> None:
    cat = SQLiteCatalog(db)
    custom = StageGraph.default().with_frozen_stage("production-7.9")
    with cat.transaction() as tx:
        tx.set_stages(custom)
    cat.close()
    again = SQLiteCatalog(db)
    assert again.stages() == custom
    again.close()


def test_concurrent_open_of_a_fresh_store(db: Path) -> None:
    errors: list[BaseException] = []

    def open_close() -> None:
        try:
            SQLiteCatalog(db).close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cat = SQLiteCatalog(db)
    assert cat.stages() == StageGraph.default()
    assert cat.check() == []
    cat.close()


def test_check_finds_a_tampered_digest(db: Path) -> None:
    cat = SQLiteCatalog(db)
    populate(cat)
    assert cat.check(deep=True) == []
    raw = sqlite3.connect(db)
    raw.execute("UPDATE revisions SET digest = ? WHERE distribution = 'staging'", ("0" * 64,))
    raw.commit()
    raw.close()
    problems = cat.check()
    assert len(problems) == 1
    assert problems[0].startswith("revision staging@1 digest 0000")
    cat.close()


def test_check_finds_a_dangling_pointer_and_a_bad_counter(db: Path) -> None:
    cat = SQLiteCatalog(db)
    populate(cat)
    raw = sqlite3.connect(db)
    raw.execute("UPDATE distributions SET current_revision = 5 WHERE name = 'snapshot'")
    raw.execute("UPDATE catalog_state SET change_seq = 0")
    raw.commit()
    raw.close()
    problems = cat.check()
    assert "distribution snapshot points at missing revision 5" in problems
    assert any("newer than the change counter 0" in p for p in problems)
    cat.close()


def test_check_finds_a_rewritten_history_row(db: Path) -> None:
    cat = SQLiteCatalog(db)
    populate(cat)
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA foreign_keys = ON")
    raw.execute("DELETE FROM stage_entries WHERE version = '1.0.1'")
    raw.commit()
    raw.close()
    problems = cat.check()
    assert len(problems) == 3  # the current revision of every distribution
    cat.close()


def test_revision_digest_is_the_content_digest(db: Path) -> None:
    cat = SQLiteCatalog(db)
    populate(cat)
    rev = cat.current_revision("snapshot")
    assert rev is not None
    assert rev.digest == content_digest(("pkg", f"1.0.{i}", digest(f"p{i}")) for i in range(3))
    cat.close()
