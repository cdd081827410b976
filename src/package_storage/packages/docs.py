"""What a person reads about a package version: its README, its changelog and its icon.

Read through a :class:`~package_storage.packages.model.PackageTree` (a stored artifact is a
:class:`~package_storage.packages.trees.ZipTree`). Package content is untrusted: every file
is size-bounded here, nothing is interpreted beyond the changelog's YAML (read with the bounded
:func:`~package_storage.packages.yamlutil.load_yaml`), and a broken or missing file gives an
empty answer, never an error (the package was validated when it was stored; an old artifact
imported without validation may still lack a file).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from package_storage.errors import PackageStorageError
from package_storage.packages.model import PackageTree
from package_storage.packages.yamlutil import load_yaml

README = "docs/README.md"
CHANGELOG = "changelog.yml"
MANIFEST = "manifest.yml"

MAX_README_BYTES = 1024 * 1024
"""A README above this is cut (the rest is not shown)."""
MAX_ICON_BYTES = 512 * 1024
"""An icon above this is not served."""

ICON_TYPES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
"""The icon types served, by file extension (the manifest's ``type`` is not trusted)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of a changelog version: ``type`` is enhancement, bugfix, breaking-change, ..."""

    description: str
    type: str
    link: str


@dataclass(frozen=True, slots=True)
class ChangelogVersion:
    version: str
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Icon:
    path: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PackageDocs:
    """``readme``: the Markdown text (None when absent; cut at :data:`MAX_README_BYTES`,
    ``readme_cut`` then True); ``changelog`` newest first as the file lists it."""

    readme: str | None
    changelog: tuple[ChangelogVersion, ...]
    icon: Icon | None
    readme_cut: bool = False

    def changes_of(self, version: str) -> tuple[Change, ...]:
        """The changelog entries of ``version`` (empty when it has none)."""
        for item in self.changelog:
            if item.version == version:
                return item.changes
        return ()


def _read(tree: PackageTree, path: str, limit: int) -> tuple[bytes, bool] | None:
    entry = tree.stat(path)
    if entry is None or entry.is_dir:
        return None
    try:
        data = tree.read(path) if entry.size <= limit else None
    except PackageStorageError:
        return None
    if data is None:  # too large: read nothing of it for an icon, the start of a README
        return None
    return data[:limit], len(data) > limit


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def read_changelog(tree: PackageTree) -> tuple[ChangelogVersion, ...]:
    """The changelog's versions (newest first, as written); empty when absent or broken."""
    found = _read(tree, CHANGELOG, 4 * 1024 * 1024)
    if found is None:
        return ()
    try:
        doc = load_yaml(found[0], path=CHANGELOG)
    except PackageStorageError:
        return ()
    if not isinstance(doc, list):
        return ()
    versions: list[ChangelogVersion] = []
    for item in doc:
        if not isinstance(item, dict):
            continue
        changes = item.get("changes")
        entries = tuple(
            Change(_text(c.get("description")), _text(c.get("type")), _text(c.get("link")))
            for c in (changes if isinstance(changes, list) else [])
            if isinstance(c, dict)
        )
        versions.append(ChangelogVersion(_text(item.get("version")), entries))
    return tuple(versions)


def read_readme(tree: PackageTree) -> tuple[str | None, bool]:
    """(the README's text or None, whether it was cut)."""
    entry = tree.stat(README)
    if entry is None or entry.is_dir:
        return None, False
    try:
        data = tree.read(README)
    except PackageStorageError:
        return None, False
    cut = len(data) > MAX_README_BYTES
    return data[:MAX_README_BYTES].decode("utf-8", errors="replace"), cut


def read_icon(tree: PackageTree) -> Icon | None:
    """The manifest's first icon whose file exists, is small enough and has a known type."""
    found = _read(tree, MANIFEST, 1024 * 1024)
    if found is None:
        return None
    try:
        manifest = load_yaml(found[0], path=MANIFEST)
    except PackageStorageError:
        return None
    icons = manifest.get("icons") if isinstance(manifest, dict) else None
    for icon in icons if isinstance(icons, list) else []:
        src = icon.get("src") if isinstance(icon, dict) else None
        if not isinstance(src, str):
            continue
        path = posixpath.normpath(src.lstrip("/"))
        content_type = ICON_TYPES.get(posixpath.splitext(path)[1].lower())
        if content_type is None or path.startswith(".."):
            continue
        data = _read(tree, path, MAX_ICON_BYTES)
        if data is not None and not data[1]:
            return Icon(path, content_type, data[0])
    return None


def read_docs(tree: PackageTree) -> PackageDocs:
    """README, changelog and icon of the package in ``tree``."""
    readme, cut = read_readme(tree)
    return PackageDocs(readme, read_changelog(tree), read_icon(tree), cut)


__all__ = [
    "Change",
    "ChangelogVersion",
    "Icon",
    "PackageDocs",
    "read_changelog",
    "read_docs",
    "read_icon",
    "read_readme",
]
