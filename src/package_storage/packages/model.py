"""Pure domain model: frozen dataclasses and the protocols the domain reads through.

Nothing here does I/O. A :class:`PackageTree` is the domain's window onto the files of one
package (a folder on disk, a zip file, or a zip held in the blob store); its implementations
live in ``sources.py`` (folders and zips on disk) and the storage layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


DocumentPair = tuple[JSONObject, JSONObject]
"""(full package document, search entry)."""

DocumentEdit = Callable[[JSONObject, JSONObject], DocumentPair]
"""A pure change of both documents (a key added, say): returns the new pair and leaves its
arguments untouched."""


class Documents:
    """The full package document and the search entry of one package version.

    Held one of two ways:

    * :meth:`parsed`: two dicts, returned as they are (what reading a package's files gives);
    * :meth:`encoded`: bytes and the pure function that decodes them into the pair, decoded
      again on every call and never kept (a derived document, ``derived.py``). A server with
      thousands of versions keeps each as a few KB of bytes instead of about ten times that in
      Python objects; it needs the documents only to render an answer, which it caches.

    :meth:`edited` returns the documents with an edit applied: at once when parsed, recorded
    and applied after every decoding when encoded. Immutable; picklable when the decoder and
    the edits are (module-level functions and their partials).
    """

    __slots__ = ("_data", "_decode", "_edits", "_pair")

    _pair: DocumentPair | None
    _data: bytes
    _decode: Callable[[bytes], DocumentPair] | None
    _edits: tuple[DocumentEdit, ...]

    def __init__(
        self,
        pair: DocumentPair | None,
        data: bytes = b"",
        decode: Callable[[bytes], DocumentPair] | None = None,
        edits: tuple[DocumentEdit, ...] = (),
    ) -> None:
        if (pair is None) == (decode is None):
            raise ValueError("Documents: give either the parsed pair or data with its decoder")
        setter = object.__setattr__
        setter(self, "_pair", pair)
        setter(self, "_data", data)
        setter(self, "_decode", decode)
        setter(self, "_edits", edits)

    @classmethod
    def parsed(cls, document: JSONObject, search_entry: JSONObject) -> Documents:
        return cls((document, search_entry))

    @classmethod
    def encoded(cls, data: bytes, decode: Callable[[bytes], DocumentPair]) -> Documents:
        return cls(None, data, decode)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Documents is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Documents, (self._pair, self._data, self._decode, self._edits))

    @property
    def is_encoded(self) -> bool:
        """True when held as bytes (each call decodes them)."""
        return self._pair is None

    @property
    def encoded_size(self) -> int:
        """Bytes held for the encoded form (0 when parsed)."""
        return len(self._data)

    def pair(self) -> DocumentPair:
        """(document, search entry): the held dicts, or fresh ones decoded now."""
        pair = self._pair
        if pair is not None:
            return pair
        decode = self._decode
        assert decode is not None
        document, entry = decode(self._data)
        for edit in self._edits:
            document, entry = edit(document, entry)
        return document, entry

    def document(self) -> JSONObject:
        return self.pair()[0]

    def search_entry(self) -> JSONObject:
        return self.pair()[1]

    def edited(self, edit: DocumentEdit) -> Documents:
        """These documents with ``edit`` applied (see the class docstring)."""
        pair = self._pair
        if pair is not None:
            return Documents(edit(*pair))
        return Documents(None, self._data, self._decode, (*self._edits, edit))

    def __repr__(self) -> str:
        if self._pair is not None:
            return "Documents(parsed)"
        return f"Documents(encoded, {len(self._data)} bytes, {len(self._edits)} edits)"


@dataclass(frozen=True, slots=True, eq=False)
class Package:
    """One loaded package version: filter attributes plus its two rendered documents.

    ``document`` is the full package document (spec §6, "full" column) and ``search_entry`` the
    /search element ("search entry" column); both are plain dicts in the reference's key order,
    ready for ``render.dumps``, read from ``documents`` (held parsed, or as bytes decoded on
    each access: treat them as read-only and ask once per use). ``tree`` gives access to the
    package's files; ``signature`` names where the ``.sig`` lives (None when the package has
    none).
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
    documents: Documents = field(repr=False)
    tree: PackageTree = field(repr=False)
    deprecated: JSONObject | None = None

    @property
    def document(self) -> JSONObject:
        return self.documents.document()

    @property
    def search_entry(self) -> JSONObject:
        return self.documents.search_entry()

    @property
    def key(self) -> tuple[str, str]:
        """(name, version string): the identity used for duplicates and lookups."""
        return (self.name, str(self.version))

    @property
    def is_prerelease(self) -> bool:
        return self.version.is_prerelease
