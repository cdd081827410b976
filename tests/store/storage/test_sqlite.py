"""SQLiteCatalog specifics: pragmas, schema on open, self-checks (migrations:
test_migrations.py)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from package_storage.store.stages import StageGraph
from package_storage.store.storage import migrations
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
    assert raw.execute("SELECT version_num FROM alembic_version").fetchone() == (migrations.head(),)
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
