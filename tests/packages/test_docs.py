"""README, changelog and icon of a package (bounded, never an error)."""

from __future__ import annotations

import shutil
from pathlib import Path

from package_storage.packages.artifacts import build_zip
from package_storage.packages.docs import MAX_README_BYTES, read_docs
from package_storage.packages.trees import FolderTree, ZipTree

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "packages" / "hello_nginx" / "1.1.0"


def test_docs_of_an_example_package_zip() -> None:
    data = build_zip(FolderTree(EXAMPLE), "hello_nginx", "1.1.0")
    docs = read_docs(ZipTree.from_bytes(data, "hello_nginx-1.1.0.zip"))
    assert docs.readme is not None and "NGINX" in docs.readme and not docs.readme_cut
    assert [v.version for v in docs.changelog] == ["1.1.0", "1.0.0"]
    assert docs.changes_of("1.1.0")[0].type == "enhancement"
    assert docs.changes_of("9.9.9") == ()
    assert docs.icon is not None and docs.icon.content_type == "image/svg+xml"
    assert docs.icon.data.lstrip().startswith(b"<")


def test_missing_broken_and_large_files(tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    shutil.copytree(EXAMPLE, folder)
    (folder / "changelog.yml").write_text("- version: [unclosed\n")
    (folder / "docs" / "README.md").write_bytes(b"x" * (MAX_README_BYTES + 10))
    (folder / "img" / "hello_nginx.svg").unlink()
    docs = read_docs(FolderTree(folder))
    assert docs.changelog == () and docs.icon is None
    assert docs.readme is not None and len(docs.readme) == MAX_README_BYTES and docs.readme_cut
    (folder / "docs" / "README.md").unlink()
    (folder / "changelog.yml").write_text("just text\n")
    docs = read_docs(FolderTree(folder))
    assert docs.readme is None and docs.changelog == ()


def test_an_icon_outside_the_package_or_of_an_unknown_type_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    shutil.copytree(EXAMPLE, folder)
    manifest = folder / "manifest.yml"
    text = manifest.read_text()
    manifest.write_text(text.replace("src: /img/hello_nginx.svg", "src: /../../etc/passwd"))
    assert read_docs(FolderTree(folder)).icon is None
    (folder / "img" / "x.exe").write_bytes(b"MZ")
    manifest.write_text(text.replace("src: /img/hello_nginx.svg", "src: /img/x.exe"))
    assert read_docs(FolderTree(folder)).icon is None
