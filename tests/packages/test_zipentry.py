"""EntryReader: bounded-memory reads of one zip entry, refusing entries whose sizes or CRC lie."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from package_storage.errors import PackageError
from package_storage.packages.trees import ZipTree
from package_storage.packages.zipentry import EntryReader
from zip_bombs import ROOT, MiB, base_zip, declare_crc, declare_size


def _zip(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        zf.writestr(f"{ROOT}/manifest.yml", b"name: hello_nginx\n")
        for name, data in files.items():
            zf.writestr(f"{ROOT}/{name}", data)
    return buf.getvalue()


def _read_all(reader: EntryReader, step: int) -> bytes:
    parts = []
    while chunk := reader.read(step):
        assert len(chunk) <= step
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize(
    "method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_every_compression_method_reads_the_same_bytes(method: int) -> None:
    data = b"".join(b"line %d of a document\n" % i for i in range(20_000))
    tree = ZipTree.from_bytes(_zip({"docs/a.md": data}, method), "a.zip")
    for step in (1 << 10, 64 << 10, len(data)):
        reader = tree.open_entry("docs/a.md")
        assert reader is not None
        with reader:
            assert _read_all(reader, step) == data
            assert reader.position == reader.size == len(data)


@given(
    data=st.binary(max_size=200_000) | st.text(max_size=50_000).map(str.encode),
    step=st.integers(1, 100_000),
    skip=st.integers(0, 200_000),
)
# Found by hypothesis: a 1-byte read can leave output pending in the inflater after its last
# input was consumed; the reader must drain it instead of calling the entry short.
@example(data=b"\x90" * 5, step=1, skip=0)
def test_reads_and_skips_in_any_steps_give_the_entry(data: bytes, step: int, skip: int) -> None:
    tree = ZipTree.from_bytes(_zip({"f.bin": data}), "p.zip")
    reader = tree.open_entry("f.bin")
    assert reader is not None
    with reader:
        reader.skip(skip, step=max(1, step // 3))
        assert _read_all(reader, step) == data[skip:]


def test_missing_and_unsafe_paths_give_no_reader() -> None:
    tree = ZipTree.from_bytes(base_zip(), "p.zip")
    assert tree.open_entry("nope.md") is None
    assert tree.open_entry("../manifest.yml") is None
    assert tree.open_entry("docs") is None
    assert tree.open_entry("manifest.yml") is not None


def test_an_entry_larger_than_declared_is_refused_after_the_declared_size() -> None:
    # 10 MiB of zeros declared as 100 bytes: the reader stops at 100 and refuses the rest
    # instead of expanding it.
    data = declare_size(_zip({"docs/liar.md": bytes(10 * MiB)}), f"{ROOT}/docs/liar.md", 100)
    reader = ZipTree.from_bytes(data, "liar.zip").open_entry("docs/liar.md")
    assert reader is not None
    with reader, pytest.raises(PackageError, match="larger than its declared size"):
        reader.read(1 << 20)


def test_an_entry_declared_empty_that_is_not_is_refused() -> None:
    data = declare_size(_zip({"docs/liar.md": bytes(MiB)}), f"{ROOT}/docs/liar.md", 0)
    reader = ZipTree.from_bytes(data, "liar.zip").open_entry("docs/liar.md")
    assert reader is not None
    with reader, pytest.raises(PackageError, match="larger than its declared size"):
        reader.read(10)


def test_an_entry_shorter_than_declared_is_refused() -> None:
    data = declare_size(_zip({"docs/short.md": b"x" * 1000}), f"{ROOT}/docs/short.md", 5000)
    reader = ZipTree.from_bytes(data, "short.zip").open_entry("docs/short.md")
    assert reader is not None
    with reader, pytest.raises(PackageError, match="shorter than its declared size"):
        reader.read(5000)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_wrong_crc_is_refused_at_the_end(method: int) -> None:
    data = declare_crc(_zip({"docs/a.md": b"hello " * 100}, method), f"{ROOT}/docs/a.md", 1234)
    reader = ZipTree.from_bytes(data, "crc.zip").open_entry("docs/a.md")
    assert reader is not None
    with reader:
        assert reader.read(10) == b"hello hell"  # not known to be wrong before the end
        with pytest.raises(PackageError, match="CRC"):
            reader.read(1000)


def test_a_zip_on_disk_is_read_through_its_own_file(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    path.write_bytes(_zip({"docs/a.md": b"abc" * 1000}))
    tree = ZipTree.open(path)
    reader = tree.open_entry("docs/a.md")
    assert reader is not None
    with reader:
        assert reader.read(10_000) == b"abc" * 1000
    path.unlink()
    with pytest.raises(PackageError, match="cannot read zip archive"):
        tree.open_entry("docs/a.md")


def test_encrypted_entries_are_refused() -> None:
    data = bytearray(_zip({"docs/a.md": b"secret"}))
    tree = ZipTree.from_bytes(bytes(data), "enc.zip")
    info = tree._members["docs/a.md"]
    info.flag_bits |= 0x1
    with pytest.raises(PackageError, match="encrypted"):
        tree.open_entry("docs/a.md")
