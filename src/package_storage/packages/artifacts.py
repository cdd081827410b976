"""Zip artifacts of package versions (spec §8) and signature locations.

``build_zip`` turns any :class:`~package_storage.packages.model.PackageTree` into the archive the registry
serves at ``/epr/<dir>/<name>-<version>.zip`` for folder packages. Unlike the reference, which
copies filesystem timestamps and modes into the archive, the archive built here is
**deterministic**: every entry carries :data:`ZIP_TIMESTAMP` and a fixed Unix mode
(:data:`FILE_MODE` / :data:`DIR_MODE`), so the same package content always gives the same bytes
(cacheable, content-addressable, reproducible signatures).

Entry layout follows spec §8: every name is prefixed with ``<name>-<version>/``; the package root
has no entry of its own; every sub-directory has an entry with a trailing slash placed right
before its contents; entries come in a depth-first walk with each directory's children in
bytewise name order; hidden files are included; every entry (directories too) is deflated.
"""

from __future__ import annotations

import io
import stat
import zipfile

from package_storage.errors import PackageError
from package_storage.packages.model import PackageTree

# 1980-01-01 00:00:00: the earliest time a zip (MS-DOS) timestamp can express.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
DIR_MODE = 0o755

_UNIX = 3  # "version made by" host system: Unix, so external_attr carries the mode
_MSDOS_DIRECTORY = 0x10


def _walk_key(path: str) -> list[str]:
    # Comparing component lists gives the depth-first walk order: a directory sorts right
    # before its own contents and "a/b" before "a-b" (component "a" < "a-b"), which a plain
    # string sort would get wrong ('-' < '/'). Python str order is code point order, which
    # is the bytewise order of the UTF-8 encoding.
    return path.split("/")


def _check_relative(path: str, location: str) -> None:
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise PackageError(f"unsafe entry name {path!r}", path=location)
    if any(part in ("", ".", "..") for part in parts):
        raise PackageError(f"unsafe entry name {path!r}", path=location)


def build_zip(tree: PackageTree, name: str, version: str) -> bytes:
    """Deterministic zip of ``tree`` with every entry under ``<name>-<version>/`` (spec §8).

    Directory entries missing from the tree (zip trees without directory entries) are
    synthesised from the file paths. Raises ``PackageError`` for an entry name that would leave
    the prefix (``..``, absolute paths, backslashes, NUL) and ``NotFoundError`` (from the tree)
    when a listed file cannot be read.
    """
    prefix = f"{name}-{version}/"
    files: dict[str, None] = {}
    dirs: set[str] = set()
    for entry in tree.entries():
        path = entry.path.rstrip("/")
        if not path:
            continue
        _check_relative(path, tree.location)
        if entry.is_dir:
            dirs.add(path)
        else:
            files[path] = None
    for path in files:
        parent = path.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    clash = dirs.intersection(files)
    if clash:
        raise PackageError(
            f"entry {sorted(clash)[0]!r} is both a file and a directory", path=tree.location
        )

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted([*dirs, *files], key=_walk_key):
            is_dir = path in dirs
            info = zipfile.ZipInfo(prefix + path + ("/" if is_dir else ""), ZIP_TIMESTAMP)
            info.create_system = _UNIX
            info.compress_type = zipfile.ZIP_DEFLATED
            if is_dir:
                info.external_attr = ((stat.S_IFDIR | DIR_MODE) << 16) | _MSDOS_DIRECTORY
                archive.writestr(info, b"")
            else:
                info.external_attr = (stat.S_IFREG | FILE_MODE) << 16
                archive.writestr(info, tree.read(path))
    return out.getvalue()


def zip_listing(data: bytes) -> list[tuple[int, str]]:
    """``(uncompressed size, entry name)`` per entry, in archive order (the "zip preview")."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info.file_size, info.filename) for info in archive.infolist()]


def signature_location(tree: PackageTree) -> str:
    """Where the detached signature of a package lives: ``<package location>.sig`` (spec §2.9).

    ``<zip path>.sig`` for zip packages, ``<root>/<name>/<version>.sig`` for folder packages.
    """
    return tree.location.rstrip("/") + ".sig"
