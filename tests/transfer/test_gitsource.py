"""Reading package folders straight from git branches (``gitsource.py``): real repositories
built in a temporary folder with the ``git`` command."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

import git_repos
from git_repos import HELLO, copy_version, git
from package_storage.errors import NotFoundError, PackageError, StorageError
from package_storage.packages.artifacts import build_zip
from package_storage.packages.trees import FolderTree
from package_storage.transfer.gitsource import (
    GitReader,
    MemoryTree,
    git_tree,
    list_packages,
    resolve_branch,
    run_git,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def make_repo(root: Path, branches: Mapping[str, Mapping[str, Path]]) -> Path:
    """Branches holding ``packages/<name>/<version>`` copies of folders (the version their path
    names) beside ``packages/README.md``, which is not a package."""
    return git_repos.make_repo(
        root, branches, set_versions=True, files={"packages/README.md": "not a package\n"}
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path,
        {
            "production": {"hello_nginx/1.0.0": HELLO},
            "staging": {"hello_nginx/1.0.0": HELLO, "hello_nginx/1.2.0": HELLO},
        },
    )


def test_list_packages_gives_versions_trees_and_files(repo: Path) -> None:
    commit = resolve_branch(repo, "staging")
    assert commit is not None
    pkgs = list_packages(repo, commit)
    assert [(p.name, p.version) for p in pkgs] == [
        ("hello_nginx", "1.0.0"),
        ("hello_nginx", "1.2.0"),
    ]
    first = pkgs[0]
    assert first.path == "packages/hello_nginx/1.0.0"
    assert first.commit == commit
    assert first.has_manifest
    expected = sorted(
        str(p.relative_to(HELLO)).replace(os.sep, "/") for p in HELLO.rglob("*") if p.is_file()
    )
    assert sorted(f.path for f in first.files) == expected
    tree = run_git(repo, "rev-parse", f"{commit}:packages/hello_nginx/1.0.0").decode().strip()
    assert first.tree == tree
    assert first.location.endswith(":packages/hello_nginx/1.0.0")


def test_same_content_in_two_branches_has_the_same_tree_id(repo: Path) -> None:
    prod = list_packages(repo, resolve_branch(repo, "production") or "")
    staging = list_packages(repo, resolve_branch(repo, "staging") or "")
    assert prod[0].tree == staging[0].tree
    assert staging[0].tree != staging[1].tree  # other version in the manifest


def test_git_tree_builds_the_same_zip_as_the_folder(repo: Path, tmp_path: Path) -> None:
    pkg = list_packages(repo, resolve_branch(repo, "production") or "")[0]
    folder = copy_version(HELLO, tmp_path / "f" / "hello_nginx" / "1.0.0", "1.0.0")
    with GitReader(repo) as reader:
        tree = git_tree(pkg, reader)
        assert tree.kind == "folder"
        assert [e.path for e in tree.entries()] == [e.path for e in FolderTree(folder).entries()]
        assert tree.read("manifest.yml") == (folder / "manifest.yml").read_bytes()
        assert build_zip(tree, "hello_nginx", "1.0.0") == build_zip(
            FolderTree(folder), "hello_nginx", "1.0.0"
        )


def test_reader_refuses_missing_objects_and_reads_after_that(repo: Path) -> None:
    pkg = list_packages(repo, resolve_branch(repo, "production") or "")[0]
    with GitReader(repo) as reader:
        with pytest.raises(NotFoundError, match="missing"):
            reader.read("0" * 40)
        blob = next(f for f in pkg.files if f.path == "manifest.yml").blob
        assert b"name: hello_nginx" in reader.read(blob)
        with pytest.raises(PackageError, match="not a file"):
            reader.read(pkg.tree)


def test_symlinks_in_git_packages_are_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"production": {"hello_nginx/1.0.0": HELLO}})
    (repo / "packages/hello_nginx/1.0.0/docs/link.md").symlink_to("/etc/passwd")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "symlink")
    pkg = list_packages(repo, resolve_branch(repo, "production") or "")[0]
    with GitReader(repo) as reader, pytest.raises(PackageError, match="symbolic link"):
        git_tree(pkg, reader)


def test_resolve_branch_local_remote_and_missing(repo: Path, tmp_path: Path) -> None:
    assert resolve_branch(repo, "nope") is None
    assert resolve_branch(repo, "--help") is None
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--no-checkout", str(repo), str(clone)],
        check=True,
        capture_output=True,
    )
    # only the default branch is local in a clone: the others come from origin/<branch>
    assert resolve_branch(clone, "staging") == resolve_branch(repo, "staging")


def test_run_git_failure_names_the_repository(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=str(tmp_path)):
        run_git(tmp_path, "ls-tree", "HEAD")


def test_memory_tree_walk_order_and_unsafe_paths() -> None:
    tree = MemoryTree("mem", {"b/x": b"1", "a-b": b"2", "a/c": b"3"}, dirs=["e/f"])
    assert [(e.path, e.is_dir) for e in tree.entries()] == [
        ("a", True),
        ("a/c", False),
        ("a-b", False),
        ("b", True),
        ("b/x", False),
        ("e", True),
        ("e/f", True),
    ]
    assert tree.stat("a/c") is not None and tree.stat("../a") is None
    with pytest.raises(NotFoundError):
        tree.read("a")
    with pytest.raises(PackageError, match="unsafe path"):
        MemoryTree("mem", {"../x": b""})
    with pytest.raises(PackageError, match="both a file and a directory"):
        MemoryTree("mem", {"a": b"", "a/b": b""})
