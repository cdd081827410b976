"""A bounded local disk cache in front of a remote blob store: :class:`BlobCache`.

A read replica serving from S3 (``serve --cache-dir DIR --cache-size SIZE``) downloads each
artifact once and then serves the local file (``path_for`` returns it, so the server sends it
with sendfile like any local blob). Layout of ``DIR``::

    ab/<sha256 hex>       one cached blob (read-only, mtime = the object's time in the store)
    tmp/<random>.part     downloads in progress

Rules:

* Atomic: a download goes to ``tmp/``, is checked against its digest (a blob whose bytes do not
  hash to its name is never cached) and renamed into place; a crash leaves only ``.part``
  files, removed when the cache opens.
* Once: concurrent requests for the same missing blob wait for one download (one lock per
  digest); requests for other blobs are not held up.
* Bounded: the cached bytes stay at or under ``max_bytes``; the least recently used blobs are
  evicted first. A blob larger than the whole cache is not cached (``path_for`` returns None
  and readers stream it from the store). A file being sent while it is evicted is sent to the
  end (its inode lives until closed).
* Warm restart: the files already in ``DIR`` are taken over when the cache opens (oldest access
  first), so a restarted replica does not download again. One process per cache folder (the
  size accounting is per process).
* Writes, deletes, listing and verification go to the store behind (``put`` is write-through:
  the new blob is not cached until it is read). ``exists`` answers from the cache when it
  can, so a cached artifact keeps being served while the store is unreachable.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from package_storage.errors import NotFoundError, StorageError
from package_storage.store.storage.base import BlobStore, check_digest

DEFAULT_CACHE_SIZE = 10 << 30
"""Default ``--cache-size``: 10 GiB."""
_CHUNK = 1 << 20
_HEX = frozenset("0123456789abcdef")


@runtime_checkable
class TimedBlobSource(Protocol):
    """A store that can tell a blob's modification time along with its bytes (S3: the
    object's ``Last-Modified``), so every replica's cached copy has the same mtime and so the
    same ``Last-Modified`` header."""

    def open_timed(self, digest: str) -> tuple[BinaryIO, float | None]: ...


class _Gate:
    """One download at a time per digest; ``users`` counts the requests waiting on it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class BlobCache:
    """:class:`~package_storage.store.storage.base.BlobStore` reading through a local cache
    (see the module docstring)."""

    def __init__(self, inner: BlobStore, root: str | Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"cache size must be positive, got {max_bytes}")
        self.inner = inner
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._tmp = self.root / "tmp"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create cache folder {self.root}: {exc}") from exc
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, int] = OrderedDict()  # digest -> size, LRU first
        self._bytes = 0
        self._downloads: dict[str, _Gate] = {}
        self._too_big: set[str] = set()
        self.hits = 0
        self.misses = 0
        self._load()

    # --- index -----------------------------------------------------------------------------

    def _load(self) -> None:
        for leftover in self._tmp.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()
        found: list[tuple[float, str, int]] = []
        for shard in os.scandir(self.root):
            if len(shard.name) != 2 or not set(shard.name) <= _HEX or not shard.is_dir():
                continue
            for entry in os.scandir(shard.path):
                name = entry.name
                if len(name) == 64 and name.startswith(shard.name) and set(name) <= _HEX:
                    st = entry.stat()
                    found.append((st.st_atime, name, st.st_size))
        for _atime, name, size in sorted(found):
            self._entries[name] = size
            self._bytes += size
        with self._lock:
            self._evict_locked()

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def _evict_locked(self) -> None:
        while self._bytes > self.max_bytes and self._entries:
            digest, size = self._entries.popitem(last=False)
            self._bytes -= size
            with contextlib.suppress(FileNotFoundError):
                self._path(digest).unlink()

    def _hit(self, digest: str) -> Path | None:
        with self._lock:
            if digest not in self._entries:
                return None
            self._entries.move_to_end(digest)
        path = self._path(digest)
        if path.is_file():
            return path
        with self._lock:  # removed behind our back: forget it
            size = self._entries.pop(digest, None)
            if size is not None:
                self._bytes -= size
        return None

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def cached(self) -> list[str]:
        """The cached digests, least recently used first."""
        with self._lock:
            return list(self._entries)

    # --- downloads -------------------------------------------------------------------------

    def _fetch(self, digest: str) -> Path | None:
        """The cached file of ``digest``, downloading it first; None when the store has no
        such blob or it is larger than the cache. UnavailableError/StorageError pass through."""
        with self._lock:
            if digest in self._too_big:
                return None
            gate = self._downloads.get(digest)
            if gate is None:
                gate = self._downloads[digest] = _Gate()
            gate.users += 1
        try:
            with gate.lock:
                path = self._hit(digest)
                if path is not None:
                    self.hits += 1
                    return path
                self.misses += 1
                return self._download(digest)
        finally:
            with self._lock:
                gate.users -= 1
                if gate.users == 0:
                    del self._downloads[digest]

    def _download(self, digest: str) -> Path | None:
        try:
            if isinstance(self.inner, TimedBlobSource):
                source, mtime = self.inner.open_timed(digest)
            else:
                source, mtime = self.inner.open(digest), None
        except NotFoundError:
            return None
        temp = self._tmp / f"{uuid.uuid4().hex}.part"
        hasher = hashlib.sha256()
        size = 0
        too_big = False
        try:
            with source, open(temp, "xb") as out:
                while chunk := source.read(_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        too_big = True
                        break
                    hasher.update(chunk)
                    out.write(chunk)
            if too_big:
                with self._lock:
                    self._too_big.add(digest)
                return None
            if hasher.hexdigest() != digest:
                raise StorageError(
                    f"blob {digest} read from {self.inner!r} does not hash to its name"
                    " (corrupt in the store): not cached"
                )
            os.chmod(temp, 0o444)
            if mtime is not None:
                os.utime(temp, (time.time(), mtime))
            final = self._path(digest)
            final.parent.mkdir(exist_ok=True)
            os.replace(temp, final)
        except OSError as exc:
            raise StorageError(f"cache {self.root}: cannot cache blob {digest}: {exc}") from exc
        finally:
            temp.unlink(missing_ok=True)
        with self._lock:
            if digest not in self._entries:
                self._entries[digest] = size
                self._bytes += size
            self._entries.move_to_end(digest)
            self._evict_locked()
        return final

    # --- BlobStore -------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        return self.inner.put(data)

    def put_file(self, path: Path) -> tuple[str, int]:
        return self.inner.put_file(path)

    def get(self, digest: str) -> bytes:
        with self.open(digest) as fh:
            return fh.read()

    def open(self, digest: str) -> BinaryIO:
        path = self.path_for(digest)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):  # evicted in between: the store
                return open(path, "rb")
        return self.inner.open(digest)

    def cached_path(self, digest: str) -> Path | None:
        """The cached file of ``digest`` when it is in the cache now (never downloads: cheap
        enough for the event loop)."""
        check_digest(digest)
        path = self._hit(digest)
        if path is not None:
            self.hits += 1
        return path

    def path_for(self, digest: str) -> Path | None:
        check_digest(digest)
        path = self._hit(digest)
        if path is not None:
            self.hits += 1
            return path
        return self._fetch(digest)

    def exists(self, digest: str) -> bool:
        check_digest(digest)
        if self._hit(digest) is not None:
            return True
        return self.inner.exists(digest)

    def evict(self, digest: str) -> bool:
        """Drop the cached copy of ``digest`` (the store keeps it); True when it was cached."""
        check_digest(digest)
        with self._lock:
            size = self._entries.pop(digest, None)
            if size is not None:
                self._bytes -= size
        with contextlib.suppress(FileNotFoundError):
            self._path(digest).unlink()
        return size is not None

    def delete(self, digest: str) -> bool:
        self.evict(digest)
        return self.inner.delete(digest)

    def iter_digests(self) -> Iterator[str]:
        return self.inner.iter_digests()

    def verify(self, digest: str) -> bool:
        return self.inner.verify(digest)

    def __repr__(self) -> str:
        return f"BlobCache({self.inner!r}, {str(self.root)!r}, max_bytes={self.max_bytes})"


__all__ = ["DEFAULT_CACHE_SIZE", "BlobCache", "TimedBlobSource"]
