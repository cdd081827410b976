"""BlobCache: download once, LRU under the size bound, atomic, concurrent, warm restart; in
front of a local folder (fast) and of real S3 (mtime, S3 unreachable)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from package_storage.errors import StorageError, UnavailableError
from package_storage.store.storage.blobcache import BlobCache
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.store.storage.s3 import S3BlobStore
from process_helpers import free_port
from s3_server import BUCKET, S3Server


class CountingStore(LocalBlobStore):
    """A local store that counts the blobs opened (the downloads of the cache) and can be
    told to wait before answering (to make requests overlap)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, fsync=False)
        self.opened: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self._count = threading.Lock()

    def open(self, digest: str) -> BinaryIO:
        with self._count:
            self.opened.append(digest)
        self.gate.wait(30)
        return super().open(digest)


@pytest.fixture
def inner(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "blobs")


def test_downloads_once_then_serves_the_local_file(inner: CountingStore, tmp_path: Path) -> None:
    digest = inner.put(b"zip bytes")
    cache = BlobCache(inner, tmp_path / "cache", 1000)
    first = cache.path_for(digest)
    assert first is not None and first.read_bytes() == b"zip bytes"
    assert first.is_relative_to(tmp_path / "cache")
    assert cache.path_for(digest) == first
    assert cache.get(digest) == b"zip bytes"
    with cache.open(digest) as fh:
        assert fh.read() == b"zip bytes"
    assert inner.opened == [digest]
    assert (cache.hits, cache.misses) == (3, 1)
    assert cache.cached_bytes == len(b"zip bytes")
    assert oct(first.stat().st_mode & 0o777) == "0o444"


def test_missing_blob(inner: CountingStore, tmp_path: Path) -> None:
    cache = BlobCache(inner, tmp_path / "cache", 1000)
    missing = hashlib.sha256(b"nothing").hexdigest()
    assert cache.path_for(missing) is None
    assert not cache.exists(missing)
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_least_recently_used_evicted_under_the_bound(inner: CountingStore, tmp_path: Path) -> None:
    a, b, c = (inner.put(bytes([i]) * 100) for i in range(3))
    cache = BlobCache(inner, tmp_path / "cache", 250)
    assert cache.path_for(a) and cache.path_for(b)
    assert cache.path_for(a)  # a is now the most recent
    assert cache.path_for(c)  # evicts b, the least recently used
    assert cache.cached() == [a, c]
    assert cache.cached_bytes == 200
    assert not (tmp_path / "cache" / b[:2] / b).exists()
    assert cache.path_for(b)  # comes back, evicting a
    assert cache.cached() == [c, b]
    assert inner.opened == [a, b, c, b]


def test_blob_larger_than_the_cache_is_streamed_not_cached(
    inner: CountingStore, tmp_path: Path
) -> None:
    big = inner.put(b"x" * 500)
    cache = BlobCache(inner, tmp_path / "cache", 100)
    assert cache.path_for(big) is None
    assert cache.path_for(big) is None  # not downloaded again to find out
    assert cache.get(big) == b"x" * 500
    assert cache.cached_bytes == 0
    assert inner.opened == [big, big]  # the probe, then the streamed read


def test_concurrent_requests_download_once(inner: CountingStore, tmp_path: Path) -> None:
    digest = inner.put(os.urandom(200_000))
    other = inner.put(b"other")
    cache = BlobCache(inner, tmp_path / "cache", 1 << 20)
    inner.gate.clear()
    results: list[Path | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.path_for(digest))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for _ in range(200):  # the first download is waiting inside the store
        if inner.opened:
            break
        threading.Event().wait(0.01)
    inner.gate.set()
    for thread in threads:
        thread.join(30)
    assert cache.path_for(other) is not None
    assert len(results) == 8 and len(set(results)) == 1 and results[0] is not None
    assert inner.opened.count(digest) == 1


def test_corrupt_blob_is_never_cached(inner: CountingStore, tmp_path: Path) -> None:
    digest = inner.put(b"good bytes")
    path = inner.path_for(digest)
    assert path is not None
    os.chmod(path, 0o644)
    path.write_bytes(b"evil bytes")  # same size, other content
    cache = BlobCache(inner, tmp_path / "cache", 1000)
    with pytest.raises(StorageError, match="does not hash to its name"):
        cache.path_for(digest)
    assert cache.cached() == []
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_warm_restart_takes_over_the_files(inner: CountingStore, tmp_path: Path) -> None:
    a, b = inner.put(b"a" * 10), inner.put(b"b" * 10)
    first = BlobCache(inner, tmp_path / "cache", 1000)
    assert first.path_for(a) and first.path_for(b)
    (tmp_path / "cache" / "tmp" / "leftover.part").write_bytes(b"half")
    again = BlobCache(inner, tmp_path / "cache", 15)  # smaller bound: one of the two stays
    assert again.cached_bytes == 10
    assert len(again.cached()) == 1
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    kept = again.cached()[0]
    assert again.path_for(kept) is not None
    assert inner.opened == [a, b]


def test_writes_and_deletes_go_to_the_store(inner: CountingStore, tmp_path: Path) -> None:
    cache = BlobCache(inner, tmp_path / "cache", 1000)
    digest = cache.put(b"new")
    assert inner.exists(digest) and cache.cached() == []
    assert cache.path_for(digest) is not None
    assert cache.delete(digest) is True
    assert not inner.exists(digest) and cache.cached() == []
    assert not cache.exists(digest)


def test_refuses_a_non_positive_size(inner: CountingStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cache size must be positive"):
        BlobCache(inner, tmp_path / "cache", 0)


# --- in front of S3 ------------------------------------------------------------------------


def _s3(server: S3Server, prefix: str, endpoint: str | None = None) -> S3BlobStore:
    env = server.env()
    return S3BlobStore(
        BUCKET,
        prefix,
        endpoint_url=endpoint or env["AWS_ENDPOINT_URL"],
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        max_attempts=1,
        connect_timeout=2,
    )


def test_s3_cached_copy_has_the_object_time(s3_server: S3Server, tmp_path: Path) -> None:
    store = _s3(s3_server, s3_server.new_prefix("cache"))
    digest = store.put(b"from s3")
    modified = store.client.head_object(Bucket=BUCKET, Key=f"{store.prefix}/{digest}")[
        "LastModified"
    ].timestamp()
    cache = BlobCache(store, tmp_path / "cache", 1000)
    path = cache.path_for(digest)
    assert path is not None and path.read_bytes() == b"from s3"
    assert path.stat().st_mtime == pytest.approx(modified, abs=1)


def test_s3_unreachable_cached_blobs_still_served(s3_server: S3Server, tmp_path: Path) -> None:
    prefix = s3_server.new_prefix("cache")
    live = _s3(s3_server, prefix)
    cached, other = live.put(b"cached"), live.put(b"not cached")
    assert BlobCache(live, tmp_path / "cache", 1000).path_for(cached) is not None
    dead = _s3(s3_server, prefix, endpoint=f"http://127.0.0.1:{free_port()}")
    cache = BlobCache(dead, tmp_path / "cache", 1000)
    path = cache.path_for(cached)
    assert path is not None and path.read_bytes() == b"cached"
    assert cache.exists(cached)
    with pytest.raises(UnavailableError, match="cannot read blob") as caught:
        cache.path_for(other)
    assert "\n" not in str(caught.value)
