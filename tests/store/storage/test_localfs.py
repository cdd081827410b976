"""LocalBlobStore specifics: sharded layout, temp files, damaged blobs."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from package_storage.errors import StorageError
from package_storage.store.storage.localfs import LocalBlobStore


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def test_sharded_layout(store: LocalBlobStore) -> None:
    digest = store.put(b"hello")
    path = store.root / digest[:2] / digest[2:4] / digest
    assert store.path_for(digest) == path
    assert path.read_bytes() == b"hello"
    assert path.stat().st_mode & 0o777 == 0o444
    assert store.size(digest) == 5


def test_partial_temp_files_are_invisible(store: LocalBlobStore) -> None:
    real = store.put(b"complete")
    data = b"half of a zip"
    digest = hashlib.sha256(data).hexdigest()
    # What a crash in the middle of put leaves behind.
    (store.root / "tmp" / "0123.part").write_bytes(data[:4])
    # A stray file with a digest-like name outside the shard layout, and a truncated shard file
    # name: neither is a blob.
    (store.root / digest).write_bytes(data)
    shard = store.root / digest[:2] / digest[2:4]
    shard.mkdir(parents=True)
    (shard / (digest[:-1])).write_bytes(data)
    (shard / (digest + ".part")).write_bytes(data)
    assert list(store.iter_digests()) == [real]
    assert not store.exists(digest)
    assert [p.name for p in store.temp_files()] == ["0123.part"]


def test_cleanup_temp(store: LocalBlobStore) -> None:
    old = store.root / "tmp" / "old.part"
    new = store.root / "tmp" / "new.part"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert store.cleanup_temp(older_than=3600) == 1
    assert store.temp_files() == [new]


def test_successful_puts_leave_no_temp_files(store: LocalBlobStore, tmp_path: Path) -> None:
    store.put(b"a")
    src = tmp_path / "f"
    src.write_bytes(b"b" * 100)
    store.put_file(src)
    assert store.temp_files() == []


def test_damaged_blob_fails_verify_and_put_repairs_it(store: LocalBlobStore) -> None:
    digest = store.put(b"original bytes")
    path = store.path_for(digest)
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(b"rotten")
    assert not store.verify(digest)
    assert store.put(b"original bytes") == digest
    assert store.verify(digest)


def test_delete_prunes_empty_shards(store: LocalBlobStore) -> None:
    digest = store.put(b"lonely")
    store.delete(digest)
    assert not (store.root / digest[:2]).exists()
    assert (store.root / "tmp").is_dir()


def test_write_errors_are_storage_errors(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(StorageError, match=r"cannot write blob .*No space left"):
        store.put(b"data")
    assert store.temp_files() == []
    assert list(store.iter_digests()) == []
