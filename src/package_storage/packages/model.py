"""Pure domain model: frozen dataclasses and the protocols the domain reads through.

Nothing here does I/O. A :class:`PackageTree` is the domain's window onto the files of one
package (a folder on disk, a zip file, or a zip held in the blob store); its implementations
live in ``sources.py`` (folders and zips on disk) and the storage layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from package_storage.packages.versions import Constraint, Version

JSONObject = dict[str, Any]

SourceKind = Literal["zip", "folder"]


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One entry of a package tree, path relative to the package root (POSIX, no leading /)."""

    path: str
    is_dir: bool
    size: int
    mtime: float  # seconds since the epoch (folder: filesystem mtime; zip: entry time)


class PackageTree(Protocol):
    """Read-only access to the files of one package.

    ``entries()`` is in the source's natural order: for folders a depth-first walk with each
    directory's children in bytewise name order (a directory before its contents); for zips
    the order of the archive's central directory (directory entries only where the archive
    has them). Paths never contain ``..`` and never start with ``/``.
    """

    @property
    def kind(self) -> SourceKind: ...

    @property
    def location(self) -> str:
        """Where the package lives (folder path or zip path): used in messages."""
        ...

    def entries(self) -> Sequence[TreeEntry]: ...

    def stat(self, path: str) -> TreeEntry | None:
        """The entry at ``path`` (file or directory), or None."""
        ...

    def read(self, path: str) -> bytes:
        """Bytes of the file at ``path``; raises ``NotFoundError`` when there is none."""
        ...


@dataclass(frozen=True, slots=True)
class PolicyTemplateRef:
    """What search filtering needs of a policy template."""

    name: str
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Package:
    """One loaded package version: filter attributes plus its two rendered documents.

    ``document`` is the full package document (spec §6, "full" column) and ``search_entry`` the
    /search element ("search entry" column); both are plain dicts in the reference's key order,
    ready for ``render.dumps``. ``tree`` gives access to the package's files; ``signature``
    names where the ``.sig`` lives (None when the package has none).
    """

    name: str
    version: Version
    release: str
    type: str
    categories: tuple[str, ...]
    policy_templates: tuple[PolicyTemplateRef, ...]
    kibana_version: Constraint | None
    agent_version: Constraint | None
    capabilities: tuple[str, ...] | None
    spec_version: Version | None
    discovery_fields: tuple[str, ...] | None
    discovery_datasets: tuple[str, ...] | None
    document: JSONObject
    search_entry: JSONObject
    tree: PackageTree = field(repr=False)
    deprecated: JSONObject | None = None

    @property
    def key(self) -> tuple[str, str]:
        """(name, version string): the identity used for duplicates and lookups."""
        return (self.name, str(self.version))

    @property
    def is_prerelease(self) -> bool:
        return self.version.is_prerelease
