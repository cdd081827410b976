"""The service layer: the only home of the store's business rules.

Every operation runs in one catalog transaction (see ``storage/base.py``): a failure leaves
nothing half-done. Blobs are written before the transaction that references them.

API skeleton; the implementation is being written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from package_storage.storage.base import (
    BlobStore,
    Catalog,
    Event,
    EventFilter,
    Revision,
    RevisionEntry,
    StageEntry,
    Tag,
)


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """What one operation did: ``changed`` is False for a no-op (identical bytes again)."""

    changed: bool
    event: Event | None
    revisions: tuple[Revision, ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class PackageLocation:
    """Where one version lives: which stages hold it, with which artifact."""

    name: str
    version: str
    entries: tuple[StageEntry, ...]
    artifact_size: int
    signed: bool


@dataclass(frozen=True, slots=True)
class StageDiff:
    """Versions only in A, only in B, and in both with different artifacts."""

    stage_a: str
    stage_b: str
    only_a: tuple[StageEntry, ...]
    only_b: tuple[StageEntry, ...]
    different: tuple[tuple[StageEntry, StageEntry], ...]


@dataclass(frozen=True, slots=True)
class FsckReport:
    missing: tuple[str, ...] = ()  # referenced by the catalog, absent from the blob store
    corrupt: tuple[str, ...] = ()  # present but bytes do not hash to the digest
    orphaned: tuple[str, ...] = ()  # in the blob store, referenced by nothing
    catalog_problems: tuple[str, ...] = ()
    repaired: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.catalog_problems)


class StoreService:
    """publish / promote / remove / tag / rollback / history over a catalog and a blob store."""

    def __init__(self, catalog: Catalog, blobs: BlobStore, *, actor: str) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self.actor = actor

    def publish(
        self, path: Path, *, stage: str | None = None, force: bool = False, reason: str = ""
    ) -> ChangeResult:
        raise NotImplementedError

    def promote(
        self, name: str, version: str, *, to: str, source: str | None = None
    ) -> ChangeResult:
        raise NotImplementedError

    def remove(
        self, name: str, version: str, *, stage: str, force: bool = False, reason: str = ""
    ) -> ChangeResult:
        raise NotImplementedError

    def tag(self, distribution: str, tag: str, *, revision: int | None = None) -> Tag:
        raise NotImplementedError

    def rollback(self, distribution: str, revision_or_tag: str) -> ChangeResult:
        raise NotImplementedError

    def list_entries(self, *, stage: str | None = None, distribution: str | None = None) -> (
        list[StageEntry] | list[RevisionEntry]
    ):
        raise NotImplementedError

    def show(self, name: str, version: str | None = None) -> list[PackageLocation]:
        raise NotImplementedError

    def diff(self, stage_a: str, stage_b: str) -> StageDiff:
        raise NotImplementedError

    def history(self, query: EventFilter | None = None) -> list[Event]:
        raise NotImplementedError

    def revisions(self, distribution: str) -> list[Revision]:
        raise NotImplementedError

    def tags(self, distribution: str | None = None) -> list[Tag]:
        raise NotImplementedError

    def fsck(self, *, repair: bool = False) -> FsckReport:
        raise NotImplementedError


def event_title(event: Event) -> str:
    """``[staging] Promote apache-1.2.3 from snapshot`` and the like."""
    raise NotImplementedError


__all__: Sequence[str] = (
    "ChangeResult",
    "FsckReport",
    "PackageLocation",
    "StageDiff",
    "StoreService",
    "event_title",
)
