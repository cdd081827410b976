"""Files inside zip packages, served with bounded memory whatever the archive holds.

The read app serves a static file of a zip package (``/package/NAME/VERSION/FILE``) one of
three ways, chosen by the entry's declared uncompressed size:

* up to ``small`` bytes (1 MiB): decompressed into memory with a bounded reader (an entry that
  expands beyond its declared size is refused, never expanded) and kept in the app's LRU;
* larger, up to the cache's per-file bound: **extracted once** (streaming, a bounded buffer) into
  an :class:`ExtractCache` folder on disk, then served from that file like any file on disk
  (``pread`` for ranges, the server's zero-copy path for whole files). The cache has a total
  size bound and evicts the least recently used files;
* larger still, or when the cache is full of files being extracted: **streamed** from the zip
  (:class:`EntryContent`): decompressed front to back with a bounded buffer; a range starting at
  offset N decompresses and drops the N bytes before it, a bounded piece at a time.

Requests that send no body (HEAD, 304, 412, 416) never extract anything: the answer is planned
from the declared size (and, for unknown extensions, the first 512 bytes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from package_storage.packages.trees import ZipTree
from package_storage.packages.zipentry import EntryReader
from package_storage.registry.http.static import FileContent

__all__ = [
    "DEFAULT_EXTRACT_CACHE_BYTES",
    "DEFAULT_EXTRACT_FILE_BYTES",
    "EntryContent",
    "ExtractCache",
    "read_small",
]

DEFAULT_EXTRACT_CACHE_BYTES = 1 << 30
DEFAULT_EXTRACT_FILE_BYTES = 256 << 20
_COPY_CHUNK = 256 << 10


def read_small(tree: ZipTree, file: str) -> bytes | None:
    """The whole file ``file`` of ``tree`` (None: no such file), read with a bounded reader:
    never more than the entry's declared size is decompressed."""
    reader = tree.open_entry(file)
    if reader is None:
        return None
    with reader:
        data = reader.read(reader.size)
        reader.read(1)  # at the end: checks that nothing follows and the CRC
        return data


class EntryContent:
    """:class:`~package_storage.registry.http.static.Content` streamed from a zip entry.

    Sequential reads continue the decompression where the last one stopped; a read before the
    current position starts again from the beginning; a read after it skips forward.
    ``materialize`` hands the request the extracted copy when the cache can hold one.
    """

    __slots__ = ("_cache", "_key", "_reader", "_tree", "file", "size")

    def __init__(
        self, tree: ZipTree, file: str, size: int, cache: ExtractCache | None = None
    ) -> None:
        self._tree = tree
        self.file = file
        self.size = size
        self._cache = cache
        self._key: Hashable = (id(tree), file)
        self._reader: EntryReader | None = None

    def _open(self) -> EntryReader:
        reader = self._tree.open_entry(self.file)
        if reader is None:  # the tree is immutable: stat found it, so this cannot happen
            raise FileNotFoundError(self.file)
        return reader

    def read(self, start: int, length: int) -> bytes:
        reader = self._reader
        if reader is None or reader.position > start:
            if reader is not None:
                reader.close()
            reader = self._reader = self._open()
        reader.skip(start - reader.position)
        return reader.read(length)

    def extracted(self) -> FileContent | None:
        """The extracted file (opened) when the cache already holds it, else None. Does not
        block (no extraction): the event loop may call it and skip a worker thread."""
        if self._cache is None:
            return None
        return self._cache.lookup(self._key, self._tree)

    def materialize(self) -> FileContent | EntryContent:
        """The extracted file (opened) when the cache holds or can make it, else ``self``.
        Blocking (extraction): call it in a worker thread."""
        if self._cache is None:
            return self
        found = self._cache.open(self._key, self._tree, self.size, self._open)
        return self if found is None else found

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


@dataclass(slots=True)
class _Extracted:
    # The tree the file came from, not kept alive: a key holding id(tree) only matches while
    # that very tree lives (a dead tree's id may be reused by another).
    owner: weakref.ref[object]
    path: str
    size: int


class ExtractCache:
    """Files extracted from zip entries, in a private folder with a size bound (LRU).

    ``directory`` is where the private folder is created (default: the system's temporary
    folder); the folder is new for every cache (nothing is trusted from an earlier process) and
    removed by :meth:`close` or when the cache is garbage collected. Disk use never exceeds
    ``max_bytes``: room is reserved before an extraction starts, by evicting the least recently
    used files (a file being served when it is evicted stays readable through its open
    descriptor). Entries larger than ``max_file_bytes`` are never extracted.
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_EXTRACT_CACHE_BYTES,
        max_file_bytes: int = DEFAULT_EXTRACT_FILE_BYTES,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        if max_bytes < 0 or max_file_bytes < 0:
            raise ValueError("extract cache limits must not be negative")
        self.max_bytes = max_bytes
        self.max_file_bytes = min(max_file_bytes, max_bytes)
        self._parent = None if directory is None else os.fspath(directory)
        self._dir: str | None = None
        self._items: OrderedDict[Hashable, _Extracted] = OrderedDict()
        self._used = 0  # bytes of the files in _items plus reservations of running extractions
        self._building: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._finalizer: Callable[[], object] | None = None
        self.extractions = 0

    @property
    def directory(self) -> str | None:
        """The private folder (None until the first extraction)."""
        return self._dir

    @property
    def used_bytes(self) -> int:
        return self._used

    def __len__(self) -> int:
        return len(self._items)

    def _folder(self) -> str:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="package-storage-files-", dir=self._parent)
            self._finalizer = weakref.finalize(self, shutil.rmtree, self._dir, True)
        return self._dir

    def _open_hit(self, key: Hashable, owner: object) -> FileContent | None:
        """Under ``_lock``: the cached file of ``key`` (extracted from ``owner``) opened, or
        None (then nothing is cached for ``key`` any more)."""
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit.owner() is owner:
            self._items.move_to_end(key)
            try:
                return FileContent.open(hit.path, immutable=True)
            except OSError:  # removed behind our back
                pass
        del self._items[key]
        self._used -= hit.size
        with contextlib.suppress(OSError):
            os.unlink(hit.path)
        return None

    def lookup(self, key: Hashable, owner: object) -> FileContent | None:
        """The cached file of ``key`` opened for reading, or None (nothing is extracted)."""
        with self._lock:
            return self._open_hit(key, owner)

    def _reserve(self, size: int) -> bool:
        """Under ``_lock``: make room for ``size`` bytes by evicting; False when impossible."""
        while self._used + size > self.max_bytes and self._items:
            _, old = self._items.popitem(last=False)
            self._used -= old.size
            with contextlib.suppress(OSError):
                os.unlink(old.path)
        if self._used + size > self.max_bytes:
            return False
        self._used += size
        return True

    def open(
        self, key: Hashable, owner: object, size: int, opener: Callable[[], EntryReader]
    ) -> FileContent | None:
        """The extracted file of ``key`` opened for reading, extracting it first (once, even
        when several threads ask at the same time) with ``opener``'s reader. None when the
        entry is too large or the cache has no room now. Raises the reader's ``PackageError``
        for a corrupt entry (nothing is cached then)."""
        if size > self.max_file_bytes:
            return None
        with self._lock:
            found = self._open_hit(key, owner)
            if found is not None:
                return found
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                found = self._open_hit(key, owner)
                if found is not None:
                    return found
                if not self._reserve(size):
                    return None
                self._counter += 1
                path = os.path.join(self._folder(), f"{self._counter:010d}")
            try:
                self._extract(opener, path)
            except BaseException:
                with self._lock:
                    self._used -= size
                    self._building.pop(key, None)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
            with self._lock:
                self._building.pop(key, None)
                self._items[key] = _Extracted(weakref.ref(owner), path, size)
                self.extractions += 1
                return FileContent.open(path, immutable=True)

    @staticmethod
    def _extract(opener: Callable[[], EntryReader], path: str) -> None:
        temp = path + ".part"
        try:
            with opener() as reader, open(temp, "wb") as out:
                while chunk := reader.read(_COPY_CHUNK):
                    out.write(chunk)
                if reader.position != reader.size:  # pragma: no cover - read() raises first
                    raise OSError("entry shorter than declared")
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def clear(self) -> None:
        """Forget and remove every extracted file (running extractions finish normally)."""
        with self._lock:
            items = list(self._items.values())
            self._items.clear()
            self._used -= sum(item.size for item in items)
        for item in items:
            with contextlib.suppress(OSError):
                os.unlink(item.path)

    def close(self) -> None:
        """Remove the private folder and everything in it."""
        self.clear()
        if self._finalizer is not None:
            self._finalizer()
