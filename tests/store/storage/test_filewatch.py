"""FileChangeNotifier: file-change events on a catalog's files wake a waiting reader."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from package_storage.store.storage.filewatch import FileChangeNotifier, catalog_notifier
from package_storage.store.storage.sqlite import SQLiteCatalog


def wait_woken(notifier: FileChangeNotifier, limit: float = 10.0) -> bool:
    """True when the notifier woke within ``limit`` seconds (a hang guard, not a timing)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if notifier.wait(0.2):
            return True
    return False


def test_a_write_to_a_watched_file_wakes_the_reader(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    db.write_bytes(b"")
    notifier = catalog_notifier(db)
    assert notifier is not None
    try:
        assert notifier.active()
        # events may take a moment to be armed: write until one is seen (bounded)
        for _ in range(20):
            with (tmp_path / "catalog.db-wal").open("ab") as f:
                f.write(b"frame")
            if wait_woken(notifier, 0.5):
                break
        else:
            pytest.fail("no event for a write to the write-ahead log")
    finally:
        notifier.close()
    assert not notifier.active()
    assert notifier.wait(0) is True  # closing wakes a waiter


def test_a_catalog_commit_from_another_connection_wakes_the_reader(tmp_path: Path) -> None:
    catalog = SQLiteCatalog(tmp_path / "catalog.db")
    writer = SQLiteCatalog(tmp_path / "catalog.db")
    notifier = catalog.change_notifier()
    assert notifier is not None
    try:
        before = catalog.change_counter()
        for _ in range(20):
            with writer.transaction() as tx:
                tx.record_event("publish", actor="test", stage="snapshot")
            if wait_woken(notifier, 0.5):
                break
        else:
            pytest.fail("no event for a commit")
        assert catalog.change_counter() > before
    finally:
        notifier.close()
        writer.close()
        catalog.close()


def test_files_of_several_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one folder"):
        FileChangeNotifier([tmp_path / "a", tmp_path / "sub" / "b"])
