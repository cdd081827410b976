"""Blob store contract: runs against every blob store backend (see conftest.py)."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from package_storage.errors import InvalidInputError, NotFoundError
from package_storage.store.storage.base import BlobStore

from .conftest import BlobStoreFactory
from .workers import put_blobs_forever, put_file_from

SPAWN = multiprocessing.get_context("spawn")


def test_put_get_round_trip(blobs: BlobStore) -> None:
    assert isinstance(blobs, BlobStore)
    data = b"PK\x03\x04 some zip bytes"
    digest = blobs.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert blobs.exists(digest)
    assert blobs.get(digest) == data
    with blobs.open(digest) as fh:
        assert fh.read() == data
    assert blobs.verify(digest)
    path = blobs.path_for(digest)
    if path is not None:
        assert path.read_bytes() == data


def test_put_is_idempotent(blobs: BlobStore) -> None:
    first = blobs.put(b"same")
    second = blobs.put(b"same")
    assert first == second
    assert list(blobs.iter_digests()) == [first]


def test_empty_and_large_blobs(blobs: BlobStore, tmp_path: Path) -> None:
    empty = blobs.put(b"")
    assert blobs.get(empty) == b""
    big = os.urandom(3 << 20)
    source = tmp_path / "big.zip"
    source.write_bytes(big)
    digest, size = blobs.put_file(source)
    assert (digest, size) == (hashlib.sha256(big).hexdigest(), len(big))
    assert blobs.get(digest) == big
    assert blobs.put(big) == digest
    assert sorted(blobs.iter_digests()) == sorted({empty, digest})


def test_missing_blobs(blobs: BlobStore, tmp_path: Path) -> None:
    missing = hashlib.sha256(b"nothing").hexdigest()
    assert not blobs.exists(missing)
    assert not blobs.verify(missing)
    assert blobs.path_for(missing) is None
    with pytest.raises(NotFoundError, match=missing):
        blobs.get(missing)
    with pytest.raises(NotFoundError):
        blobs.open(missing)
    assert blobs.delete(missing) is False
    with pytest.raises(NotFoundError):
        blobs.put_file(tmp_path / "does-not-exist.zip")


def test_delete(blobs: BlobStore) -> None:
    keep = blobs.put(b"keep")
    gone = blobs.put(b"gone")
    assert blobs.delete(gone) is True
    assert not blobs.exists(gone)
    assert blobs.delete(gone) is False
    assert list(blobs.iter_digests()) == [keep]
    assert blobs.put(b"gone") == gone  # can come back
    assert blobs.exists(gone)


@pytest.mark.parametrize("bad", ["", "abc", "../../etc/passwd", "A" * 64, "g" * 64, "0" * 65])
def test_bad_digests_are_refused(blobs: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidInputError, match="is not a sha256"):
        blobs.get(bad)
    with pytest.raises(InvalidInputError):
        blobs.exists(bad)


def test_many_blobs_listed(blobs: BlobStore) -> None:
    digests = {blobs.put(f"blob {i}".encode()) for i in range(50)}
    assert set(blobs.iter_digests()) == digests


def test_kill_during_put_leaves_only_complete_blobs(blob_factory: BlobStoreFactory) -> None:
    store = blob_factory()
    started = SPAWN.Event()
    proc = SPAWN.Process(target=put_blobs_forever, args=(blob_factory, started))
    proc.start()
    try:
        assert started.wait(60)
        proc.join(0.5)
    finally:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    digests = list(store.iter_digests())
    assert digests
    for digest in digests:
        assert store.verify(digest), f"partial blob {digest} is visible"
        assert store.exists(digest)


def test_kill_in_the_middle_of_put_file(blob_factory: BlobStoreFactory, tmp_path: Path) -> None:
    """The writer dies after receiving half of the bytes: no blob may appear."""
    store = blob_factory()
    fifo = tmp_path / "upload.fifo"
    os.mkfifo(fifo)
    proc = SPAWN.Process(target=put_file_from, args=(blob_factory, str(fifo)))
    proc.start()
    try:
        with open(fifo, "wb") as feed:  # blocks until the child opens the FIFO
            feed.write(os.urandom(2 << 20))
            feed.flush()
            time.sleep(0.5)  # let the child consume and write what it has
            assert proc.pid is not None
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(30)
    except BrokenPipeError:  # pragma: no cover - the child closed its end when killed
        pass
    finally:
        if proc.is_alive():  # pragma: no cover
            os.kill(proc.pid or 0, signal.SIGKILL)
            proc.join(30)
    assert list(store.iter_digests()) == []
