"""DocCache: derived documents in a folder, by key; atomic writes, failures logged once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from package_storage.packages.derived import FORMAT
from package_storage.packages.doccache import DocCache

KEY = "ab" * 32


def test_put_then_get(tmp_path: Path) -> None:
    cache = DocCache(tmp_path / "derived")
    assert cache.get(KEY) is None
    assert cache.put(KEY, b"{}")
    assert cache.get(KEY) == b"{}"
    assert cache.path(KEY) == tmp_path / "derived" / f"v{FORMAT}" / "ab" / f"{KEY}.json"
    assert not [p for p in cache.path(KEY).parent.iterdir() if p.name.startswith(".tmp-")]
    cache.delete(KEY)
    assert cache.get(KEY) is None


@pytest.mark.parametrize("key", ["", "AB" * 32, "../" + "a" * 20, "a" * 15, "g" * 64])
def test_keys_are_hex_digests(tmp_path: Path, key: str) -> None:
    cache = DocCache(tmp_path)
    with pytest.raises(ValueError, match="hex digits"):
        cache.get(key)
    with pytest.raises(ValueError, match="hex digits"):
        cache.put(key, b"x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_logged_once_and_reads_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        cache = DocCache(folder)
        with caplog.at_level(logging.WARNING):
            assert not cache.put(KEY, b"{}")
            assert not cache.put("cd" * 32, b"{}")
        assert len([r for r in caplog.records if "cannot store" in r.message]) == 1
        assert cache.get(KEY) is None
    finally:
        folder.chmod(0o700)


def test_a_file_in_the_way_fails_the_write_without_raising(tmp_path: Path) -> None:
    (tmp_path / "derived").write_text("not a folder")
    cache = DocCache(tmp_path / "derived")
    assert not cache.put(KEY, b"{}")
    assert cache.get(KEY) is None
