"""Builders shared by the importer, git-source and import CLI tests (a plain module, imported by
name): package versions copied from ``examples/packages`` with an edited version, and git
repositories with one orphan branch per stage, each holding ``packages/<name>/<version>``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "packages"
HELLO = EXAMPLES / "hello_nginx" / "1.1.0"
ACME = EXAMPLES / "acme_input" / "1.0.0"


def copy_version(source: Path, dest: Path, version: str) -> Path:
    """``dest``: a copy of the package folder ``source`` with ``version`` in its manifest."""
    shutil.copytree(source, dest)
    manifest = dest / "manifest.yml"
    manifest.write_text(
        re.sub(r"(?m)^version: .*$", f"version: {version}", manifest.read_text(), count=1)
    )
    return dest


def make_version(root: Path, version: str, *, source: Path = HELLO, note: str = "") -> Path:
    """``root/<name>/<version>``: a copy of ``source`` with ``version`` in its manifest and a
    changelog entry for it; ``note`` is appended to the README (same version, other bytes)."""
    name = source.parent.name
    dest = copy_version(source, root / name / version, version)
    (dest / "changelog.yml").write_text(
        f'- version: "{version}"\n'
        "  changes:\n"
        f"    - description: Release {version}.\n"
        "      type: enhancement\n"
        f"      link: https://example.com/package-storage/{name}/{version}\n"
    )
    if note:
        readme = dest / "docs" / "README.md"
        readme.write_text(readme.read_text() + f"\n{note}\n")
    return dest


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (fixed author, no signing, none of the caller's GIT_* settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    return subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env=env,
        text=True,
    ).stdout


def make_repo(
    root: Path,
    branches: Mapping[str, Mapping[str, Path]],
    *,
    set_versions: bool = False,
    files: Mapping[str, str] | None = None,
) -> Path:
    """``root/repo``: one orphan branch per key of ``branches``, each holding
    ``packages/<name>/<version>`` copies of the given folders (with ``set_versions``, the
    version in each copy's manifest is the one its path names) and the text ``files`` (paths
    relative to the repository) in every branch."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for branch, packages in branches.items():
        git(repo, "checkout", "-q", "--orphan", branch)
        for child in repo.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        git(repo, "rm", "-rqf", "--cached", "--ignore-unmatch", ".")
        for rel, folder in packages.items():
            dest = repo / "packages" / rel
            if set_versions:
                copy_version(folder, dest, rel.split("/")[1])
            else:
                shutil.copytree(folder, dest)
        for rel, text in (files or {}).items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"{branch} content")
    return repo
