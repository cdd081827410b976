"""A corpus of hostile packages, generated (a plain module, imported by name by the safety tests).

Every case starts from the valid example package ``hello_nginx`` 1.1.0 and breaks one rule of
the archive-safety gate (``package_storage.packages.safety``), as a zip (crafted byte by byte
with :func:`raw_zip`, since :mod:`zipfile` refuses to write most of these) or as a folder.
``Case.build(dir)`` writes the package below ``dir`` and returns the path to publish;
``Case.rule`` is the rule code the refusal must name; ``Case.env`` holds limit overrides
(``PACKAGE_STORAGE_MAX_*``) for cases that exercise a limit with small inputs.

Big cases (a 1 GiB zip bomb, a 1.2 GiB file) are cheap: the bomb is deflated in chunks (about
1 MB on disk), the big folder files are sparse.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import socket
import stat
import struct
import unittest
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "packages"
BASE = EXAMPLES / "hello_nginx" / "1.1.0"
NAME, VERSION = "hello_nginx", "1.1.0"
ROOT = f"{NAME}-{VERSION}/"
MiB = 1024 * 1024
GiB = 1024 * MiB


# --- a raw zip writer --------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """One entry as written: ``data`` is what the local header is followed by (already
    compressed when ``method`` is 8 and ``deflate`` is False)."""

    name: bytes
    data: bytes = b""
    method: int = 8
    deflate: bool = True  # compress ``data`` (else it is written as given)
    mode: int | None = None  # Unix mode (external attributes), None: a plain file/dir
    flags: int = 0
    usize: int | None = None  # declared uncompressed size (None: the real one)
    csize: int | None = None  # declared compressed size (None: the real one)
    crc: int | None = None  # declared CRC (None: the real one)
    zip64_usize: int | None = None  # declare this size through a zip64 extra field
    local_name: bytes | None = None  # another name in the local header
    same_offset_as: int | None = None  # central record points at entry N's local header
    gap_before: bytes = b""  # bytes written before the local header (unlisted data)


def raw_zip(
    entries: list[Raw],
    *,
    comment: bytes = b"",
    prepend: bytes = b"",
    append: bytes = b"",
    count: int | None = None,
    shift_offsets: bool = False,
    disk: int = 0,
) -> bytes:
    """A zip of ``entries`` with every structural knob a hostile archive turns."""
    body = bytearray(prepend)
    base = len(prepend) if shift_offsets else 0
    central = bytearray()
    offsets: list[int] = []
    for e in entries:
        raw = e.data
        payload = raw
        if e.method == 8 and e.deflate:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = c.compress(raw) + c.flush()
        crc = e.crc if e.crc is not None else zlib.crc32(raw)
        usize = e.usize if e.usize is not None else len(raw)
        csize = e.csize if e.csize is not None else len(payload)
        extra = b""
        if e.zip64_usize is not None:
            extra = struct.pack("<2H2Q", 1, 16, e.zip64_usize, csize)
            usize32, csize32 = 0xFFFFFFFF, 0xFFFFFFFF
        else:
            usize32, csize32 = usize, csize
        if e.same_offset_as is not None:
            offset = offsets[e.same_offset_as]
        else:
            body += e.gap_before
            offset = len(body) - len(prepend) + base
            lname = e.local_name if e.local_name is not None else e.name
            body += struct.pack(
                "<4s2B4HL2L2H",
                b"PK\x03\x04",
                20,
                0,
                e.flags,
                e.method,
                0,
                0x21,
                crc,
                csize32,
                usize32,
                len(lname),
                len(extra),
            )
            body += lname + extra + payload
        offsets.append(offset)
        attr = (e.mode << 16) if e.mode is not None else 0
        central += struct.pack(
            "<4s4B4HL2L5H2L",
            b"PK\x01\x02",
            20,
            3,
            20,
            0,
            e.flags,
            e.method,
            0,
            0x21,
            crc,
            csize32,
            usize32,
            len(e.name),
            len(extra),
            0,
            0,
            0,
            attr,
            offset,
        )
        central += e.name + extra
    cd_offset = len(body) - len(prepend) + base
    n = len(entries) if count is None else count
    zip64 = b""
    n16 = n
    if n > 0xFFFF:  # zip64 end record and locator, the 16-bit counts saturated
        rec_offset = cd_offset + len(central)
        zip64 = struct.pack(
            "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, disk, disk, n, n, len(central), cd_offset
        ) + struct.pack("<4sLQL", b"PK\x06\x07", 0, rec_offset, 1)
        n16 = 0xFFFF
    eocd = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", disk, disk, n16, n16, len(central), cd_offset, len(comment)
    )
    return bytes(body) + bytes(central) + zip64 + eocd + comment + append


def _base_files() -> list[tuple[str, bytes | None]]:
    """(path, bytes) of the example package in walk order; None for directories."""
    out: list[tuple[str, bytes | None]] = []
    for dirpath, dirnames, filenames in os.walk(BASE):
        dirnames.sort()
        rel = os.path.relpath(dirpath, BASE)
        if rel != ".":
            out.append((rel.replace(os.sep, "/") + "/", None))
        for f in sorted(filenames):
            path = f if rel == "." else f"{rel}/{f}"
            out.append((path.replace(os.sep, "/"), (Path(dirpath) / f).read_bytes()))
    return out


def base_entries(root: str = ROOT, skip: tuple[str, ...] = ()) -> list[Raw]:
    """The example package as raw entries under ``root``."""
    out = [Raw((root + "").encode(), method=0)] if root else []
    for path, data in _base_files():
        if path in skip:
            continue
        out.append(Raw((root + path).encode(), data or b"", method=0 if data is None else 8))
    return out


def manifest_bytes() -> bytes:
    return (BASE / "manifest.yml").read_bytes()


def deep_yaml(levels: int = 900) -> bytes:
    """A valid manifest whose ``vars`` value nests ``levels`` mappings deep."""
    deep = "".join("  " * i + f"k{i}:\n" for i in range(levels)) + "  " * levels + "v: 1\n"
    return (
        manifest_bytes()
        + b"owner_extra:\n"
        + b"".join(b"  " + line.encode() + b"\n" for line in deep.splitlines())
    )


def alias_bomb(prefix: bytes = b"", indent: str = "") -> bytes:
    """Nine levels of nine aliases each: 9**9 values once expanded, a few hundred bytes."""
    lines = [f"{indent}bomb_a: &a [x, x, x, x, x, x, x, x, x]"]
    names = "abcdefghi"
    for prev, cur in itertools.pairwise(names):
        lines.append(f"{indent}bomb_{cur}: &{cur} [{', '.join('*' + prev for _ in range(9))}]")
    return prefix + ("\n".join(lines) + "\n").encode()


def big_yaml_comment(size: int) -> bytes:
    """A YAML comment line of ``size`` bytes that does not compress (no ratio refusal)."""
    return b"# " + base64.b64encode(os.urandom(size * 3 // 4)) + b"\n"


FIELDS = "data_stream/access/fields/fields.yml"


def zeros_deflated(size: int) -> bytes:
    """``size`` zero bytes, deflated in chunks (never ``size`` bytes in memory)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(MiB)
    parts = [c.compress(chunk) for _ in range(size // MiB)]
    parts.append(c.compress(bytes(size % MiB)))
    parts.append(c.flush())
    return b"".join(parts)


_BOMBS: dict[int, tuple[bytes, int]] = {}


def bomb_entry(name: bytes, size: int, **kw: object) -> Raw:
    """An entry expanding to ``size`` zero bytes (declared as ``usize`` when given)."""
    if size not in _BOMBS:
        c = zlib.crc32(b"")
        chunk = bytes(MiB)
        for _ in range(size // MiB):
            c = zlib.crc32(chunk, c)
        c = zlib.crc32(bytes(size % MiB), c)
        _BOMBS[size] = (zeros_deflated(size), c)
    data, crc = _BOMBS[size]
    params: dict[str, object] = {"usize": size, "crc": crc}
    params.update(kw)
    return Raw(name, data, deflate=False, **params)  # type: ignore[arg-type]


# --- cases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # "zip" or "folder"
    rule: str
    make: Callable[[Path], Path] = field(repr=False)
    env: dict[str, str] = field(default_factory=dict)
    family: str = ""

    def build(self, where: Path) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        return self.make(where)


def _zip_case(
    id: str,
    rule: str,
    entries: Callable[[], list[Raw]] | None = None,
    *,
    family: str,
    file_name: str = f"{NAME}-{VERSION}.zip",
    env: dict[str, str] | None = None,
    raw: Callable[[], bytes] | None = None,
    **zip_kw: object,
) -> Case:
    def make(where: Path) -> Path:
        data = raw() if raw is not None else raw_zip(entries(), **zip_kw)  # type: ignore[misc, arg-type]
        path = where / file_name
        path.write_bytes(data)
        return path

    return Case(f"zip-{id}", "zip", rule, make, dict(env or {}), family)


def _plus(*extra: Raw, root: str = ROOT, skip: tuple[str, ...] = ()) -> Callable[[], list[Raw]]:
    return lambda: [*base_entries(root, skip), *extra]


def _replace_manifest(data: bytes) -> Callable[[], list[Raw]]:
    return _plus(Raw((ROOT + "manifest.yml").encode(), data), skip=("manifest.yml",))


def _with_name(name: str, change: Callable[[Raw], Raw]) -> Callable[[], list[Raw]]:
    def build() -> list[Raw]:
        return [change(e) if e.name == (ROOT + name).encode() else e for e in base_entries()]

    return build


def _folder(where: Path, parent: str = NAME, version: str = VERSION) -> Path:
    dest = where / parent / version
    shutil.copytree(BASE, dest, symlinks=True)
    return dest


def _folder_case(
    id: str,
    rule: str,
    change: Callable[[Path], None],
    *,
    family: str,
    parent: str = NAME,
    version: str = VERSION,
    env: dict[str, str] | None = None,
) -> Case:
    def make(where: Path) -> Path:
        dest = _folder(where, parent, version)
        change(dest)
        return dest

    return Case(f"folder-{id}", "folder", rule, make, dict(env or {}), family)


def _fifo(rel: str) -> Callable[[Path], None]:
    def change(dest: Path) -> None:
        target = dest / rel
        if target.exists():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(target)

    return change


def _socket(dest: Path) -> None:
    here = os.getcwd()
    os.chdir(dest / "docs")
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("control.sock")
        s.close()
    finally:
        os.chdir(here)


def _device(dest: Path) -> None:
    """A character device (/dev/null's numbers); skipped where mknod is not allowed."""
    try:
        os.mknod(dest / "docs" / "null.md", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        raise unittest.SkipTest("mknod is not allowed here") from None


def _symlink(rel: str, target: str) -> Callable[[Path], None]:
    def change(dest: Path) -> None:
        link = dest / rel
        if link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(target, link)

    return change


def _write(rel: str, data: bytes) -> Callable[[Path], None]:
    def change(dest: Path) -> None:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)

    return change


def _write_many(files: dict[str, bytes]) -> Callable[[Path], None]:
    def change(dest: Path) -> None:
        for rel, data in files.items():
            _write(rel, data)(dest)

    return change


def _sparse(rel: str, size: int) -> Callable[[Path], None]:
    def change(dest: Path) -> None:
        with open(dest / rel, "ab") as fh:
            fh.truncate(size)

    return change


def _bad_name(dest: Path) -> None:
    with open(os.path.join(os.fsencode(dest / "docs"), b"caf\xe9.md"), "wb") as fh:
        fh.write(b"latin-1 name\n")


def _many_files(n: int) -> Callable[[Path], None]:
    def change(dest: Path) -> None:
        extra = dest / "docs" / "many"
        extra.mkdir()
        for i in range(n):
            (extra / f"f{i}.md").write_bytes(b"x")

    return change


def _loop(dest: Path) -> None:
    os.symlink("..", dest / "docs" / "loop")


def _eocd_tamper(offset_from_end: int, value: bytes) -> Callable[[], bytes]:
    def build() -> bytes:
        data = bytearray(raw_zip(base_entries()))
        pos = len(data) - offset_from_end
        data[pos : pos + len(value)] = value
        return bytes(data)

    return build


def _hidden_directory() -> bytes:
    """The comment holds a complete second zip (evil entries) whose directory a lenient
    reader that scans from the end would pick."""
    evil = raw_zip([Raw(b"hello_nginx-1.1.0/manifest.yml", b"name: evil\n")])
    return raw_zip(base_entries(), comment=evil)


def _appended_zip() -> bytes:
    return raw_zip(base_entries()) + raw_zip([Raw(b"evil-1.0.0/evil", b"evil")])


def _truncated() -> bytes:
    data = raw_zip(base_entries())
    return data[: len(data) // 2]


def _overlapping(n: int) -> Callable[[], list[Raw]]:
    """``n`` directory entries whose records all point at the README's local header."""

    def build() -> list[Raw]:
        entries = base_entries()
        index = next(i for i, e in enumerate(entries) if e.name.endswith(b"docs/README.md"))
        for i in range(n):
            entries.append(Raw(f"{ROOT}copy{i}/".encode(), method=0, same_offset_as=index))
        return entries

    return build


def _overlap_inside() -> list[Raw]:
    """Entry A declares a compressed size that runs over entry B's local header."""
    entries = base_entries()
    entries.append(Raw((ROOT + "docs/a.md").encode(), b"a" * 100, method=0, csize=200, usize=200))
    entries.append(Raw((ROOT + "docs/b.md").encode(), b"b" * 200, method=0))
    return entries


def cases() -> list[Case]:
    """Every case of the corpus (ids are unique)."""
    r = ROOT
    small = {"PACKAGE_STORAGE_MAX_ENTRIES": "40"}
    out: list[Case] = [
        # paths that leave the package
        _zip_case("dotdot", "zip-unsafe-path", _plus(Raw(b"../evil", b"x")), family="path"),
        _zip_case(
            "dotdot-inside",
            "zip-unsafe-path",
            _plus(Raw(f"{r}../../evil".encode(), b"x")),
            family="path",
        ),
        _zip_case("absolute", "zip-unsafe-path", _plus(Raw(b"/etc/evil", b"x")), family="path"),
        _zip_case("drive", "zip-unsafe-path", _plus(Raw(b"C:/evil.txt", b"x")), family="path"),
        _zip_case(
            "drive-backslash", "zip-unsafe-path", _plus(Raw(b"C:\\evil.txt", b"x")), family="path"
        ),
        _zip_case(
            "unc", "zip-unsafe-path", _plus(Raw(b"//server/share/evil", b"x")), family="path"
        ),
        _zip_case(
            "unc-backslash",
            "zip-unsafe-path",
            _plus(Raw(b"\\\\server\\share\\x", b"x")),
            family="path",
        ),
        _zip_case(
            "dotdot-backslash",
            "zip-unsafe-path",
            _plus(Raw(f"{r}..\\..\\evil".encode(), b"x")),
            family="path",
        ),
        _zip_case(
            "backslash",
            "zip-backslash",
            _plus(Raw(f"{r}docs\\evil.md".encode(), b"x")),
            family="path",
        ),
        _zip_case(
            "dot-component",
            "zip-unsafe-path",
            _plus(Raw(f"{r}./docs/x.md".encode(), b"x")),
            family="path",
        ),
        _zip_case(
            "double-slash",
            "zip-unsafe-path",
            _plus(Raw(f"{r}docs//x.md".encode(), b"x")),
            family="path",
        ),
        _zip_case(
            "nul",
            "zip-nul-name",
            _plus(Raw(f"{r}manifest.yml\0.txt".encode(), b"x")),
            family="path",
        ),
        _zip_case(
            "bad-utf8-flagged",
            "zip-name-encoding",
            _plus(Raw(r.encode() + b"docs/caf\xe9.md", b"x", flags=0x800)),
            family="path",
        ),
        _zip_case(
            "bad-utf8",
            "zip-name-encoding",
            _plus(Raw(r.encode() + b"docs/\xff\xfe.md", b"x")),
            family="path",
        ),
        # entry types
        _zip_case(
            "symlink",
            "zip-symlink",
            _plus(Raw(f"{r}docs/passwd".encode(), b"/etc/passwd", mode=stat.S_IFLNK | 0o777)),
            family="type",
        ),
        _zip_case(
            "symlink-then-write",
            "zip-symlink",
            _plus(
                Raw(f"{r}up".encode(), b"../../..", mode=stat.S_IFLNK | 0o777),
                Raw(f"{r}up/evil".encode(), b"x"),
            ),
            family="type",
        ),
        _zip_case(
            "symlink-dir",
            "zip-symlink",
            _plus(Raw(f"{r}tmp/".encode(), b"/tmp", mode=stat.S_IFLNK | 0o777)),
            family="type",
        ),
        _zip_case(
            "fifo-entry",
            "zip-special-file",
            _plus(Raw(f"{r}docs/pipe".encode(), b"", mode=stat.S_IFIFO | 0o644)),
            family="type",
        ),
        _zip_case(
            "device-entry",
            "zip-special-file",
            _plus(Raw(f"{r}docs/dev".encode(), b"", mode=stat.S_IFCHR | 0o644)),
            family="type",
        ),
        # duplicates and clashes
        _zip_case(
            "duplicate-manifest",
            "zip-duplicate-entry",
            _plus(Raw(f"{r}manifest.yml".encode(), b"name: evil\nversion: 6.6.6\n")),
            family="duplicate",
        ),
        _zip_case(
            "duplicate-readme",
            "zip-duplicate-entry",
            _plus(Raw(f"{r}docs/README.md".encode(), b"<script>evil</script>")),
            family="duplicate",
        ),
        _zip_case(
            "duplicate-case",
            "zip-duplicate-entry",
            _plus(Raw(f"{r}Manifest.yml".encode(), b"name: evil\n")),
            family="duplicate",
        ),
        _zip_case(
            "duplicate-dir",
            "zip-duplicate-entry",
            _plus(Raw(f"{r}docs/".encode(), method=0)),
            family="duplicate",
        ),
        _zip_case(
            "file-and-dir",
            "zip-file-dir-clash",
            _plus(Raw(f"{r}docs".encode(), b"I am a file")),
            family="duplicate",
        ),
        _zip_case(
            "file-and-implied-dir",
            "zip-file-dir-clash",
            _plus(Raw(f"{r}img/hello_nginx.svg/x".encode(), b"x")),
            family="duplicate",
        ),
        _zip_case(
            "dir-with-data",
            "zip-size-mismatch",
            _plus(Raw(f"{r}data/".encode(), b"hidden")),
            family="size",
        ),
        # root folder
        _zip_case(
            "two-roots",
            "zip-root-folder",
            _plus(Raw(b"other-1.0.0/manifest.yml", b"x")),
            family="root",
        ),
        _zip_case("top-level-file", "zip-root-folder", _plus(Raw(b"evil.sh", b"x")), family="root"),
        _zip_case(
            "root-not-name-version",
            "zip-root-folder",
            lambda: base_entries(f"{NAME}/"),
            family="root",
        ),
        _zip_case(
            "root-other-name",
            "zip-root-folder",
            lambda: base_entries("other-1.1.0/"),
            family="root",
        ),
        _zip_case("no-root", "zip-root-folder", lambda: base_entries(""), family="root"),
        # structure
        _zip_case(
            "hidden-directory", "zip-hidden-directory", raw=_hidden_directory, family="structure"
        ),
        _zip_case(
            "comment-signature",
            "zip-hidden-directory",
            lambda: base_entries(),
            comment=b"look: PK\x01\x02 here",
            family="structure",
        ),
        _zip_case(
            "prepended",
            "zip-prepended-data",
            lambda: base_entries(),
            prepend=b"MZ" * 500,
            family="structure",
        ),
        _zip_case(
            "prepended-shifted",
            "zip-prepended-data",
            lambda: base_entries(),
            prepend=b"#!/bin/sh\nexit 0\n" * 10,
            shift_offsets=True,
            family="structure",
        ),
        _zip_case(
            "appended",
            "zip-trailing-data",
            lambda: base_entries(),
            append=b"\0" * 100,
            family="structure",
        ),
        _zip_case("appended-zip", "zip-prepended-data", raw=_appended_zip, family="structure"),
        _zip_case(
            "count-low", "zip-entry-count", lambda: base_entries(), count=3, family="structure"
        ),
        _zip_case(
            "count-high", "zip-entry-count", lambda: base_entries(), count=200, family="structure"
        ),
        _zip_case(
            "multi-disk", "zip-multi-disk", lambda: base_entries(), disk=1, family="structure"
        ),
        _zip_case(
            "not-a-zip", "zip-invalid", raw=lambda: b"this is not a zip\n" * 10, family="structure"
        ),
        _zip_case("empty", "zip-invalid", raw=lambda: b"", family="structure"),
        _zip_case("truncated", "zip-invalid", raw=_truncated, family="structure"),
        _zip_case(
            "eocd-offset",
            "zip-invalid",
            raw=_eocd_tamper(6, b"\xff\xff\xff\x7f"),
            family="structure",
        ),
        _zip_case(
            "gap",
            "zip-unlisted-data",
            _plus(Raw(f"{r}docs/x.md".encode(), b"x", gap_before=b"hidden payload")),
            family="structure",
        ),
        _zip_case(
            "local-name",
            "zip-header-mismatch",
            _with_name(
                "docs/README.md", lambda e: replace(e, local_name=f"{r}docs/EVIL.md".encode())
            ),
            family="structure",
        ),
        _zip_case(
            "encrypted",
            "zip-encrypted",
            _with_name("docs/README.md", lambda e: replace(e, flags=1)),
            family="structure",
        ),
        _zip_case(
            "bzip2",
            "zip-unsupported-method",
            _with_name("docs/README.md", lambda e: replace(e, method=12, deflate=False)),
            family="structure",
        ),
        # overlapping entries
        _zip_case("overlap-41", "zip-overlapping-entries", _overlapping(41), family="overlap"),
        _zip_case("overlap-1", "zip-overlapping-entries", _overlapping(1), family="overlap"),
        _zip_case("overlap-inside", "zip-overlapping-entries", _overlap_inside, family="overlap"),
        # sizes that lie
        _zip_case(
            "declared-4g",
            "limit-file-size",
            _with_name("docs/README.md", lambda e: replace(e, usize=4_294_967_000)),
            family="size",
        ),
        _zip_case(
            "zip64-2p62",
            "limit-file-size",
            _with_name("docs/README.md", lambda e: replace(e, zip64_usize=2**62)),
            family="size",
        ),
        _zip_case(
            "declared-small",
            "zip-size-mismatch",
            _with_name("docs/README.md", lambda e: replace(e, usize=10)),
            family="size",
        ),
        _zip_case(
            "declared-large",
            "zip-size-mismatch",
            _with_name("docs/README.md", lambda e: replace(e, usize=100_000)),
            family="size",
        ),
        _zip_case(
            "csize-beyond",
            "zip-size-mismatch",
            _with_name("docs/README.md", lambda e: replace(e, csize=10_000_000)),
            family="size",
        ),
        _zip_case(
            "stored-size",
            "zip-size-mismatch",
            _with_name("docs/README.md", lambda e: replace(e, method=0, usize=5)),
            family="size",
        ),
        _zip_case(
            "crc",
            "zip-crc-mismatch",
            _with_name("docs/README.md", lambda e: replace(e, crc=12345)),
            family="size",
        ),
        _zip_case(
            "corrupt-deflate",
            "zip-crc-mismatch",
            _with_name("docs/README.md", lambda e: replace(e, data=b"\xff" * 50, deflate=False)),
            family="size",
        ),
        # zip bombs
        _zip_case(
            "bomb-1g-docs",
            "limit-file-size",
            _plus(bomb_entry(f"{r}docs/big.md".encode(), 1 * GiB)),
            family="bomb",
        ),
        _zip_case(
            "bomb-1g-manifest",
            "limit-manifest-size",
            lambda: [
                *base_entries(skip=("manifest.yml",)),
                bomb_entry(f"{r}manifest.yml".encode(), 1 * GiB),
            ],
            family="bomb",
        ),
        _zip_case(
            "bomb-ratio",
            "limit-ratio",
            _plus(bomb_entry(f"{r}docs/big.md".encode(), 100 * MiB)),
            family="bomb",
        ),
        _zip_case(
            "bomb-lying-size",
            "zip-size-mismatch",
            _plus(bomb_entry(f"{r}docs/big.md".encode(), 1 * GiB, usize=1000)),
            family="bomb",
        ),
        _zip_case(
            "bomb-lying-manifest",
            "zip-size-mismatch",
            lambda: [
                *base_entries(skip=("manifest.yml",)),
                bomb_entry(f"{r}manifest.yml".encode(), 1 * GiB, usize=4000),
            ],
            family="bomb",
        ),
        _zip_case(
            "bomb-total",
            "limit-total-size",
            _plus(*(Raw(f"{r}docs/part{i}.md".encode(), os.urandom(3000)) for i in range(4))),
            env={"PACKAGE_STORAGE_MAX_TOTAL_BYTES": "12000"},
            family="limit",
        ),
        # limits
        _zip_case(
            "entries",
            "limit-entries",
            _plus(*(Raw(f"{r}docs/f{i}.md".encode(), b"x") for i in range(60))),
            env=small,
            family="limit",
        ),
        _zip_case(
            "entries-110k",
            "limit-entries",
            raw=lambda: raw_zip(
                [Raw(f"{r}d/{i}".encode(), method=0) for i in range(110_000)],
            ),
            family="limit",
        ),
        _zip_case(
            "artifact-size",
            "limit-artifact-size",
            lambda: base_entries(),
            env={"PACKAGE_STORAGE_MAX_ARTIFACT_BYTES": "2000"},
            family="limit",
        ),
        _zip_case(
            "manifest-2m",
            "limit-manifest-size",
            _replace_manifest(manifest_bytes() + b"#" * (2 * MiB) + b"\n"),
            family="limit",
        ),
        _zip_case(
            "file-size-env",
            "limit-file-size",
            _plus(Raw(f"{r}docs/big.md".encode(), os.urandom(5000))),
            env={"PACKAGE_STORAGE_MAX_FILE_BYTES": "4096"},
            family="limit",
        ),
        # YAML
        _zip_case(
            "yaml-deep-manifest", "limit-yaml-depth", _replace_manifest(deep_yaml()), family="yaml"
        ),
        _zip_case(
            "yaml-deep-flow",
            "limit-yaml-depth",
            _replace_manifest(manifest_bytes() + b"x: " + b"[" * 900 + b"]" * 900 + b"\n"),
            family="yaml",
        ),
        _zip_case(
            "yaml-alias-manifest",
            "limit-yaml-aliases",
            _replace_manifest(alias_bomb(manifest_bytes())),
            family="yaml",
        ),
        _zip_case(
            "yaml-alias-fields",
            "limit-yaml-aliases",
            _with_name(
                FIELDS,
                lambda e: replace(
                    e, data=alias_bomb(b"- name: bomb\n  type: keyword\n  x:\n", indent="    ")
                ),
            ),
            family="yaml",
        ),
        _zip_case(
            "yaml-big-fields",
            "limit-yaml-size",
            _with_name(FIELDS, lambda e: replace(e, data=e.data + big_yaml_comment(5 * MiB))),
            family="yaml",
        ),
        # identity
        _zip_case(
            "name-version-file",
            "identity-version",
            lambda: base_entries(),
            file_name=f"{NAME}-1.0.0.zip",
            family="identity",
        ),
        _zip_case(
            "name-other-file",
            "identity-name",
            lambda: base_entries(),
            file_name="other_pkg-1.1.0.zip",
            family="identity",
        ),
        _zip_case(
            "holds-2.0.0",
            "identity-version",
            _replace_manifest(manifest_bytes().replace(b"version: 1.1.0", b"version: 2.0.0")),
            family="identity",
        ),
    ]
    out += [
        # folders: types that must never be opened
        _folder_case("fifo-manifest", "special-file", _fifo("manifest.yml"), family="type"),
        _folder_case("fifo-docs", "special-file", _fifo("docs/notes.md"), family="type"),
        _folder_case(
            "fifo-deep", "special-file", _fifo("data_stream/access/fields/pipe.yml"), family="type"
        ),
        _folder_case("socket", "special-file", _socket, family="type"),
        _folder_case("device", "special-file", _device, family="type"),
        # links
        _folder_case(
            "symlink-out",
            "folder-symlink",
            _symlink("docs/passwd.md", "/etc/passwd"),
            family="path",
        ),
        _folder_case(
            "symlink-manifest-out",
            "folder-symlink",
            _symlink("manifest.yml", "/etc/hostname"),
            family="path",
        ),
        _folder_case(
            "symlink-broken",
            "folder-symlink",
            _symlink("docs/gone.md", "nowhere.md"),
            family="path",
        ),
        _folder_case("symlink-loop", "folder-symlink", _loop, family="path"),
        _folder_case(
            "symlink-dir-out", "folder-symlink", _symlink("docs/etc", "/etc"), family="path"
        ),
        # names
        _folder_case("bad-utf8-name", "folder-name-encoding", _bad_name, family="path"),
        _folder_case(
            "backslash-name", "folder-unsafe-name", _write("docs/a\\b.md", b"x"), family="path"
        ),
        # sizes
        _folder_case(
            "file-1.2g", "limit-file-size", _sparse("docs/README.md", 1288490189), family="size"
        ),
        _folder_case(
            "manifest-1g", "limit-manifest-size", _sparse("manifest.yml", 1 * GiB), family="size"
        ),
        _folder_case(
            "manifest-2m",
            "limit-manifest-size",
            _write("manifest.yml", manifest_bytes() + b"#" * (2 * MiB) + b"\n"),
            family="size",
        ),
        _folder_case(
            "total",
            "limit-total-size",
            _write_many({f"docs/p{i}.md": b"x" * 3000 for i in range(4)}),
            env={"PACKAGE_STORAGE_MAX_TOTAL_BYTES": "12000"},
            family="limit",
        ),
        _folder_case(
            "file-size-env",
            "limit-file-size",
            _write("docs/big.md", b"x" * 5000),
            env={"PACKAGE_STORAGE_MAX_FILE_BYTES": "4096"},
            family="limit",
        ),
        _folder_case("entries", "limit-entries", _many_files(60), env=small, family="limit"),
        # YAML
        _folder_case(
            "yaml-deep-manifest",
            "limit-yaml-depth",
            _write("manifest.yml", deep_yaml()),
            family="yaml",
        ),
        _folder_case(
            "yaml-deep-flow",
            "limit-yaml-depth",
            _write("manifest.yml", manifest_bytes() + b"x: " + b"[" * 900 + b"]" * 900 + b"\n"),
            family="yaml",
        ),
        _folder_case(
            "yaml-alias-manifest",
            "limit-yaml-aliases",
            _write("manifest.yml", alias_bomb(manifest_bytes())),
            family="yaml",
        ),
        _folder_case(
            "yaml-big-fields",
            "limit-yaml-size",
            _write(FIELDS, (BASE / FIELDS).read_bytes() + b"#" * (5 * MiB) + b"\n"),
            family="yaml",
        ),
        # identity
        _folder_case(
            "other-name",
            "identity-name",
            _write(
                "manifest.yml", manifest_bytes().replace(b"name: hello_nginx", b"name: other_pkg")
            ),
            family="identity",
        ),
        _folder_case(
            "other-parent", "identity-name", lambda d: None, parent="other_pkg", family="identity"
        ),
        _folder_case(
            "version-dir", "identity-version", lambda d: None, version="2.0.0", family="identity"
        ),
        _folder_case(
            "flat-other",
            "identity-name",
            lambda d: None,
            parent="x",
            version="other_pkg",
            family="identity",
        ),
        _folder_case(
            "flat-version",
            "identity-version",
            lambda d: None,
            parent="build",
            version=f"{NAME}-2.0.0",
            family="identity",
        ),
    ]
    ids = [c.id for c in out]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return out


def good_folder(where: Path) -> Path:
    """The valid example package as ``where/hello_nginx/1.1.0``."""
    return _folder(where)


def good_zip(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{NAME}-{VERSION}.zip"
    path.write_bytes(raw_zip(base_entries()))
    return path


def cases_by_id(case_id: str) -> Case:
    """One case by its id."""
    return next(c for c in cases() if c.id == case_id)
