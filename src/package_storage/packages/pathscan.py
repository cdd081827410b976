"""One walk of a package path for the drop-in sources (spec §7): the zips and the folders.

:func:`scan` lists every directory below each path once (``os.scandir``, reusing what the
directory entries already know) and finds, in one go:

* the zip source's candidates: every regular ``*.zip`` file at any depth, in Go's
  ``filepath.Walk`` order (entries of a directory bytewise by name, links not followed);
* the folder source's packages: ``<path>/<x>/<y>/`` with ``<y>`` a strict semantic version
  (``<x>`` and ``<y>`` may be links to folders), with the warnings the reference logs for
  the other entries at those depths;
* with ``stamps=True``, for every package found, its *stamp*: the name, type and ``lstat``
  data (mode, inode, size, ``mtime_ns``, ``ctime_ns``) of every file below the package folder
  (links followed, their own ``lstat`` recorded too), and the name and inode of every folder,
  in one bytes object (``marshal`` format 2). The package's files are unchanged (content and
  metadata) as long as its stamp is: a change of a file's bytes moves its ``ctime`` even when
  its size and ``mtime`` are put back, a replacement (``rename`` over it) its inode, an added,
  removed or renamed entry the list of names. A folder's own times are not recorded (they
  move only with the names in it, which are). A zip's stamp is its own file's ``lstat`` data.

A package that cannot be stamped (a folder that cannot be listed, a file that vanished
between the listing and its ``lstat``, links nested deeper than :data:`MAX_DEPTH`) has no
stamp (None): it is read and not cached.
"""

from __future__ import annotations

import marshal
import os
import stat as stat_mod
from collections.abc import Sequence
from dataclasses import dataclass, field

from package_storage.errors import PackageStorageError
from package_storage.packages.versions import Version

__all__ = ["MAX_DEPTH", "Found", "Scan", "scan", "sorted_entries", "stamp_file", "stamp_folder"]

MAX_DEPTH = 64
"""Folder levels a stamp walks below a package (the package limits are far below)."""

_MARSHAL = 2
"""marshal's format 2: the same values always give the same bytes (format 3 and later mark
objects by reference count and interning, which vary from run to run)."""

_S_ISDIR = stat_mod.S_ISDIR
_S_ISLNK = stat_mod.S_ISLNK
_S_ISREG = stat_mod.S_ISREG


@dataclass(frozen=True, slots=True)
class Found:
    """A zip file or a package folder found by :func:`scan`."""

    path: str
    signed: bool  # a ``<path>.sig`` file is beside it
    stamp: bytes | None = None  # see the module docstring; None: not stamped
    version_dir: str | None = None  # folder: the <version> directory name


@dataclass(slots=True)
class Scan:
    zips: list[Found] = field(default_factory=list)
    folders: list[Found] = field(default_factory=list)
    warnings: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """The folder source's warnings, in the order the reference logs them: (message, fields)."""


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _fs_name(entry: os.DirEntry[str]) -> bytes:
    return os.fsencode(entry.name)


def sorted_entries(path: str) -> list[os.DirEntry[str]]:
    """Directory entries in Go's ``os.ReadDir`` order (bytewise by name)."""
    with os.scandir(path) as it:
        entries = list(it)
    entries.sort(key=_name)  # code point order is UTF-8 byte order for proper text
    for entry in entries:
        if not entry.name.isascii():  # undecodable bytes (surrogates) need the bytes
            entries.sort(key=_fs_name)
            break
    return entries


def _is_strict_version(name: str) -> bool:
    try:
        Version.parse_strict(name)
    except PackageStorageError:
        return False
    return True


def _sig_beside(entry: os.DirEntry[str], siblings: dict[str, os.DirEntry[str]]) -> bool:
    """``entry``'s ``.sig`` file exists (``os.path.isfile``: links followed)."""
    sig = siblings.get(entry.name + ".sig")
    if sig is None:
        return False
    try:
        return sig.is_file()
    except OSError:
        return False


def _by_name(entries: list[os.DirEntry[str]]) -> dict[str, os.DirEntry[str]]:
    return {e.name: e for e in entries}


def _is_zip_file(entry: os.DirEntry[str]) -> bool:
    return entry.name.endswith(".zip") and entry.is_file(follow_symlinks=False)


def _file_row(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def stamp_file(path: str, st: os.stat_result | None = None) -> bytes:
    """The stamp of one file (a zip): its ``lstat`` data. Raises OSError."""
    return marshal.dumps(_file_row(os.lstat(path) if st is None else st), _MARSHAL)


class _Walk:
    """The walk below one package path; collects into ``out``."""

    __slots__ = ("out", "stamps")

    def __init__(self, out: Scan, stamps: bool) -> None:
        self.out = out
        self.stamps = stamps

    # -- zips only (no package around)

    def zips(self, path: str, siblings: list[os.DirEntry[str]] | None = None) -> None:
        """Every regular ``*.zip`` below ``path`` (an unreadable folder is skipped)."""
        try:
            entries = sorted_entries(path) if siblings is None else siblings
        except OSError:
            return
        names: dict[str, os.DirEntry[str]] | None = None
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                self.zips(entry.path)
            elif _is_zip_file(entry):
                if names is None:
                    names = _by_name(entries)
                self._add_zip(entry, names, None)

    def _add_zip(
        self,
        entry: os.DirEntry[str],
        siblings: dict[str, os.DirEntry[str]],
        st: os.stat_result | None,
    ) -> None:
        stamp = None
        if self.stamps:
            try:
                stamp = marshal.dumps(_file_row(st or entry.stat(follow_symlinks=False)), _MARSHAL)
            except OSError:
                stamp = None
        self.out.zips.append(Found(entry.path, _sig_beside(entry, siblings), stamp))

    # -- the package path

    def base(self, base: str) -> None:
        entries = sorted_entries(base)  # an unreadable package path fails the load
        names = _by_name(entries)
        for first in entries:
            real_dir = first.is_dir(follow_symlinks=False)
            if not real_dir:
                if _is_zip_file(first):
                    self._add_zip(first, names, None)
                if not first.is_dir():
                    continue  # depth-1 files are ignored silently
            try:
                seconds = sorted_entries(first.path)
            except OSError as exc:
                self.out.warnings.append(
                    ("cannot read directory", {"file.path": first.path, "error.message": str(exc)})
                )
                continue
            self._first(seconds, real_dir)

    def _first(self, seconds: list[os.DirEntry[str]], real_dir: bool) -> None:
        """The entries of a ``<path>/<x>/`` folder (``real_dir``: not reached through a link,
        so the zip walk goes through it)."""
        names = _by_name(seconds)
        for second in seconds:
            walk_zips = real_dir and second.is_dir(follow_symlinks=False)
            if real_dir and not walk_zips and _is_zip_file(second):
                self._add_zip(second, names, None)
            if not second.is_dir():
                self.out.warnings.append(("ignoring unexpected file", {"file.path": second.path}))
                continue
            if not _is_strict_version(second.name):
                self.out.warnings.append(
                    ("ignoring unexpected directory", {"file.path": second.path})
                )
                if walk_zips:
                    self.zips(second.path)
                continue
            signed = _sig_beside(second, names)
            if self.stamps:
                stamp = self._stamp(second.path, walk_zips)
            else:
                stamp = None
                if walk_zips:
                    self.zips(second.path)
            self.out.folders.append(Found(second.path, signed, stamp, second.name))

    # -- a package folder with its stamp

    def _stamp(self, path: str, walk_zips: bool) -> bytes | None:
        rows: list[object] = []
        try:
            st = os.stat(path)
        except OSError:
            if walk_zips:
                self.zips(path)
            return None
        ok = self._rows(path, "", rows, walk_zips, {(st.st_dev, st.st_ino)}, 0)
        return marshal.dumps(rows, _MARSHAL) if ok else None

    def _rows(
        self,
        path: str,
        rel: str,
        rows: list[object],
        walk_zips: bool,
        ancestors: set[tuple[int, int]],
        depth: int,
    ) -> bool:
        """Append the stamp rows below ``path`` (``rel``: its name inside the package, with a
        trailing ``/``) to ``rows``; False when something could not be stamped (the zip walk
        goes on: it does not depend on the stamps)."""
        try:
            entries = sorted_entries(path)
        except OSError:
            return False
        ok = depth <= MAX_DEPTH
        names: dict[str, os.DirEntry[str]] | None = None
        append = rows.append
        for entry in entries:
            name = rel + entry.name
            if entry.is_dir(follow_symlinks=False):
                append(name)
                append(entry.inode())
                ok = (
                    self._rows(entry.path, name + "/", rows, walk_zips, ancestors, depth + 1) and ok
                )
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                ok = False
                continue
            append(name)
            append(_file_row(st))
            if _S_ISLNK(st.st_mode):
                ok = self._link(entry.path, name, rows, ancestors, depth) and ok
            elif walk_zips and _S_ISREG(st.st_mode) and entry.name.endswith(".zip"):
                if names is None:
                    names = _by_name(entries)
                self._add_zip(entry, names, st)
        return ok

    def _link(
        self,
        path: str,
        name: str,
        rows: list[object],
        ancestors: set[tuple[int, int]],
        depth: int,
    ) -> bool:
        """What the link at ``path`` points at, when it resolves (a folder: walked, once per
        cycle; the zip walk does not follow links)."""
        try:
            st = os.stat(path)
        except OSError:
            return True  # a dangling link: its own row says so
        rows.append(name + " ->")
        rows.append(_file_row(st))
        if not _S_ISDIR(st.st_mode):
            return True
        identity = (st.st_dev, st.st_ino)
        if identity in ancestors:
            return True  # a link cycle is walked once
        return self._rows(path, name + "/", rows, False, ancestors | {identity}, depth + 1)


def scan(paths: Sequence[str], *, stamps: bool) -> Scan:
    """Zips and package folders of every path in order (missing paths are skipped); see the
    module docstring. Raises OSError when a path exists but cannot be listed."""
    out = Scan()
    walk = _Walk(out, stamps)
    for base in paths:
        if os.path.isdir(base):
            walk.base(base)
    return out


def stamp_folder(path: str) -> bytes | None:
    """The stamp of the package folder at ``path`` alone (see :func:`scan`)."""
    out = Scan()
    return _Walk(out, True)._stamp(path, False)
