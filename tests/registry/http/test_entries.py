"""ExtractCache and EntryContent (registry/http/entries.py) on their own."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from package_storage.errors import PackageError
from package_storage.packages.trees import ZipTree
from package_storage.packages.zipentry import EntryReader
from package_storage.registry.http.entries import EntryContent, ExtractCache, read_small
from zip_bombs import ROOT, MiB, declare_crc

DATA = b"".join(b"%06d some text of a large document\n" % i for i in range(80_000))  # ~3 MiB


def _tree(data: bytes = DATA, location: str = "p.zip") -> ZipTree:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{ROOT}/manifest.yml", b"name: hello_nginx\n")
        zf.writestr(f"{ROOT}/docs/big.md", data)
    return ZipTree.from_bytes(buf.getvalue(), location)


def _opener(tree: ZipTree, file: str = "docs/big.md") -> Callable[[], EntryReader]:
    def open_reader() -> EntryReader:
        reader = tree.open_entry(file)
        assert reader is not None
        return reader

    return open_reader


def _files(cache: ExtractCache) -> list[Path]:
    return sorted(Path(cache.directory).iterdir()) if cache.directory else []


def test_concurrent_requests_extract_once(tmp_path: Path) -> None:
    cache = ExtractCache(directory=tmp_path)
    tree = _tree()
    results: list[bytes] = []
    lock = threading.Lock()

    def worker() -> None:
        content = cache.open(("k",), tree, len(DATA), _opener(tree))
        assert content is not None
        try:
            data = content.read(0, content.size)
        finally:
            content.close()
        with lock:
            results.append(data)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [DATA] * 6
    assert cache.extractions == 1 and len(_files(cache)) == 1
    cache.close()
    assert not Path(tmp_path).joinpath(Path(str(cache.directory)).name).exists()


def test_another_tree_under_the_same_key_is_extracted_again(tmp_path: Path) -> None:
    cache = ExtractCache(directory=tmp_path)
    first, second = _tree(), _tree(DATA[::-1])
    one = cache.open(("k",), first, len(DATA), _opener(first))
    two = cache.open(("k",), second, len(DATA), _opener(second))
    assert one is not None and two is not None
    assert one.read(0, 10) == DATA[:10] and two.read(0, 10) == DATA[::-1][:10]
    one.close()
    two.close()
    assert cache.extractions == 2 and len(_files(cache)) == 1 and cache.used_bytes == len(DATA)


def test_too_large_entries_and_no_room_give_none(tmp_path: Path) -> None:
    tree = _tree()
    assert (
        ExtractCache(max_file_bytes=MiB, directory=tmp_path).open(
            ("k",), tree, len(DATA), _opener(tree)
        )
        is None
    )
    assert (
        ExtractCache(max_bytes=MiB, directory=tmp_path).open(("k",), tree, len(DATA), _opener(tree))
        is None
    )


def test_a_corrupt_entry_raises_and_leaves_nothing(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{ROOT}/manifest.yml", b"name: hello_nginx\n")
        zf.writestr(f"{ROOT}/docs/big.md", DATA)
    tree = ZipTree.from_bytes(declare_crc(buf.getvalue(), f"{ROOT}/docs/big.md", 7), "bad.zip")
    cache = ExtractCache(directory=tmp_path)
    with pytest.raises(PackageError, match="CRC"):
        cache.open(("k",), tree, len(DATA), _opener(tree))
    assert _files(cache) == [] and cache.used_bytes == 0 and len(cache) == 0
    with pytest.raises(PackageError, match="CRC"):
        read_small(tree, "docs/big.md")


def test_entry_content_reads_any_offsets_in_any_order() -> None:
    tree = _tree()
    content = EntryContent(tree, "docs/big.md", len(DATA))
    try:
        for start, length in [(0, 100), (2_000_000, 50), (10, 10), (len(DATA) - 5, 5), (0, 3)]:
            assert content.read(start, length) == DATA[start : start + length]
        assert content.materialize() is content  # no cache: streamed
    finally:
        content.close()


def test_extracted_finds_only_what_was_already_extracted(tmp_path: Path) -> None:
    cache = ExtractCache(directory=tmp_path)
    tree = _tree()
    content = EntryContent(tree, "docs/big.md", len(DATA), cache)
    assert content.extracted() is None  # nothing extracted by asking
    assert _files(cache) == []
    made = content.materialize()
    assert made is not content
    made.close()
    hit = content.extracted()
    assert hit is not None
    try:
        assert hit.immutable and hit.read(0, hit.size) == DATA and hit.fileno() >= 0
    finally:
        hit.close()
    assert EntryContent(tree, "docs/big.md", len(DATA)).extracted() is None  # no cache
    assert cache.extractions == 1
