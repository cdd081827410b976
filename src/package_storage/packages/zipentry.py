"""Streaming reads of one zip entry: decompression with a bounded buffer.

:class:`EntryReader` reads an entry of a package zip front to back, a bounded piece at a time:
at most :data:`RAW_CHUNK` compressed bytes and the caller's ``n`` uncompressed bytes are held,
whatever the entry expands to. The entry's *declared* size (central directory) is the contract:
reading stops there, an entry that would expand beyond it or ends before it is refused
(``PackageError``), and the CRC-32 is checked when the last byte has been read. So a zip bomb,
even one whose sizes lie, never costs more than a bounded amount of memory to read.

Stored and deflated entries (everything package zips use) are read directly through their local
header; other methods (bzip2, lzma) go through :mod:`zipfile`'s own incremental reader, which is
bounded the same way. Encrypted entries are refused.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, BinaryIO

from package_storage.errors import PackageError

__all__ = ["RAW_CHUNK", "EntryReader"]

RAW_CHUNK = 64 << 10
"""Compressed bytes read from the archive at a time."""

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"


class EntryReader:
    """Sequential, bounded-memory reader of one zip entry.

    ``open_archive`` opens the archive (a file or an in-memory buffer) positioned anywhere; the
    reader owns what it returns and closes it. ``where`` names the entry in messages.
    """

    def __init__(
        self, open_archive: Callable[[], BinaryIO], info: zipfile.ZipInfo, where: str
    ) -> None:
        self.info = info
        self.size = info.file_size
        self.where = where
        self.position = 0
        self._crc = 0
        self._tail = b""
        self._finished = False
        self._other: IO[bytes] | None = None
        if info.flag_bits & 0x1:
            raise PackageError("encrypted zip entries cannot be read", path=where)
        self._fh = open_archive()
        try:
            if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self._seek_data()
                self._left = info.compress_size
                self._inflater = (
                    zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
                )
            else:
                self._open_other()
        except BaseException:
            self._fh.close()
            raise

    def _seek_data(self) -> None:
        fh = self._fh
        fh.seek(self.info.header_offset)
        header = fh.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise PackageError("bad local file header in zip archive", path=self.where)
        fields = _LOCAL_HEADER.unpack(header)
        fh.seek(self.info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1])

    def _open_other(self) -> None:
        try:
            archive = zipfile.ZipFile(self._fh)
            self._other = archive.open(self.info)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError) as exc:
            raise PackageError(f"cannot read zip entry: {exc}", path=self.where) from None

    # -- reading

    def read(self, n: int) -> bytes:
        """Up to ``n`` next bytes of the entry (fewer only at its end; ``b""`` after it)."""
        want = min(n, self.size - self.position)
        if want <= 0:
            if not self._finished:
                self._finish()
            return b""
        parts: list[bytes] = []
        got = 0
        while got < want:
            chunk = self._produce(want - got)
            if not chunk:
                raise PackageError(
                    "corrupt zip entry: shorter than its declared size", path=self.where
                )
            parts.append(chunk)
            got += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._crc = zlib.crc32(data, self._crc)
        self.position += got
        if self.position == self.size:
            self._finish()
        return data

    def skip(self, n: int, *, step: int = 256 << 10) -> None:
        """Read and drop the next ``n`` bytes, ``step`` bytes at a time."""
        while n > 0:
            data = self.read(min(step, n))
            if not data:
                return
            n -= len(data)

    def _produce(self, limit: int) -> bytes:
        """At most ``limit`` uncompressed bytes (empty: the compressed data is exhausted)."""
        if self._other is not None:
            try:
                return self._other.read(limit)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
                raise PackageError(f"corrupt zip entry: {exc}", path=self.where) from None
        if self._inflater is None:
            raw = self._fh.read(min(limit, self._left))
            self._left -= len(raw)
            return raw
        while True:
            if self._tail:
                src, self._tail = self._tail, b""
            elif self._inflater.eof:
                return b""
            elif self._left > 0:
                src = self._fh.read(min(RAW_CHUNK, self._left))
                self._left = self._left - len(src) if src else 0
            else:
                src = b""  # no input left: the inflater may still hold pending output
            try:
                out = self._inflater.decompress(src, limit)
            except zlib.error as exc:
                raise PackageError(f"corrupt zip entry: {exc}", path=self.where) from None
            self._tail = self._inflater.unconsumed_tail
            if out:
                return out
            if not src and not self._tail:
                return b""

    def _finish(self) -> None:
        self._finished = True
        if self._other is None and self._produce(1):
            raise PackageError("corrupt zip entry: larger than its declared size", path=self.where)
        if self._other is None and (self._crc & 0xFFFFFFFF) != self.info.CRC:
            raise PackageError("corrupt zip entry: size or CRC mismatch", path=self.where)

    def close(self) -> None:
        if self._other is not None:
            self._other.close()
        self._fh.close()

    def __enter__(self) -> EntryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
