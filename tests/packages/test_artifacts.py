"""Deterministic zip artifacts of package folders (spec §8)."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

import pytest

from package_storage.errors import NotFoundError, PackageError
from package_storage.packages.artifacts import (
    DIR_MODE,
    FILE_MODE,
    ZIP_TIMESTAMP,
    build_zip,
    signature_location,
    zip_listing,
)
from package_storage.packages.model import SourceKind, TreeEntry
from package_storage.packages.trees import FolderTree, ZipTree

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "epr"


class ListTree:
    """A package tree given as a list of entries (only what build_zip reads)."""

    def __init__(self, files: dict[str, bytes], dirs: Sequence[str] = ()) -> None:
        self.files = files
        self.dirs = list(dirs)

    @property
    def kind(self) -> SourceKind:
        return "folder"

    @property
    def location(self) -> str:
        return "/tmp/list-tree/"

    def entries(self) -> Sequence[TreeEntry]:
        out = [TreeEntry(d, True, 0, 1.0) for d in self.dirs]
        out += [TreeEntry(p, False, len(b), 1.0) for p, b in self.files.items()]
        return out

    def stat(self, path: str) -> TreeEntry | None:
        return None

    def read(self, path: str) -> bytes:
        if path not in self.files:
            raise NotFoundError(f"no file {path!r}")
        return self.files[path]


def listing_text(data: bytes) -> str:
    return "\n".join(f"{size} {name}" for size, name in zip_listing(data))


def copy_package(tmp_path: Path, rel: str) -> Path:
    dest = tmp_path / "pkg"
    shutil.copytree(FIXTURES / rel, dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the fixtures are read-only
    return dest


def test_folder_zip_matches_reference_preview() -> None:
    tree = FolderTree(FIXTURES / "package" / "example" / "0.0.2")
    data = build_zip(tree, "example", "0.0.2")
    golden = (FIXTURES / "generated" / "example-0.0.2.zip-preview.txt").read_text().strip()
    assert listing_text(data) == golden


def test_same_folder_gives_same_bytes_after_touch_and_chmod(tmp_path: Path) -> None:
    root = copy_package(tmp_path, "package/example/1.0.0")
    first = build_zip(FolderTree(root), "example", "1.0.0")
    assert build_zip(FolderTree(root), "example", "1.0.0") == first
    for path in root.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
        if path.is_file():
            path.chmod(0o600)
    assert build_zip(FolderTree(root), "example", "1.0.0") == first
    (root / "docs" / "README.md").write_bytes(b"changed\n")
    assert build_zip(FolderTree(root), "example", "1.0.0") != first


def test_entries_have_fixed_time_modes_and_deflate() -> None:
    tree = ListTree({"a/b.txt": b"hello", "c.txt": b""}, dirs=["a"])
    with zipfile.ZipFile(BytesIO(build_zip(tree, "p", "1.0.0"))) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["p-1.0.0/a/", "p-1.0.0/a/b.txt", "p-1.0.0/c.txt"]
        for info in infos:
            assert info.date_time == ZIP_TIMESTAMP
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert info.create_system == 3
            mode = info.external_attr >> 16
            if info.is_dir():
                assert mode == stat.S_IFDIR | DIR_MODE
                assert info.file_size == 0
            else:
                assert mode == stat.S_IFREG | FILE_MODE
        assert archive.read("p-1.0.0/a/b.txt") == b"hello"
        assert archive.testzip() is None


def test_walk_order_is_depth_first_bytewise() -> None:
    # A plain string sort would put "a-b" before "a/x" ('-' < '/'); the walk visits "a" first.
    tree = ListTree({"a-b": b"1", "a/x": b"2", "B": b"3", ".hidden": b"4", "a/.h/y": b"5"})
    names = [name for _, name in zip_listing(build_zip(tree, "n", "1.0.0"))]
    assert names == [
        "n-1.0.0/.hidden",
        "n-1.0.0/B",
        "n-1.0.0/a/",
        "n-1.0.0/a/.h/",
        "n-1.0.0/a/.h/y",
        "n-1.0.0/a/x",
        "n-1.0.0/a-b",
    ]


def test_missing_directory_entries_are_synthesised() -> None:
    tree = ZipTree.open(FIXTURES / "local-storage" / "nodirentries-1.0.0.zip")
    listing = zip_listing(build_zip(tree, "nodirentries", "1.0.0"))
    names = [name for _, name in listing]
    assert "nodirentries-1.0.0/docs/" in names
    assert names.index("nodirentries-1.0.0/docs/") < names.index(
        "nodirentries-1.0.0/docs/README.md"
    )
    assert all(name.startswith("nodirentries-1.0.0/") for name in names)


@pytest.mark.parametrize("bad", ["../evil", "/abs", "a/../../b", "a\\b", "a\x00b", "a//b", "./a"])
def test_unsafe_entry_names_are_refused(bad: str) -> None:
    with pytest.raises(PackageError, match="unsafe entry name"):
        build_zip(ListTree({bad: b"x"}), "p", "1.0.0")


def test_unreadable_file_raises_not_found() -> None:
    class Vanishing(ListTree):
        def read(self, path: str) -> bytes:
            raise NotFoundError(f"no file {path!r}")

    with pytest.raises(NotFoundError):
        build_zip(Vanishing({"a": b"x"}), "p", "1.0.0")


def test_signature_location() -> None:
    assert signature_location(ListTree({})) == "/tmp/list-tree.sig"
    zip_tree = ZipTree.open(FIXTURES / "local-storage" / "example-1.0.1.zip")
    assert signature_location(zip_tree).endswith("local-storage/example-1.0.1.zip.sig")
