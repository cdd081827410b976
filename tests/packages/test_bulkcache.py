"""BulkCache: many documents in one file; anything unusable reads as empty."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from package_storage.packages.bulkcache import BulkCache

DOCS = {"ab" * 32: b'{"a":1}', "cd" * 32: b"", "ef" * 32: b'{"b":[1,2,3]}'}


def test_write_then_read(tmp_path: Path) -> None:
    bulk = BulkCache(tmp_path / "sub" / "x.docs")
    assert bulk.read() == {}
    assert bulk.write(DOCS)
    assert bulk.read() == DOCS
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.docs"]  # no temporary left
    assert bulk.write({})
    assert bulk.read() == {}


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],  # truncated
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),  # a flipped bit in a document
        lambda data: b"x" + data[1:],  # not this format
        lambda data: data[: data.index(b"\n") + 5],  # header cut
        lambda data: data.replace(b'"derived":1', b'"derived":0'),  # another derived format
        lambda data: b"",
    ],
)
def test_a_damaged_file_reads_as_empty(tmp_path: Path, damage: object) -> None:
    bulk = BulkCache(tmp_path / "x.docs")
    bulk.write(DOCS)
    data = bulk.path.read_bytes()
    bulk.path.write_bytes(damage(data))  # type: ignore[operator]
    assert bulk.read() == {}


def test_a_failed_write_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file").write_text("")
    bulk = BulkCache(tmp_path / "file" / "x.docs")  # its folder is a file
    with caplog.at_level(logging.WARNING, logger="package_storage"):
        assert not bulk.write(DOCS)
        assert not bulk.write(DOCS)
    assert len([r for r in caplog.records if "cannot store" in r.getMessage()]) == 1
