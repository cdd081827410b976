"""Package trees: folders and zips (spec §7.2, §7.3)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from package_storage.errors import NotFoundError, PackageError
from package_storage.packages.model import PackageTree
from package_storage.packages.trees import FolderTree, ZipTree, clean_relative_path

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "epr"
LOCAL_STORAGE = FIXTURES / "local-storage"

UNSAFE = ["../x", "/etc/passwd", "a/../../x", "..", "a\\..\\b", "docs/\x00", "", ".", "./"]


# --- path cleaning ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("docs/README.md", "docs/README.md"),
        ("docs//README.md", "docs/README.md"),
        ("./docs/./README.md", "docs/README.md"),
        ("docs/", "docs"),
        *[(u, None) for u in UNSAFE],
    ],
)
def test_clean_relative_path(raw: str, clean: str | None) -> None:
    assert clean_relative_path(raw) == clean


# --- folders ----------------------------------------------------------------------------------


def _make_folder(root: Path) -> None:
    for rel in ["B", "_x", "a/child", "a/Child2", "a-b", "a.c", "z/y/deep.txt", ".hidden"]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)
    (root / "empty").mkdir()


def test_folder_walk_order(tmp_path: Path) -> None:
    _make_folder(tmp_path)
    tree = FolderTree(tmp_path)
    assert [(e.path, e.is_dir) for e in tree.entries()] == [
        (".hidden", False),
        ("B", False),
        ("_x", False),
        ("a", True),
        ("a/Child2", False),
        ("a/child", False),
        ("a-b", False),
        ("a.c", False),
        ("empty", True),
        ("z", True),
        ("z/y", True),
        ("z/y/deep.txt", False),
    ]
    entry = tree.stat("z/y/deep.txt")
    assert entry is not None and entry.size == len("z/y/deep.txt")
    assert entry.mtime == pytest.approx(os.stat(tmp_path / "z/y/deep.txt").st_mtime)


def test_folder_properties(tmp_path: Path) -> None:
    tree = FolderTree(tmp_path)
    assert tree.kind == "folder"
    assert tree.location == str(tmp_path)
    assert tree.root == tmp_path
    protocol: PackageTree = tree
    assert protocol.entries() == ()


def test_folder_stat_and_read(tmp_path: Path) -> None:
    _make_folder(tmp_path)
    tree = FolderTree(tmp_path)
    assert tree.read("a/child") == b"a/child"
    assert tree.read("a//child") == b"a/child"
    d = tree.stat("z/y")
    assert d is not None and d.is_dir and d.path == "z/y"
    assert tree.stat("missing") is None
    with pytest.raises(NotFoundError):
        tree.read("z/y")  # a directory
    with pytest.raises(NotFoundError):
        tree.read("missing")
    assert tree.real_path("a/child") == Path(os.path.realpath(tmp_path / "a/child"))
    assert tree.real_path("z") is None


@pytest.mark.parametrize("path", UNSAFE)
def test_folder_refuses_escaping_paths(tmp_path: Path, path: str) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a").mkdir()
    (tmp_path / "x").write_text("secret")
    (pkg / "b").write_text("inside")
    tree = FolderTree(pkg)
    assert tree.stat(path) is None
    with pytest.raises(NotFoundError):
        tree.read(path)


def test_folder_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    pkg = tmp_path / "pkg"
    (pkg / "docs").mkdir(parents=True)
    (pkg / "docs" / "README.md").write_text("readme")
    (pkg / "in_file").symlink_to(pkg / "docs" / "README.md")
    (pkg / "in_dir").symlink_to(pkg / "docs")
    (pkg / "out_file").symlink_to(outside / "secret")
    (pkg / "out_dir").symlink_to(outside)
    (pkg / "loop").symlink_to(pkg)
    (pkg / "broken").symlink_to(pkg / "nothing")
    tree = FolderTree(pkg)
    paths = [e.path for e in tree.entries()]
    assert "in_file" in paths and "in_dir/README.md" in paths
    assert not any(p.startswith(("out_", "broken")) for p in paths)
    assert "loop" in paths and "loop/loop" not in paths  # no infinite walk
    assert tree.read("in_file") == b"readme"
    for bad in ["out_file", "out_dir/secret", "out_dir", "broken"]:
        assert tree.stat(bad) is None
        with pytest.raises(NotFoundError):
            tree.read(bad)


def test_fixture_folder_order() -> None:
    tree = FolderTree(FIXTURES / "package" / "example" / "1.0.0")
    files = [e.path for e in tree.entries() if not e.is_dir]
    assert files[:3] == [
        "data_stream/foo/agent/stream/stream.yml.hbs",
        "data_stream/foo/elasticsearch/ingest_pipeline/pipeline-entry.json",
        "data_stream/foo/elasticsearch/ingest_pipeline/pipeline-http.json",
    ]
    assert files[-1] == "manifest.yml"


# --- zips -------------------------------------------------------------------------------------


def _zip(members: list[tuple[str, bytes | None]], *, compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2021, 7, 29, 19, 26, 14))
            info.compress_type = compress
            zf.writestr(info, b"" if data is None else data)
    return buf.getvalue()


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_zip_root_entries_and_reads() -> None:
    data = _zip(
        [
            ("other/file.txt", b"ignored"),
            ("pkg-1/docs/README.md", b"# hi"),
            ("pkg-1/a/b/manifest.yml", b"not root"),
            ("pkg-1/manifest.yml", b"name: x"),
            ("pkg-2/manifest.yml", b"second"),
            ("pkg-1/img/", None),
            ("pkg-1/img/i.png", b"\x89PNG" * 100),
            ("pkg-1/../evil", b"evil"),
            ("pkg-1/docs/README.md", b"duplicate"),
        ]
    )
    tree = ZipTree.from_bytes(data, "mem.zip")
    assert tree.kind == "zip" and tree.location == "mem.zip" and tree.path is None
    assert tree.root_dir == "pkg-1"
    assert [(e.path, e.is_dir) for e in tree.entries()] == [
        ("docs/README.md", False),
        ("a/b/manifest.yml", False),
        ("manifest.yml", False),
        ("img", True),
        ("img/i.png", False),
    ]
    assert tree.read("manifest.yml") == b"name: x"
    assert tree.read("docs/README.md") == b"# hi"
    assert tree.read("img/i.png") == b"\x89PNG" * 100
    implicit = tree.stat("docs")
    assert implicit is not None and implicit.is_dir
    assert tree.stat("a/b") is not None
    assert tree.stat("img/") is not None
    entry = tree.stat("manifest.yml")
    assert entry is not None and entry.size == 7
    assert entry.mtime == 1627586774.0  # 2021-07-29T19:26:14Z
    with pytest.raises(NotFoundError):
        tree.read("img")
    for bad in [*UNSAFE, "../other/file.txt", "../pkg-2/manifest.yml"]:
        assert tree.stat(bad) is None
        with pytest.raises(NotFoundError):
            tree.read(bad)


def test_zip_stored_and_open_from_disk(tmp_path: Path) -> None:
    data = _zip([("d/manifest.yml", b"m"), ("d/x", b"y" * 5000)], compress=zipfile.ZIP_STORED)
    path = tmp_path / "p.zip"
    path.write_bytes(data)
    tree = ZipTree.open(path)
    assert tree.path == path and tree.location == str(path)
    assert tree.read("x") == b"y" * 5000


def test_zip_reopened_where_it_moved(tmp_path: Path) -> None:
    """A zip in a blob cache that evicted it: ``reopen`` says where it is now (or None)."""
    data = _zip([("d/manifest.yml", b"m"), ("d/x", b"y" * 5000)])
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    first.write_bytes(data)
    calls: list[int] = []

    def reopen() -> Path | None:
        calls.append(1)
        if len(calls) > 1:
            return None
        second.write_bytes(data)
        return second

    tree = ZipTree.open(first, reopen=reopen)
    first.unlink()
    assert tree.read("x") == b"y" * 5000
    assert tree.path == second and len(calls) == 1
    entry = tree.open_entry("x")
    assert entry is not None
    second.unlink()
    with pytest.raises(PackageError, match="cannot read zip archive"):
        tree.read("x")
    assert len(calls) == 2


def test_zip_other_compression_falls_back(tmp_path: Path) -> None:
    data = _zip([("d/manifest.yml", b"m" * 300)], compress=zipfile.ZIP_BZIP2)
    assert ZipTree.from_bytes(data, "b.zip").read("manifest.yml") == b"m" * 300


def test_zip_corrupt_member(tmp_path: Path) -> None:
    data = bytearray(_zip([("d/manifest.yml", b"hello world" * 10)], compress=zipfile.ZIP_STORED))
    at = data.find(b"hello world")
    data[at] ^= 0xFF
    with pytest.raises(PackageError, match="corrupt"):
        ZipTree.from_bytes(bytes(data), "c.zip").read("manifest.yml")


def test_zip_without_root(tmp_path: Path) -> None:
    path = tmp_path / "noroot.zip"
    path.write_bytes(_zip([("manifest.yml", b"x"), ("a/b/manifest.yml", b"x")]))
    with pytest.raises(PackageError) as exc:
        ZipTree.open(path)
    assert f"failed to determine root directory in package (path: {path})" in str(exc.value)


def test_invalid_zip(tmp_path: Path) -> None:
    path = tmp_path / "bad.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(PackageError, match="invalid zip archive"):
        ZipTree.open(path)
    with pytest.raises(PackageError, match="invalid zip archive"):
        ZipTree.from_bytes(b"nope", "x.zip")


def test_fixture_zip_with_directory_entries() -> None:
    tree = ZipTree.open(LOCAL_STORAGE / "example-1.0.1.zip")
    assert tree.root_dir == "example-1.0.1"
    with zipfile.ZipFile(LOCAL_STORAGE / "example-1.0.1.zip") as zf:
        names = [n[len("example-1.0.1/") :].rstrip("/") for n in zf.namelist()][1:]
    assert [e.path for e in tree.entries()] == names
    assert (
        tree.read("docs/README.md")
        == (FIXTURES / "package" / "example" / "1.0.1" / "docs" / "README.md").read_bytes()
    )


def test_fixture_zip_without_directory_entries() -> None:
    tree = ZipTree.open(LOCAL_STORAGE / "nodirentries-1.0.0.zip")
    assert not any(e.is_dir for e in tree.entries())
    for d in ["data_stream", "data_stream/foo", "img", "kibana/visualization"]:
        entry = tree.stat(d)
        assert entry is not None and entry.is_dir
    assert tree.stat("kibana/visualization/missing.json") is None
