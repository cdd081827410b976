"""pathscan: one walk finds the zips and package folders; a stamp moves with any file change."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from package_storage.packages import pathscan

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "epr"
ZIP = FIXTURES / "local-storage" / "nodirentries-1.0.0.zip"


def _package(root: Path) -> Path:
    folder = root / "pkg" / "1.0.0"
    (folder / "docs").mkdir(parents=True)
    (folder / "data_stream" / "logs" / "fields").mkdir(parents=True)
    (folder / "manifest.yml").write_text("name: pkg\nversion: 1.0.0\n")
    (folder / "docs" / "README.md").write_text("readme")
    (folder / "data_stream" / "logs" / "fields" / "base.yml").write_text("- name: a\n")
    return folder


def _stamp(folder: Path) -> bytes:
    stamp = pathscan.stamp_folder(str(folder))
    assert stamp is not None
    return stamp


def _rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """New bytes of the same length, the modification time put back: only the change time
    (and the bytes) tell. Retried (bounded) until the clock moved the change time."""
    before = path.stat()
    assert len(data) == before.st_size
    for _ in range(200):
        path.write_bytes(data)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = path.stat()
        if after.st_ctime_ns != before.st_ctime_ns:
            break
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns


def test_an_unchanged_package_keeps_its_stamp(tmp_path: Path) -> None:
    folder = _package(tmp_path)
    assert _stamp(folder) == _stamp(folder)
    found = pathscan.scan([str(tmp_path)], stamps=True).folders
    assert [(f.path, f.version_dir, f.stamp) for f in found] == [
        (str(folder), "1.0.0", _stamp(folder))
    ]
    assert pathscan.scan([str(tmp_path)], stamps=False).folders[0].stamp is None


def _edit(name: str) -> Callable[[Path], None]:
    def content(folder: Path) -> None:
        (folder / "docs" / "README.md").write_text("README, longer")

    def same_size_and_mtime(folder: Path) -> None:
        _rewrite_keeping_size_and_mtime(folder / "docs" / "README.md", b"README")

    def deep_same_size_and_mtime(folder: Path) -> None:
        path = folder / "data_stream" / "logs" / "fields" / "base.yml"
        _rewrite_keeping_size_and_mtime(path, b"- name: b\n")

    def added(folder: Path) -> None:
        (folder / "docs" / "other.md").write_text("")

    def added_empty_folder(folder: Path) -> None:
        (folder / "kibana").mkdir()

    def removed(folder: Path) -> None:
        (folder / "docs" / "README.md").unlink()

    def renamed(folder: Path) -> None:
        (folder / "docs" / "README.md").rename(folder / "docs" / "README.txt")

    def replaced(folder: Path) -> None:  # an editor's save: a new file renamed over the old
        path = folder / "docs" / "README.md"
        before = path.stat()
        tmp = folder / "docs" / ".new"
        tmp.write_text("README")
        os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
        tmp.rename(path)

    def mode(folder: Path) -> None:
        (folder / "docs" / "README.md").chmod(0o600)

    def folder_renamed(folder: Path) -> None:
        (folder / "docs").rename(folder / "img")

    return locals()[name]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "edit",
    [
        "content",
        "same_size_and_mtime",
        "deep_same_size_and_mtime",
        "added",
        "added_empty_folder",
        "removed",
        "renamed",
        "replaced",
        "mode",
        "folder_renamed",
    ],
)
def test_any_change_moves_the_stamp(tmp_path: Path, edit: str) -> None:
    folder = _package(tmp_path)
    (folder / "docs" / "README.md").chmod(0o644)
    before = _stamp(folder)
    _edit(edit)(folder)
    assert _stamp(folder) != before


def test_links_are_followed_once_and_dangling_ones_recorded(tmp_path: Path) -> None:
    folder = _package(tmp_path)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f").write_text("a")
    (folder / "link").symlink_to(tmp_path / "outside")
    (folder / "loop").symlink_to(folder)
    (folder / "dangling").symlink_to(tmp_path / "nowhere")
    first = _stamp(folder)
    assert _stamp(folder) == first
    (tmp_path / "outside" / "f").write_text("ab")  # seen through the link
    second = _stamp(folder)
    assert second != first
    (tmp_path / "nowhere").write_text("")  # the dangling link resolves now
    assert _stamp(folder) != second


def test_a_folder_that_cannot_be_listed_gives_no_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _package(tmp_path)
    shutil.copy(ZIP, folder / "docs" / "a.zip")
    real = pathscan.sorted_entries

    def failing(path: str) -> list[os.DirEntry[str]]:
        if path == str(folder / "docs"):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(pathscan, "sorted_entries", failing)
    assert pathscan.stamp_folder(str(folder)) is None
    scan = pathscan.scan([str(tmp_path)], stamps=True)
    assert [(f.path, f.stamp) for f in scan.folders] == [(str(folder), None)]
    assert scan.zips == []  # the zip walk skips what it cannot list, as the reference


def test_zips_at_any_depth_in_walk_order_with_their_stamps(tmp_path: Path) -> None:
    folder = _package(tmp_path)
    for rel in ["b.zip", "a/z.zip", "a.zip", "pkg/x.zip", "pkg/notes/n.zip"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ZIP, tmp_path / rel)
    shutil.copy(ZIP, folder / "docs" / "in-a-package.zip")
    (tmp_path / "a.zip.sig").write_text("sig")
    (tmp_path / "linked").symlink_to(tmp_path / "a")  # links are not followed for zips
    (tmp_path / "pkg" / "2.0.0").symlink_to(folder)
    scan = pathscan.scan([str(tmp_path)], stamps=True)
    assert [Path(z.path).relative_to(tmp_path).as_posix() for z in scan.zips] == [
        "a/z.zip",
        "a.zip",
        "b.zip",
        "pkg/1.0.0/docs/in-a-package.zip",
        "pkg/notes/n.zip",
        "pkg/x.zip",
    ]
    assert [z.signed for z in scan.zips] == [False, True, False, False, False, False]
    assert all(z.stamp == pathscan.stamp_file(z.path) for z in scan.zips)
    assert [Path(f.path).relative_to(tmp_path).as_posix() for f in scan.folders] == [
        "pkg/1.0.0",
        "pkg/2.0.0",
    ]
    assert ("ignoring unexpected directory", {"file.path": str(tmp_path / "pkg" / "notes")}) in (
        scan.warnings
    )
    assert ("ignoring unexpected file", {"file.path": str(tmp_path / "pkg" / "x.zip")}) in (
        scan.warnings
    )
    without = pathscan.scan([str(tmp_path)], stamps=False)
    assert [z.path for z in without.zips] == [z.path for z in scan.zips]
    assert without.warnings == scan.warnings


def test_a_changed_zip_moves_its_stamp(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    shutil.copy(ZIP, path)
    before = pathscan.stamp_file(str(path))
    data = path.read_bytes()
    _rewrite_keeping_size_and_mtime(path, data[:-1] + bytes([data[-1] ^ 1]))
    assert pathscan.stamp_file(str(path)) != before


def test_entries_are_in_byte_order(tmp_path: Path) -> None:
    names = ["b", "a.zip", "a", "Z", "é", "ä"]
    for name in names:
        (tmp_path / name).write_text("")
    got = [e.name for e in pathscan.sorted_entries(str(tmp_path))]
    assert got == sorted(names, key=os.fsencode)
    undecodable = os.fsdecode(b"\xf5x")  # sorts after U+10000 as bytes, before as text
    (tmp_path / undecodable).write_text("")
    (tmp_path / "\U0001f600").write_text("")
    got = [e.name for e in pathscan.sorted_entries(str(tmp_path))]
    assert got == sorted([*names, undecodable, "\U0001f600"], key=os.fsencode)
