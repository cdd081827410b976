"""Content-addressed blob store in a local folder: :class:`LocalBlobStore`.

Layout under ``root``::

    ab/cd/abcd...(64 hex)      one file per blob, sharded by the first two byte pairs
    tmp/<random>.part          writes in progress (same filesystem, so the rename is atomic)

A write goes to ``tmp/``, is fsynced, renamed onto its final name and the shard directory is
fsynced: after a crash a blob is either complete under its name or absent. Leftover ``.part``
files are never listed (``iter_digests`` only yields names that are 64 hex digits inside two
shard levels) and are removed by :meth:`LocalBlobStore.cleanup_temp`. Blob files are made
read-only (0444) since blobs never change.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from package_storage.errors import NotFoundError, StorageError
from package_storage.store.storage.base import check_digest, verify_by_reading

_HEX = frozenset("0123456789abcdef")
_CHUNK = 1 << 20


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    """:class:`~package_storage.store.storage.base.BlobStore` over a local directory."""

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._fsync = fsync
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _final(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    def _temp(self) -> Path:
        return self._tmp / f"{uuid.uuid4().hex}.part"

    def _commit(self, temp: Path, digest: str) -> None:
        final = self._final(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(temp, 0o444)
        os.replace(temp, final)
        if self._fsync:
            _fsync_dir(final.parent)

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        final = self._final(digest)
        with contextlib.suppress(FileNotFoundError):
            if final.stat().st_size == len(data):
                return digest  # idempotent (a damaged copy of another size is replaced)
        temp = self._temp()
        try:
            with open(temp, "xb") as fh:
                fh.write(data)
                fh.flush()
                if self._fsync:
                    os.fsync(fh.fileno())
            self._commit(temp, digest)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StorageError(
                f"blob store {self.root}: cannot write blob {digest}: {exc}"
            ) from exc
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return digest

    def put_file(self, path: Path) -> tuple[str, int]:
        hasher = hashlib.sha256()
        size = 0
        temp = self._temp()
        try:
            with open(path, "rb") as src, open(temp, "xb") as dst:
                while chunk := src.read(_CHUNK):
                    hasher.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                if self._fsync:
                    os.fsync(dst.fileno())
            digest = hasher.hexdigest()
            self._commit(temp, digest)
        except FileNotFoundError as exc:
            temp.unlink(missing_ok=True)
            raise NotFoundError(f"file {path} does not exist") from exc
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StorageError(f"blob store {self.root}: cannot store {path}: {exc}") from exc
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return digest, size

    def get(self, digest: str) -> bytes:
        with self.open(digest) as fh:
            return fh.read()

    def open(self, digest: str) -> BinaryIO:
        path = self._final(digest)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} does not exist") from None

    def path_for(self, digest: str) -> Path | None:
        path = self._final(digest)
        return path if path.is_file() else None

    def exists(self, digest: str) -> bool:
        return self._final(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self._final(digest).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} does not exist") from None

    def delete(self, digest: str) -> bool:
        path = self._final(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        if self._fsync:
            _fsync_dir(path.parent)
        for parent in (path.parent, path.parent.parent):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only succeeds when empty
        return True

    def iter_digests(self) -> Iterator[str]:
        for first in sorted(os.scandir(self.root), key=lambda e: e.name):
            if len(first.name) != 2 or not set(first.name) <= _HEX or not first.is_dir():
                continue
            for second in sorted(os.scandir(first.path), key=lambda e: e.name):
                if len(second.name) != 2 or not set(second.name) <= _HEX or not second.is_dir():
                    continue
                prefix = first.name + second.name
                for entry in sorted(os.scandir(second.path), key=lambda e: e.name):
                    name = entry.name
                    if (
                        len(name) == 64
                        and name.startswith(prefix)
                        and set(name) <= _HEX
                        and entry.is_file()
                    ):
                        yield name

    def verify(self, digest: str) -> bool:
        return verify_by_reading(self, digest)

    def temp_files(self) -> list[Path]:
        """Leftovers of interrupted writes (local-store specific; for fsck reports)."""
        return sorted(p for p in self._tmp.iterdir() if p.is_file())

    def cleanup_temp(self, older_than: float = 3600.0) -> int:
        """Remove leftover temp files older than ``older_than`` seconds; return how many."""
        cutoff = time.time() - older_than
        removed = 0
        for path in self.temp_files():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed
