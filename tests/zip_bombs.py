"""Builders of zip bombs for the tests (a plain module, imported by name).

The package is the example ``hello_nginx-1.0.0`` with extra documentation files made of zeros:
deflate compresses zeros about 1000:1, so a 1 GiB entry costs about 1 MB of zip. Nothing is
ever held whole in memory while building: entries are written through ``ZipFile.open("w")``.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

from package_storage.packages.artifacts import build_zip
from package_storage.packages.trees import FolderTree

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "packages"
NAME, VERSION = "hello_nginx", "1.0.0"
ROOT = f"{NAME}-{VERSION}"
MiB = 1 << 20
GiB = 1 << 30
_CHUNK = 4 * MiB


def base_zip() -> bytes:
    """The deterministic zip of the example package (what a publish stores)."""
    return build_zip(FolderTree(EXAMPLES / NAME / VERSION), NAME, VERSION)


def write_bomb(dest: Path, zeros: Mapping[str, int], *, level: int = 9) -> Path:
    """``dest``: the example package plus ``ROOT/<path>`` of ``size`` zero bytes for each item
    of ``zeros`` (deflated). Returns ``dest``."""
    with zipfile.ZipFile(io.BytesIO(base_zip())) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info), compress_type=info.compress_type)
        block = bytes(_CHUNK)
        for rel, size in zeros.items():
            info = zipfile.ZipInfo(f"{ROOT}/{rel}", date_time=(2024, 1, 2, 3, 4, 6))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = size  # lets zipfile decide on zip64 up front
            with out.open(info, "w", force_zip64=size > 2 * GiB) as fh:
                left = size
                while left > 0:
                    n = min(left, _CHUNK)
                    fh.write(block if n == _CHUNK else bytes(n))
                    left -= n
            del info
    return dest


def declare_size(data: bytes, member: str, declared: int) -> bytes:
    """``data`` (a zip without data descriptors or zip64 records) with the uncompressed size
    of ``member`` replaced by ``declared`` in its local header and central directory record:
    a zip whose sizes lie."""
    out = bytearray(data)
    name = member.encode()
    pos = out.find(b"PK\x01\x02")
    found = False
    while pos >= 0:
        name_len = struct.unpack_from("<H", out, pos + 28)[0]
        if bytes(out[pos + 46 : pos + 46 + name_len]) == name:
            struct.pack_into("<L", out, pos + 24, declared)
            local = struct.unpack_from("<L", out, pos + 42)[0]
            assert out[local : local + 4] == b"PK\x03\x04"
            struct.pack_into("<L", out, local + 22, declared)
            found = True
        pos = out.find(b"PK\x01\x02", pos + 46)
    assert found, member
    return bytes(out)


def declare_crc(data: bytes, member: str, crc: int) -> bytes:
    """``data`` with the CRC-32 of ``member`` replaced (local header and central directory)."""
    out = bytearray(data)
    name = member.encode()
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", out, pos + 28)[0]
        if bytes(out[pos + 46 : pos + 46 + name_len]) == name:
            struct.pack_into("<L", out, pos + 16, crc)
            local = struct.unpack_from("<L", out, pos + 42)[0]
            struct.pack_into("<L", out, local + 14, crc)
            return bytes(out)
        pos = out.find(b"PK\x01\x02", pos + 46)
    raise AssertionError(member)
