"""The archive-safety gate: one check of a package zip or folder before anything reads it.

Every way a package comes in calls this module first (publish and ``publish_bytes`` in
``store/service.py``, ``import`` and ``import-git`` in ``transfer/importer.py``, the zip and
folder sources of ``serve --config`` in ``registry/sources.py``); nothing is stored, signed or
served before it passed. A refusal is an :class:`~package_storage.errors.UnsafePackageError`:
one line naming the input, the entry and the rule with a stable code, e.g.
``hello-1.0.0.zip: entry '../evil' leaves the package [zip-unsafe-path]``. ``docs/safety.md``
lists every code.

Zips are parsed here, strictly, from the end record backwards (not through :mod:`zipfile`, which
is lenient on purpose): one end record at the very end of the file, a comment without hidden
zip records, the central directory right before it, entries from offset 0 laid out one after
the other without overlaps or unlisted bytes, every local header agreeing with its central
record. Declared sizes are checked against the :class:`~package_storage.packages.limits.Limits`
before anything is decompressed; then every entry is decompressed once, streaming through a
bounded buffer, stopping as soon as it produces more than it declared (sizes that lie), and its
CRC is checked. Folders are walked without following anything out of the package and without
opening anything: ``lstat`` sizes and types decide (FIFOs, devices and sockets are refused, so
nothing blocks; a file above the size limit is refused before it is read).

Identity (:func:`check_identity`): the folder (``NAME/VERSION`` or ``NAME-VERSION``), the zip
file name (``NAME-VERSION.zip``) and the zip's one root folder (``NAME-VERSION``, which Kibana
requires) must agree with the manifest's name and version.
"""

from __future__ import annotations

import itertools
import mmap
import os
import re
import stat as stat_mod
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from package_storage.errors import NotFoundError, UnsafePackageError
from package_storage.packages.limits import Limits, active
from package_storage.packages.model import PackageTree
from package_storage.packages.yamlutil import load_yaml

__all__ = [
    "RULES",
    "CheckedFolder",
    "CheckedZip",
    "ZipMember",
    "check_artifact_size",
    "check_folder",
    "check_identity",
    "check_input_file",
    "check_paths",
    "check_tree_identity",
    "check_tree_limits",
    "check_zip",
    "check_zip_file",
    "clean_entry_name",
]

RULES: dict[str, str] = {
    # zip structure
    "zip-invalid": "not a zip archive, or its structure does not parse",
    "zip-prepended-data": "bytes before the first entry (another file glued in front)",
    "zip-trailing-data": "bytes after the end record (another file glued behind)",
    "zip-hidden-directory": "zip records inside the archive comment (a second central directory)",
    "zip-entry-count": "the end record's entry count differs from the central directory",
    "zip-multi-disk": "an archive split over several disks",
    "zip-unlisted-data": "bytes between entries that no entry accounts for",
    "zip-overlapping-entries": "two entries share bytes (overlapping-entry zip bombs)",
    "zip-header-mismatch": "a local header disagrees with its central directory record",
    "zip-size-mismatch": "an entry's data is not the size it declares",
    "zip-crc-mismatch": "an entry's data fails its CRC check",
    "zip-encrypted": "an encrypted entry",
    "zip-unsupported-method": "a compression method other than stored or deflate",
    # zip entry names and types
    "zip-unsafe-path": "an entry name with '..', an absolute path, a drive letter or a UNC path",
    "zip-backslash": "an entry name with a backslash",
    "zip-nul-name": "an entry name with a NUL byte",
    "zip-name-encoding": "an entry name that is not UTF-8",
    "zip-duplicate-entry": "two entries with the same name (also when only their case differs)",
    "zip-file-dir-clash": "a file and a directory with the same name",
    "zip-symlink": "a symbolic link entry",
    "zip-special-file": "a FIFO, device or socket entry",
    "zip-root-folder": "entries outside one root folder NAME-VERSION, or several root folders",
    # folders
    "special-file": "a FIFO, device or socket (never opened, so nothing blocks)",
    "folder-symlink": "a symbolic link that leaves the package, is broken or loops",
    "folder-name-encoding": "a file name that is not UTF-8",
    "folder-unsafe-name": "a file name with a backslash",
    "folder-unreadable": "a folder that cannot be listed",
    # limits (docs/safety.md: defaults and how to change them)
    "limit-artifact-size": "the zip file is larger than artifact_bytes",
    "limit-total-size": "the files add up to more than total_bytes uncompressed",
    "limit-file-size": "one file is larger than file_bytes uncompressed",
    "limit-entries": "more than entries files and directories",
    "limit-ratio": "an entry compresses better than ratio to 1 (zip bomb)",
    "limit-manifest-size": "manifest.yml is larger than manifest_bytes",
    "limit-yaml-size": "a YAML file is larger than yaml_bytes",
    "limit-yaml-depth": "a YAML document nests deeper than yaml_depth",
    "limit-yaml-nodes": "a YAML document holds more than yaml_nodes values",
    "limit-yaml-aliases": "a YAML document expands (aliases) to more than yaml_nodes values",
    # identity
    "identity-name": "the folder or zip file name differs from the manifest's name",
    "identity-version": "the folder or zip file version differs from the manifest's version",
}
"""Every rule code of the gate and what it refuses (listed in ``docs/safety.md``)."""

_CHUNK = 64 * 1024
"""Compressed bytes fed to the decompressor at a time, and most bytes it may return at once."""

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIG = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_CENTRAL_SIG = b"PK\x01\x02"
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIG = b"PK\x03\x04"
_DESCRIPTOR_SIG = b"PK\x07\x08"
_SIGNATURES = (_CENTRAL_SIG, _LOCAL_SIG, _EOCD_SIG, _ZIP64_EOCD_SIG, _ZIP64_LOCATOR_SIG)
_MAX_DESCRIPTOR = 24  # signature + crc + two 8-byte sizes
_DRIVE = re.compile(r"^[A-Za-z]:")
_UNIX = 3
_STORED, _DEFLATED = 0, 8

Buffer = bytes | bytearray | memoryview | mmap.mmap


@dataclass(frozen=True, slots=True)
class ZipMember:
    """One entry of a checked zip: its clean path (no trailing slash) and where its data is."""

    path: str
    is_dir: bool
    method: int
    crc: int
    compress_size: int
    file_size: int
    header_offset: int
    data_offset: int = 0


@dataclass(frozen=True, slots=True)
class CheckedZip:
    """What the gate learnt of a zip that passed: the root folder and the entries."""

    root: str
    members: tuple[ZipMember, ...]
    total_size: int


@dataclass(frozen=True, slots=True)
class CheckedFolder:
    """What the gate learnt of a folder that passed: file and directory count, total size."""

    files: int
    dirs: int
    total_size: int


def _refuse(location: str, rule: str, message: str, entry: str = "") -> UnsafePackageError:
    return UnsafePackageError(message, path=location, entry=entry, rule=rule)


# --- names (zips and trees) --------------------------------------------------------------------


def clean_entry_name(location: str, name: str, is_dir: bool) -> str:
    """The clean package path of zip entry ``name`` (no trailing slash), or a refusal: NUL,
    UNC, absolute, drive-letter and ``..`` names, backslashes, empty and ``.`` components."""
    if "\x00" in name:
        raise _refuse(location, "zip-nul-name", "has a NUL byte in its name", name)
    if name.startswith(("//", "\\\\")):
        raise _refuse(location, "zip-unsafe-path", "is a UNC path", name)
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise _refuse(location, "zip-unsafe-path", "is an absolute path", name)
    if ".." in re.split(r"[/\\]", name):
        raise _refuse(location, "zip-unsafe-path", "leaves the package", name)
    if "\\" in name:
        raise _refuse(location, "zip-backslash", "has a backslash in its name", name)
    body = name[:-1] if is_dir else name
    parts = body.split("/")
    if not body or any(p in ("", ".") for p in parts):
        raise _refuse(location, "zip-unsafe-path", "is not a normalised path", name)
    return body


def check_paths(
    location: str, paths: Iterable[tuple[str, bool]], *, limits: Limits | None = None
) -> None:
    """Refuse duplicate paths (also when they differ only in case: one file once extracted
    on a case-insensitive file system) and a file that is also a directory among
    ``(path, is_dir)`` (clean paths); directories implied by file paths count as directories."""
    lim = limits or active()
    files: set[str] = set()
    dirs: set[str] = set()
    seen_folded: dict[str, str] = {}
    for count, (path, is_dir) in enumerate(paths, 1):
        if count > lim.entries:
            raise _refuse(location, "limit-entries", f"has more than {lim.entries} entries")
        target = dirs if is_dir else files
        if path in target:
            raise _refuse(location, "zip-duplicate-entry", "appears twice", path)
        target.add(path)
        folded = path.casefold()  # one file once extracted on macOS or Windows
        other = seen_folded.setdefault(folded, path)
        if other != path:
            raise _refuse(
                location, "zip-duplicate-entry", f"differs from {other!r} only in case", path
            )
    for path in files:
        parent = path.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    clash = files & dirs
    if clash:
        raise _refuse(location, "zip-file-dir-clash", "is both a file and a directory", min(clash))


# --- zips --------------------------------------------------------------------------------------


def check_zip_file(
    path: Path, location: str | None = None, *, limits: Limits | None = None
) -> CheckedZip:
    """:func:`check_zip` on the zip file at ``path``, mapped (never read whole into memory)."""
    where = location or str(path)
    lim = limits or active()
    size = check_input_file(path, where, limits=lim)
    if size == 0:
        raise _refuse(where, "zip-invalid", "is empty: not a zip archive")
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return check_zip(buf, where, limits=lim)
    except OSError as exc:
        raise _refuse(where, "zip-invalid", f"cannot be read: {exc.strerror or exc}") from None


def check_input_file(path: Path, location: str, *, limits: Limits | None = None) -> int:
    """The size of the regular file at ``path`` (a package zip or its ``.sig``), refusing
    FIFOs, devices and sockets without opening them and files above ``artifact_bytes``."""
    lim = limits or active()
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _refuse(location, "folder-unreadable", f"cannot be read: {exc.strerror}") from None
    if not stat_mod.S_ISREG(st.st_mode):
        raise _refuse(location, "special-file", f"is a {_kind(st.st_mode)}, not a regular file")
    if st.st_size > lim.artifact_bytes:
        raise _refuse(
            location,
            "limit-artifact-size",
            f"is {st.st_size} bytes, more than the limit of {lim.artifact_bytes}",
        )
    return st.st_size


def check_artifact_size(size: int, location: str, *, limits: Limits | None = None) -> None:
    """Refuse an artifact (a zip as given or as built from a folder) above ``artifact_bytes``."""
    lim = limits or active()
    if size > lim.artifact_bytes:
        raise _refuse(
            location,
            "limit-artifact-size",
            f"is {size} bytes zipped, more than the limit of {lim.artifact_bytes}",
        )


def check_tree_limits(
    location: str, entries: Iterable[tuple[str, bool, int]], *, limits: Limits | None = None
) -> None:
    """Entry count, file, manifest and total sizes of a tree listed as ``(path, is_dir,
    size)`` (trees read from git, whose sizes are known only once read)."""
    lim = limits or active()
    count = total = 0
    for path, is_dir, size in entries:
        count += 1
        if count > lim.entries:
            raise _refuse(location, "limit-entries", f"has more than {lim.entries} entries")
        if is_dir:
            continue
        if path.rpartition("/")[2] == "manifest.yml" and size > lim.manifest_bytes:
            raise _refuse(
                location,
                "limit-manifest-size",
                f"is {size} bytes, more than the limit of {lim.manifest_bytes}",
                path,
            )
        if size > lim.file_bytes:
            raise _refuse(
                location,
                "limit-file-size",
                f"is {size} bytes, more than the limit of {lim.file_bytes}",
                path,
            )
        total += size
        if total > lim.total_bytes:
            raise _refuse(
                location,
                "limit-total-size",
                f"brings the total above the limit of {lim.total_bytes} bytes",
                path,
            )


def check_zip(data: Buffer, location: str, *, limits: Limits | None = None) -> CheckedZip:
    """Check the zip in ``data`` (see the module docstring); UnsafePackageError naming
    ``location``, the entry and the rule for the first problem found."""
    lim = limits or active()
    size = len(data)
    check_artifact_size(size, location, limits=lim)
    _eocd_pos, cd_offset, cd_size, count, cd_end = _end_records(data, size, location)
    if count > lim.entries:
        raise _refuse(
            location, "limit-entries", f"declares {count} entries, more than {lim.entries}"
        )
    members = _central_directory(data, location, cd_offset, cd_size, count, cd_end, lim)
    root = _root_folder(location, members)
    check_paths(location, ((m.path, m.is_dir) for m in members), limits=lim)
    members = _local_layout(data, location, members, cd_offset)
    total = 0
    for m in members:
        if not m.is_dir:
            _stream_member(data, location, m)
            total += m.file_size
    return CheckedZip(root, tuple(members), total)


def _end_records(data: Buffer, size: int, location: str) -> tuple[int, int, int, int, int]:
    """(end record position, central directory offset, size, entry count, where it ends)."""
    if size < _EOCD.size:
        raise _refuse(location, "zip-invalid", "is too short to be a zip archive")
    start = max(0, size - _EOCD.size - 0xFFFF)
    tail = bytes(data[start:size])
    candidates: list[int] = []  # end records whose comment runs exactly to the end of the file
    last = -1
    pos = tail.rfind(_EOCD_SIG)
    while pos >= 0:
        if pos + _EOCD.size <= len(tail):
            last = max(last, pos)
            comment_len = struct.unpack_from("<H", tail, pos + 20)[0]
            if pos + _EOCD.size + comment_len == len(tail):
                candidates.append(pos)
        pos = tail.rfind(_EOCD_SIG, 0, pos)
    if len(candidates) > 1:
        raise _refuse(
            location, "zip-hidden-directory", "hides a second end record in its archive comment"
        )
    if not candidates:
        if last >= 0:
            comment_len = struct.unpack_from("<H", tail, last + 20)[0]
            extra = len(tail) - (last + _EOCD.size + comment_len)
            if extra > 0:
                raise _refuse(
                    location, "zip-trailing-data", f"has {extra} bytes after its end record"
                )
        raise _refuse(location, "zip-invalid", "has no end of central directory record")
    genuine = candidates[0]
    comment = tail[genuine + _EOCD.size :]
    if any(sig in comment for sig in _SIGNATURES):
        raise _refuse(location, "zip-hidden-directory", "hides zip records in its archive comment")
    eocd_pos = start + genuine
    _sig, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, _clen = _EOCD.unpack_from(
        tail, genuine
    )
    if (disk != 0 or cd_disk != 0 or n_disk != n_total) and 0xFFFF not in (
        disk,
        cd_disk,
        n_disk,
        n_total,
    ):
        raise _refuse(location, "zip-multi-disk", "is split over several disks")
    count: int = n_total
    cd_end = eocd_pos
    if 0xFFFF in (n_disk, n_total) or 0xFFFFFFFF in (cd_size, cd_offset):
        loc_pos = eocd_pos - _ZIP64_LOCATOR.size
        if loc_pos < 0 or bytes(data[loc_pos : loc_pos + 4]) != _ZIP64_LOCATOR_SIG:
            raise _refuse(location, "zip-invalid", "declares zip64 sizes without a zip64 locator")
        _s, z_disk, rec_offset, disks = _ZIP64_LOCATOR.unpack_from(data, loc_pos)
        if z_disk != 0 or disks > 1:
            raise _refuse(location, "zip-multi-disk", "is split over several disks")
        if rec_offset + _ZIP64_EOCD.size > loc_pos:
            raise _refuse(location, "zip-invalid", "has a zip64 end record out of place")
        if bytes(data[rec_offset : rec_offset + 4]) != _ZIP64_EOCD_SIG:
            raise _refuse(location, "zip-invalid", "has no zip64 end record where its locator says")
        fields = _ZIP64_EOCD.unpack_from(data, rec_offset)
        rec_size, disk64, cd_disk64, n_disk64, n_total64, cd_size, cd_offset = (
            fields[1],
            fields[4],
            fields[5],
            fields[6],
            fields[7],
            fields[8],
            fields[9],
        )
        if rec_offset + 12 + rec_size != loc_pos:
            raise _refuse(location, "zip-unlisted-data", "has bytes inside its zip64 end records")
        if disk64 != 0 or cd_disk64 != 0 or n_disk64 != n_total64:
            raise _refuse(location, "zip-multi-disk", "is split over several disks")
        count = n_total64
        cd_end = rec_offset
    if cd_offset + cd_size != cd_end:
        if cd_end - cd_size > cd_offset and cd_end >= cd_size:
            raise _refuse(
                location,
                "zip-prepended-data",
                f"has {cd_end - cd_size - cd_offset} bytes before its first entry",
            )
        raise _refuse(location, "zip-invalid", "has a central directory out of place")
    return eocd_pos, cd_offset, cd_size, count, cd_end


def _decode_name(location: str, raw: bytes, flags: int) -> str:
    if b"\x00" in raw:
        shown = raw.decode("utf-8", "backslashreplace")
        raise _refuse(location, "zip-nul-name", "has a NUL byte in its name", shown)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", "backslashreplace")
        how = "flagged UTF-8 but" if flags & 0x800 else "a name that"
        raise _refuse(
            location, "zip-name-encoding", f"has {how} is not valid UTF-8", shown
        ) from None


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if tag == 0x0001:
            values = []
            for i in range(len(body) // 8):
                values.append(struct.unpack_from("<Q", body, i * 8)[0])
            it = iter(values)
            if usize == 0xFFFFFFFF:
                usize = next(it, usize)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if offset == 0xFFFFFFFF:
                offset = next(it, offset)
            break
        pos += 4 + length
    return usize, csize, offset


def _central_directory(
    data: Buffer,
    location: str,
    cd_offset: int,
    cd_size: int,
    count: int,
    cd_end: int,
    lim: Limits,
) -> list[ZipMember]:
    members: list[ZipMember] = []
    pos = cd_offset
    total = 0
    size = len(data)
    while pos < cd_end:
        if len(members) >= lim.entries:
            raise _refuse(location, "limit-entries", f"has more than {lim.entries} entries")
        if pos + _CENTRAL.size > cd_end or bytes(data[pos : pos + 4]) != _CENTRAL_SIG:
            raise _refuse(location, "zip-invalid", "has a damaged central directory")
        f = _CENTRAL.unpack_from(data, pos)
        host, flags, method = f[2], f[5], f[6]
        crc, csize, usize = f[9], f[10], f[11]
        n_len, e_len, c_len, disk = f[12], f[13], f[14], f[15]
        ext_attr, offset = f[17], f[18]
        end = pos + _CENTRAL.size + n_len + e_len + c_len
        if end > cd_end:
            raise _refuse(location, "zip-invalid", "has a damaged central directory")
        raw = bytes(data[pos + _CENTRAL.size : pos + _CENTRAL.size + n_len])
        extra = bytes(data[pos + _CENTRAL.size + n_len : pos + _CENTRAL.size + n_len + e_len])
        pos = end
        name = _decode_name(location, raw, flags)
        if 0xFFFFFFFF in (usize, csize, offset):
            usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
        is_dir = name.endswith("/")
        clean = clean_entry_name(location, name, is_dir)
        if disk not in (0, 0xFFFF):
            raise _refuse(location, "zip-multi-disk", "lives on another disk", name)
        if flags & 0x41:
            raise _refuse(location, "zip-encrypted", "is encrypted", name)
        if method not in (_STORED, _DEFLATED):
            raise _refuse(
                location, "zip-unsupported-method", f"uses compression method {method}", name
            )
        if host == _UNIX:
            kind = (ext_attr >> 16) & 0o170000
            if kind == stat_mod.S_IFLNK:
                raise _refuse(location, "zip-symlink", "is a symbolic link", name)
            if kind not in (0, stat_mod.S_IFREG, stat_mod.S_IFDIR):
                raise _refuse(location, "zip-special-file", f"is a {_kind(kind)}", name)
            if kind == stat_mod.S_IFDIR and not is_dir:
                raise _refuse(location, "zip-file-dir-clash", "is a directory without '/'", name)
        if is_dir and usize != 0:
            raise _refuse(
                location, "zip-size-mismatch", f"is a directory holding {usize} bytes", name
            )
        base = clean.rpartition("/")[2]
        if base == "manifest.yml" and usize > lim.manifest_bytes:
            raise _refuse(
                location,
                "limit-manifest-size",
                f"declares {usize} bytes, more than the limit of {lim.manifest_bytes}",
                name,
            )
        if usize > lim.file_bytes:
            raise _refuse(
                location,
                "limit-file-size",
                f"declares {usize} bytes uncompressed, more than the limit of {lim.file_bytes}",
                name,
            )
        if csize > size or offset > size:
            raise _refuse(
                location,
                "zip-size-mismatch",
                f"declares {csize} bytes of data beyond the file",
                name,
            )
        if usize > lim.ratio_min_bytes and usize > lim.ratio * max(csize, 1):
            raise _refuse(
                location,
                "limit-ratio",
                f"expands {csize} bytes to {usize} (more than {lim.ratio} to 1): a zip bomb",
                name,
            )
        total += usize
        if total > lim.total_bytes:
            raise _refuse(
                location,
                "limit-total-size",
                f"brings the uncompressed total above the limit of {lim.total_bytes} bytes",
                name,
            )
        members.append(ZipMember(clean, is_dir, method, crc, csize, usize, offset))
    if len(members) != count:
        raise _refuse(
            location,
            "zip-entry-count",
            f"declares {count} entries but its central directory holds {len(members)}",
        )
    return members


def _root_folder(location: str, members: list[ZipMember]) -> str:
    roots: set[str] = set()
    for m in members:
        first, sep, _rest = m.path.partition("/")
        if not sep and not m.is_dir:
            raise _refuse(location, "zip-root-folder", "is outside the root folder", m.path)
        roots.add(first)
    if len(roots) != 1:
        shown = ", ".join(sorted(roots)[:3]) or "none"
        raise _refuse(
            location,
            "zip-root-folder",
            f"must hold exactly one root folder NAME-VERSION, it holds {len(roots)} ({shown})",
        )
    return roots.pop()


def _local_layout(
    data: Buffer, location: str, members: list[ZipMember], cd_offset: int
) -> list[ZipMember]:
    """The members with their data offsets, checking local headers, overlaps and gaps."""
    ordered = sorted(members, key=lambda m: m.header_offset)
    for a, b in itertools.pairwise(ordered):
        if a.header_offset == b.header_offset:
            raise _refuse(
                location,
                "zip-overlapping-entries",
                f"shares its data with entry {a.path!r}",
                b.path,
            )
    out: dict[int, ZipMember] = {}
    expected = 0
    descriptor_slack = 0
    for m in ordered:
        gap = m.header_offset - expected
        if gap < 0:
            raise _refuse(
                location, "zip-overlapping-entries", "overlaps the entry before it", m.path
            )
        if gap > descriptor_slack:
            rule = "zip-prepended-data" if expected == 0 else "zip-unlisted-data"
            raise _refuse(location, rule, f"starts {gap} bytes after the entry before it", m.path)
        pos = m.header_offset
        if pos + _LOCAL.size > cd_offset or bytes(data[pos : pos + 4]) != _LOCAL_SIG:
            raise _refuse(location, "zip-header-mismatch", "has no local header", m.path)
        f = _LOCAL.unpack_from(data, pos)
        flags, method, crc, csize, usize, n_len, e_len = f[3], f[4], f[7], f[8], f[9], f[10], f[11]
        raw = bytes(data[pos + _LOCAL.size : pos + _LOCAL.size + n_len])
        name = raw.decode("utf-8", "replace")
        clean = name[:-1] if name.endswith("/") else name
        if clean != m.path or method != m.method or (flags & 0x41):
            raise _refuse(
                location,
                "zip-header-mismatch",
                f"has a local header for {name!r} that disagrees with the directory",
                m.path,
            )
        sizes_differ = 0xFFFFFFFF not in (csize, usize) and (
            csize != m.compress_size or usize != m.file_size
        )
        if not flags & 0x08 and (crc != m.crc or sizes_differ):
            raise _refuse(
                location,
                "zip-header-mismatch",
                "declares other sizes or CRC in its local header",
                m.path,
            )
        data_offset = pos + _LOCAL.size + n_len + e_len
        end = data_offset + m.compress_size
        if end > cd_offset:
            raise _refuse(
                location, "zip-size-mismatch", "declares more data than the archive holds", m.path
            )
        descriptor_slack = _MAX_DESCRIPTOR if flags & 0x08 else 0
        expected = end
        out[id(m)] = ZipMember(
            m.path,
            m.is_dir,
            m.method,
            m.crc,
            m.compress_size,
            m.file_size,
            m.header_offset,
            data_offset,
        )
    gap = cd_offset - expected
    if gap > descriptor_slack:
        raise _refuse(
            location, "zip-unlisted-data", f"has {gap} unlisted bytes before its directory"
        )
    return [out[id(m)] for m in members]


def _stream_member(data: Buffer, location: str, m: ZipMember) -> None:
    """Decompress ``m`` through a bounded buffer: never more than its declared size, CRC."""
    pos, end = m.data_offset, m.data_offset + m.compress_size
    produced = 0
    crc = 0
    if m.method == _STORED:
        if m.compress_size != m.file_size:
            raise _refuse(
                location,
                "zip-size-mismatch",
                f"is stored with {m.compress_size} bytes but declares {m.file_size}",
                m.path,
            )
        while pos < end:
            chunk = data[pos : min(end, pos + _CHUNK)]
            crc = zlib.crc32(chunk, crc)
            pos += len(chunk)
        produced = m.file_size
    else:
        d = zlib.decompressobj(-15)
        try:
            while True:
                if d.unconsumed_tail:
                    chunk_in: bytes = d.unconsumed_tail
                elif pos < end:
                    chunk_in = bytes(data[pos : min(end, pos + _CHUNK)])
                    pos += len(chunk_in)
                else:
                    break
                out = d.decompress(chunk_in, _CHUNK)
                produced += len(out)
                if produced > m.file_size:
                    raise _refuse(
                        location,
                        "zip-size-mismatch",
                        f"expands to more than the {m.file_size} bytes it declares",
                        m.path,
                    )
                crc = zlib.crc32(out, crc)
                if d.eof:
                    break
        except zlib.error as exc:
            raise _refuse(
                location, "zip-crc-mismatch", f"has corrupt data: {exc}", m.path
            ) from None
        if not d.eof or d.unused_data or pos < end:
            raise _refuse(
                location,
                "zip-size-mismatch",
                "has compressed data that does not end where it declares",
                m.path,
            )
    if produced != m.file_size:
        raise _refuse(
            location,
            "zip-size-mismatch",
            f"expands to {produced} bytes, not the {m.file_size} it declares",
            m.path,
        )
    if crc != m.crc:
        raise _refuse(location, "zip-crc-mismatch", "fails its CRC check", m.path)


# --- folders -----------------------------------------------------------------------------------


def _kind(mode: int) -> str:
    if stat_mod.S_ISFIFO(mode):
        return "FIFO"
    if stat_mod.S_ISSOCK(mode):
        return "socket"
    if stat_mod.S_ISCHR(mode) or stat_mod.S_ISBLK(mode):
        return "device"
    if stat_mod.S_ISLNK(mode):
        return "symbolic link"
    if stat_mod.S_ISDIR(mode):
        return "directory"
    return "special file"


def check_folder(
    root: Path,
    location: str | None = None,
    *,
    limits: Limits | None = None,
    links: Literal["refuse", "ignore"] = "refuse",
) -> CheckedFolder:
    """Walk the package folder ``root`` without opening any file (see the module docstring).

    Symbolic links are allowed when they resolve inside the package to a regular file or a
    directory; every other entry that is not a regular file or a directory is refused.
    ``links="ignore"`` (the ``serve --config`` folder source, whose trees treat them as absent,
    like the reference registry) skips links that leave the package, are broken or loop, and
    file names with a backslash (never resolvable as a package path) instead of refusing them.
    """
    lim = limits or active()
    where = location or str(root)
    try:
        real_root = os.path.realpath(root)
        st = os.stat(real_root)
    except (OSError, ValueError) as exc:
        raise _refuse(where, "folder-unreadable", f"cannot be read: {exc}") from None
    if not stat_mod.S_ISDIR(st.st_mode):
        raise _refuse(where, "special-file", f"is a {_kind(st.st_mode)}, not a package folder")
    inside = real_root.rstrip(os.sep) + os.sep
    files = dirs = total = 0
    stack: list[tuple[str, str, frozenset[str]]] = [(real_root, "", frozenset({real_root}))]
    while stack:
        real_dir, rel_dir, ancestors = stack.pop()
        try:
            with os.scandir(real_dir) as it:
                children = list(it)
        except OSError as exc:
            raise _refuse(
                where, "folder-unreadable", f"cannot be listed: {exc.strerror}", rel_dir or "."
            ) from None
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            try:
                child.name.encode("utf-8")
            except UnicodeEncodeError:
                shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
                raise _refuse(
                    where, "folder-name-encoding", "has a name that is not UTF-8", shown
                ) from None
            if "\\" in child.name:
                if links == "ignore":
                    continue
                raise _refuse(where, "folder-unsafe-name", "has a backslash in its name", rel)
            if files + dirs >= lim.entries:
                raise _refuse(where, "limit-entries", f"has more than {lim.entries} entries")
            try:
                st = child.stat(follow_symlinks=False)
                target = child.path
                if stat_mod.S_ISLNK(st.st_mode):
                    target = os.path.realpath(child.path)
                    if not target.startswith(inside):
                        if links == "ignore":
                            continue
                        raise _refuse(where, "folder-symlink", "links outside the package", rel)
                    st = os.stat(target)
            except OSError:
                if links == "ignore":
                    continue
                raise _refuse(where, "folder-symlink", "is a broken or looping link", rel) from None
            mode = st.st_mode
            if stat_mod.S_ISDIR(mode):
                if target in ancestors:
                    if links == "ignore":
                        continue
                    raise _refuse(where, "folder-symlink", "links to a folder that holds it", rel)
                dirs += 1
                stack.append((target, rel, ancestors | {target}))
            elif stat_mod.S_ISREG(mode):
                files += 1
                if child.name == "manifest.yml" and st.st_size > lim.manifest_bytes:
                    raise _refuse(
                        where,
                        "limit-manifest-size",
                        f"is {st.st_size} bytes, more than the limit of {lim.manifest_bytes}",
                        rel,
                    )
                if st.st_size > lim.file_bytes:
                    raise _refuse(
                        where,
                        "limit-file-size",
                        f"is {st.st_size} bytes, more than the limit of {lim.file_bytes}",
                        rel,
                    )
                total += st.st_size
                if total > lim.total_bytes:
                    raise _refuse(
                        where,
                        "limit-total-size",
                        f"brings the total above the limit of {lim.total_bytes} bytes",
                        rel,
                    )
            else:
                raise _refuse(where, "special-file", f"is a {_kind(mode)}, not a regular file", rel)
    return CheckedFolder(files, dirs, total)


# --- identity ----------------------------------------------------------------------------------


def _is_version(text: str) -> bool:
    from package_storage.errors import PackageStorageError
    from package_storage.packages.versions import Version

    try:
        Version.parse_strict(text)
    except PackageStorageError:
        return False
    return True


def check_identity(
    location: str,
    name: str,
    version: str,
    *,
    folder: str | None = None,
    parent: str | None = None,
    zip_file: str | None = None,
    root_dir: str | None = None,
) -> None:
    """Refuse a package whose names disagree with its manifest's ``name`` and ``version``.

    * ``folder`` (with its ``parent``): ``NAME/VERSION`` when ``folder`` is a version, else
      ``NAME-VERSION`` or ``NAME`` (a checkout's ``packages/NAME``);
    * ``zip_file``: ``NAME-VERSION.zip`` (names that do not end in ``.zip`` are not checked);
    * ``root_dir``: the zip's root folder, ``NAME-VERSION``.
    """
    want = f"{name}-{version}"
    if folder is not None:
        if _is_version(folder):
            if folder != version:
                raise _refuse(
                    location,
                    "identity-version",
                    f"is folder version {folder!r} but its manifest says version {version!r}",
                )
            if parent is not None and parent != name:
                raise _refuse(
                    location,
                    "identity-name",
                    f"is folder {parent + '/' + folder!r} but its manifest says name {name!r}",
                )
        elif folder != want and folder != name:
            rule = "identity-name" if not folder.startswith(name + "-") else "identity-version"
            raise _refuse(
                location,
                rule,
                f"is folder {folder!r} but its manifest says {name} {version}"
                f" (expected {want!r} or {name!r})",
            )
    if zip_file is not None and zip_file.endswith(".zip"):
        stem = os.path.basename(zip_file)[: -len(".zip")]
        if stem != want:
            rule = "identity-version" if stem.startswith(name + "-") else "identity-name"
            raise _refuse(
                location,
                rule,
                f"is named {stem + '.zip'!r} but holds {name} {version} ({want}.zip)",
            )
    if root_dir is not None and root_dir != want:
        raise _refuse(
            location,
            "zip-root-folder",
            f"has root folder {root_dir!r} but holds {name} {version} (expected {want!r})",
        )


def check_tree_identity(
    tree: PackageTree,
    location: str,
    *,
    folder: str | None = None,
    parent: str | None = None,
    zip_file: str | None = None,
    root_dir: str | None = None,
) -> None:
    """:func:`check_identity` with the name and version read from the tree's ``manifest.yml``
    (bounded by the YAML limits). Run before validation, so a package under a wrong name is
    refused for that, whatever else is wrong with it; a manifest without a string ``name``
    and ``version`` is left to validation to report."""
    try:
        raw = tree.read("manifest.yml")
    except NotFoundError:
        return
    loaded = load_yaml(raw, path=f"{location}/manifest.yml")
    if not isinstance(loaded, dict):
        return
    name, version = loaded.get("name"), loaded.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        return
    check_identity(
        location,
        name,
        version,
        folder=folder,
        parent=parent,
        zip_file=zip_file,
        root_dir=root_dir,
    )
