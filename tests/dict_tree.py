"""A package held in memory (``{path: bytes}``) as a PackageTree, for tests and benchmarks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from package_storage.errors import NotFoundError
from package_storage.packages.model import SourceKind, TreeEntry


class DictTree:
    """A package held in a dict ``{path: bytes}``; directories are derived (unless told not to)."""

    def __init__(
        self, files: dict[str, bytes | str], *, dir_entries: bool = True, location: str = "mem"
    ) -> None:
        self._files = {p: v.encode() if isinstance(v, str) else v for p, v in files.items()}
        self._location = location
        dirs: set[str] = set()
        if dir_entries:
            for path in self._files:
                parts = path.split("/")[:-1]
                dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        self._dirs = dirs

    @property
    def kind(self) -> SourceKind:
        return "folder"

    @property
    def location(self) -> str:
        return self._location

    def entries(self) -> Sequence[TreeEntry]:
        out = [TreeEntry(d, True, 0, 0.0) for d in self._dirs]
        out += [TreeEntry(p, False, len(b), 0.0) for p, b in self._files.items()]
        return sorted(out, key=lambda e: e.path)

    def stat(self, path: str) -> TreeEntry | None:
        if path in self._files:
            return TreeEntry(path, False, len(self._files[path]), 0.0)
        if path in self._dirs:
            return TreeEntry(path, True, 0, 0.0)
        return None

    def read(self, path: str) -> bytes:
        try:
            return self._files[path]
        except KeyError:
            raise NotFoundError(f"{self._location}: no file {path}") from None


def folder_tree(root: Path) -> DictTree:
    files: dict[str, bytes | str] = {
        p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }
    return DictTree(files, location=str(root))


def with_name_and_version(files: dict[str, bytes], name: str, version: str) -> dict[str, bytes]:
    """``files`` with the manifest's ``name`` and ``version`` lines replaced."""
    manifest = files["manifest.yml"].decode()
    manifest = re.sub(r"(?m)^name:.*$", f"name: {name}", manifest, count=1)
    manifest = re.sub(r"(?m)^version:.*$", f"version: {version}", manifest, count=1)
    return {**files, "manifest.yml": manifest.encode()}
