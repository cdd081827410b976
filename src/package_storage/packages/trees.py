"""Package trees on disk: a package folder or a package zip (spec §7.2, §7.3).

Both implement :class:`package_storage.packages.model.PackageTree`. Paths handed to ``stat``/``read``
are package-relative POSIX paths; anything that could leave the package (``..`` components,
absolute paths, backslashes, NUL bytes, symlinks resolving outside the package root) is simply
"not found". Refusing unsafe packages is the archive-safety gate's job (``safety.py``), which
every way in runs before it builds a tree; a folder read here never blocks on a FIFO and never
reads a file above the ``file_bytes`` limit.
"""

from __future__ import annotations

import calendar
import io
import os
import stat as stat_mod
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from package_storage.errors import NotFoundError, PackageError, UnsafePackageError
from package_storage.packages import limits
from package_storage.packages.model import SourceKind, TreeEntry
from package_storage.packages.zipentry import EntryReader

__all__ = ["FolderTree", "ZipTree", "clean_relative_path"]


def clean_relative_path(path: str) -> str | None:
    """``path`` as a clean package-relative path, or None when it must not be resolved.

    Empty and ``.`` components are dropped (``docs//README.md`` -> ``docs/README.md``); a
    ``..`` component, a leading ``/``, a backslash or a NUL byte refuse the path. The package
    root itself (``""``) is refused too: it is not an entry.
    """
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        return None
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


# --- folders -----------------------------------------------------------------------------------


def _sort_key(name: str) -> bytes:
    return os.fsencode(name)


class FolderTree:
    """A package stored as a directory (``<path>/<name>/<version>/``)."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._real: str | None = None  # the resolved root, on first use
        self._entries: tuple[TreeEntry, ...] | None = None
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        return self._root

    @property
    def _real_root(self) -> str:
        real = self._real
        if real is None:  # resolving costs an lstat per component: not for every package loaded
            real = self._real = os.path.realpath(self._root)
        return real

    @property
    def kind(self) -> SourceKind:
        return "folder"

    @property
    def location(self) -> str:
        return str(self._root)

    def __repr__(self) -> str:
        return f"FolderTree({str(self._root)!r})"

    # -- walking

    def entries(self) -> Sequence[TreeEntry]:
        if self._entries is None:
            with self._lock:
                if self._entries is None:
                    out: list[TreeEntry] = []
                    self._walk(self._real_root, "", {self._real_root}, out)
                    self._entries = tuple(out)
        return self._entries

    def _inside(self, real: str) -> bool:
        return real == self._real_root or real.startswith(self._real_root.rstrip(os.sep) + os.sep)

    def _walk(self, real_dir: str, rel_dir: str, ancestors: set[str], out: list[TreeEntry]) -> None:
        try:
            with os.scandir(real_dir) as it:
                children = sorted(it, key=lambda e: _sort_key(e.name))
        except OSError:
            return
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            try:
                if child.is_symlink():
                    target = os.path.realpath(child.path)
                    if not self._inside(target):
                        continue  # symlinks leaving the package are treated as absent
                    st = os.stat(target)
                else:
                    target = child.path
                    st = child.stat(follow_symlinks=False)
            except OSError:
                continue  # broken symlink or vanished entry
            if stat_mod.S_ISDIR(st.st_mode):
                out.append(TreeEntry(rel, True, 0, st.st_mtime))
                real_child = os.path.realpath(target) if child.is_symlink() else target
                if real_child in ancestors:
                    continue  # symlink cycle
                self._walk(real_child, rel, ancestors | {real_child}, out)
            elif stat_mod.S_ISREG(st.st_mode):
                out.append(TreeEntry(rel, False, st.st_size, st.st_mtime))

    # -- single lookups (always against the disk, so the HTTP layer sees current files)

    def _resolve(self, path: str) -> tuple[str, str] | None:
        rel = clean_relative_path(path)
        if rel is None:
            return None
        real = os.path.realpath(os.path.join(self._real_root, *rel.split("/")))
        if not self._inside(real) or real == self._real_root:
            return None
        return rel, real

    def stat(self, path: str) -> TreeEntry | None:
        resolved = self._resolve(path)
        if resolved is None:
            return None
        rel, real = resolved
        try:
            st = os.stat(real)
        except OSError:
            return None
        if stat_mod.S_ISDIR(st.st_mode):
            return TreeEntry(rel, True, 0, st.st_mtime)
        if stat_mod.S_ISREG(st.st_mode):
            return TreeEntry(rel, False, st.st_size, st.st_mtime)
        return None

    def real_path(self, path: str) -> Path | None:
        """The filesystem path of the regular file at ``path`` (for zero-copy serving), or None."""
        entry = self.stat(path)
        if entry is None or entry.is_dir:
            return None
        resolved = self._resolve(path)
        return Path(resolved[1]) if resolved else None

    def read(self, path: str) -> bytes:
        resolved = self._resolve(path)
        if resolved is None:
            raise NotFoundError(f"{self._root}: no file {path!r} in package")
        try:
            # O_NONBLOCK: a FIFO put in place after the gate's walk must not block the read
            fd = os.open(resolved[1], os.O_RDONLY | os.O_NONBLOCK)
            with open(fd, "rb") as fh:
                st = os.fstat(fh.fileno())
                if not stat_mod.S_ISREG(st.st_mode):
                    raise NotFoundError(f"{self._root}: {path!r} is not a regular file")
                limit = limits.active().file_bytes
                if st.st_size > limit:
                    raise UnsafePackageError(
                        f"is {st.st_size} bytes, more than the limit of {limit}",
                        path=str(self._root),
                        entry=path,
                        rule="limit-file-size",
                    )
                data = fh.read(st.st_size + 1)  # bounded: never more than stat said + 1
                if len(data) > limit:
                    raise UnsafePackageError(
                        "grew past the size limit while being read",
                        path=str(self._root),
                        entry=path,
                        rule="limit-file-size",
                    )
                return data
        except (IsADirectoryError, FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"{self._root}: no file {path!r} in package") from None
        except OSError as exc:
            raise NotFoundError(f"{self._root}: cannot read {path!r}: {exc.strerror}") from None


# --- zips --------------------------------------------------------------------------------------

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"


def _zip_mtime(info: zipfile.ZipInfo) -> float:
    try:
        return float(calendar.timegm((*info.date_time, 0, 0, 0)))
    except (OverflowError, ValueError):  # pragma: no cover - date_time is range-checked by zipfile
        return 0.0


def _clean_zip_name(name: str) -> tuple[str, bool] | None:
    """(clean path, is_dir) of an archive entry name, or None for unsafe names."""
    is_dir = name.endswith("/")
    if "\\" in name or "\x00" in name or name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p and p != "."]
    if not parts or ".." in parts:
        return None
    return "/".join(parts), is_dir


class ZipTree:
    """A package stored as a zip archive whose root directory holds ``manifest.yml``."""

    def __init__(
        self,
        *,
        location: str,
        path: Path | None,
        data: bytes | None,
        root_dir: str,
        members: dict[str, zipfile.ZipInfo],
        entries: tuple[TreeEntry, ...],
        implicit_dirs: frozenset[str],
        reopen: Callable[[], Path | None] | None = None,
    ) -> None:
        self._location = location
        self._path = path
        self._reopen = reopen
        self._data = data
        self._root_dir = root_dir
        self._members = members
        self._entries = entries
        self._by_path = {e.path: e for e in entries}
        self._implicit_dirs = implicit_dirs

    # -- construction

    @classmethod
    def open(cls, path: Path, *, reopen: Callable[[], Path | None] | None = None) -> ZipTree:
        """Read the central directory of the zip at ``path`` (file contents are read on demand).

        ``reopen``: where the file is now when ``path`` is gone (a blob cache evicted it and
        downloads it again); None from it means the file is lost for good."""
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
        except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
            raise PackageError(f"invalid zip archive: {exc}", path=str(path)) from None
        tree = cls._build(str(path), path, None, infos)
        tree._reopen = reopen
        return tree

    @classmethod
    def from_bytes(cls, data: bytes, location: str) -> ZipTree:
        """A zip held in memory; ``location`` names it in messages."""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
            raise PackageError(f"invalid zip archive: {exc}", path=location) from None
        return cls._build(location, None, bytes(data), infos)

    @classmethod
    def _build(
        cls, location: str, path: Path | None, data: bytes | None, infos: list[zipfile.ZipInfo]
    ) -> ZipTree:
        root_dir: str | None = None
        for info in infos:
            cleaned = _clean_zip_name(info.filename)
            if cleaned is None:
                continue
            parts = cleaned[0].split("/")
            if len(parts) == 2 and parts[1] == "manifest.yml":
                root_dir = parts[0]
                break
        if root_dir is None:
            raise PackageError(f"failed to determine root directory in package (path: {location})")
        prefix = root_dir + "/"
        members: dict[str, zipfile.ZipInfo] = {}
        entries: list[TreeEntry] = []
        dirs: set[str] = set()
        for info in infos:
            cleaned = _clean_zip_name(info.filename)
            if cleaned is None:
                continue
            full, is_dir = cleaned
            if not full.startswith(prefix):
                continue
            rel = full[len(prefix) :]
            if rel in members or (is_dir and rel in dirs):
                continue  # first entry wins
            if is_dir:
                dirs.add(rel)
                entries.append(TreeEntry(rel, True, 0, _zip_mtime(info)))
            else:
                members[rel] = info
                entries.append(TreeEntry(rel, False, info.file_size, _zip_mtime(info)))
        implicit: set[str] = set()
        for rel in members:
            parent = rel.rpartition("/")[0]
            while parent and parent not in dirs and parent not in implicit:
                implicit.add(parent)
                parent = parent.rpartition("/")[0]
        return cls(
            location=location,
            path=path,
            data=data,
            root_dir=root_dir,
            members=members,
            entries=tuple(entries),
            implicit_dirs=frozenset(implicit),
        )

    # -- properties

    @property
    def kind(self) -> SourceKind:
        return "zip"

    @property
    def location(self) -> str:
        return self._location

    @property
    def path(self) -> Path | None:
        """The zip file on disk (None for an in-memory zip)."""
        return self._path

    @property
    def root_dir(self) -> str:
        """The directory inside the archive that holds ``manifest.yml``."""
        return self._root_dir

    def __repr__(self) -> str:
        return f"ZipTree({self._location!r}, root_dir={self._root_dir!r})"

    # -- PackageTree

    def entries(self) -> Sequence[TreeEntry]:
        return self._entries

    def stat(self, path: str) -> TreeEntry | None:
        rel = clean_relative_path(path)
        if rel is None:
            return None
        entry = self._by_path.get(rel)
        if entry is not None:
            return entry
        if rel in self._implicit_dirs:
            return TreeEntry(rel, True, 0, 0.0)
        return None

    def read(self, path: str) -> bytes:
        rel = clean_relative_path(path)
        info = self._members.get(rel) if rel is not None else None
        if info is None:
            raise NotFoundError(f"{self._location}: no file {path!r} in package")
        if self._data is not None:
            return self._read_member(io.BytesIO(self._data), info)
        try:
            with self._open_archive() as fh:
                return self._read_member(fh, info)
        except OSError as exc:
            raise PackageError(
                f"cannot read zip archive: {exc.strerror}", path=self._location
            ) from None

    def open_entry(self, path: str) -> EntryReader | None:
        """A streaming, bounded-memory reader of the file at ``path`` (None: no such file)."""
        rel = clean_relative_path(path)
        info = self._members.get(rel) if rel is not None else None
        if info is None:
            return None
        return EntryReader(self._open_archive, info, f"{self._location}: {info.filename}")

    def _open_archive(self) -> BinaryIO:
        if self._data is not None:
            return io.BytesIO(self._data)  # shares the buffer, no copy
        assert self._path is not None
        try:
            return open(self._path, "rb")
        except FileNotFoundError as exc:
            moved = self._reopen() if self._reopen is not None else None
            if moved is None:
                raise PackageError(
                    f"cannot read zip archive: {exc.strerror}", path=self._location
                ) from None
            self._path = moved
            return self._open_archive_again()
        except OSError as exc:
            raise PackageError(
                f"cannot read zip archive: {exc.strerror}", path=self._location
            ) from None

    def _open_archive_again(self) -> BinaryIO:
        assert self._path is not None
        try:
            return open(self._path, "rb")
        except OSError as exc:
            raise PackageError(
                f"cannot read zip archive: {exc.strerror}", path=self._location
            ) from None

    def _read_member(self, fh: BinaryIO, info: zipfile.ZipInfo) -> bytes:
        """Read one member through its local header (no re-parse of the central directory)."""
        where = f"{self._location}: {info.filename}"
        if info.flag_bits & 0x1 or info.compress_type not in (
            zipfile.ZIP_STORED,
            zipfile.ZIP_DEFLATED,
        ):
            return self._read_with_zipfile(fh, info)
        fh.seek(info.header_offset)
        header = fh.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise PackageError("bad local file header in zip archive", path=where)
        fields = _LOCAL_HEADER.unpack(header)
        name_len, extra_len = fields[-2], fields[-1]
        fh.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
        raw = fh.read(info.compress_size)
        if len(raw) != info.compress_size:
            raise PackageError("truncated zip archive", path=where)
        try:
            data = raw if info.compress_type == zipfile.ZIP_STORED else zlib.decompress(raw, -15)
        except zlib.error as exc:
            raise PackageError(f"corrupt zip entry: {exc}", path=where) from None
        if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
            raise PackageError("corrupt zip entry: size or CRC mismatch", path=where)
        return data

    def _read_with_zipfile(self, fh: BinaryIO, info: zipfile.ZipInfo) -> bytes:
        fh.seek(0)
        try:
            with zipfile.ZipFile(fh) as zf:
                return zf.read(info.filename)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError) as exc:
            raise PackageError(f"cannot read zip entry: {exc}", path=self._location) from None
