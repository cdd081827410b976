"""Who may do what: the store operations as one interface, and that interface guarded by a
token's scopes.

:class:`StoreOperations` is what the store commands of the CLI call. Three things implement
it: :class:`~package_storage.store.service.StoreService` (a local store, full access: whoever
has the directory has the store), :class:`GuardedService` (the service acting for a token of
the management API: every call first checks the token's scope, then calls the service as the
token's name) and the management API's client (``manage/client.py``, a remote store), so a
command behaves the same on a directory and on a URL.

The scope each operation needs (``store/tokens.py``): reads need ``read`` (which every scope
includes); publish ``publish:STAGE`` (the stage published to, the default one when none is
named); promote ``promote:TARGET``; remove ``remove:STAGE``; yank and unyank ``yank:STAGE``;
tag ``tag:DISTRIBUTION``; rollback ``rollback:DISTRIBUTION``; stage changes (add, freeze,
unfreeze), fsck and tokens ``admin``. A refused call raises
:class:`~package_storage.errors.ForbiddenError` before anything is read or changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from package_storage.errors import PolicyError
from package_storage.packages.docs import PackageDocs
from package_storage.store.service import (
    ChangeResult,
    FsckReport,
    PackageLocation,
    RollbackPlan,
    SignatureCheck,
    StageDiff,
    StoreService,
)
from package_storage.store.stages import Stage, StageGraph
from package_storage.store.storage.base import (
    ArtifactRecord,
    Event,
    EventFilter,
    Revision,
    RevisionEntry,
    StageEntry,
    Tag,
    TokenRecord,
)
from package_storage.store.tokens import ADMIN, READ, Scope, check_granted, parse_scope


class StoreOperations(Protocol):
    """The store operations of the CLI (see the module docstring)."""

    def publish(
        self, path: Path, *, stage: str | None = None, force: bool = False, reason: str = ""
    ) -> ChangeResult: ...

    def promote(
        self,
        name: str,
        version: str,
        *,
        to: str,
        source: str | None = None,
        force: bool = False,
        reason: str = "",
    ) -> ChangeResult: ...

    def remove(
        self, name: str, version: str, *, stage: str, force: bool = False, reason: str = ""
    ) -> ChangeResult: ...

    def yank(
        self, name: str, version: str, *, stage: str, reason: str, yanked: bool = True
    ) -> ChangeResult: ...

    def add_stage(self, stage: Stage, *, reason: str) -> ChangeResult: ...

    def freeze_stage(self, name: str, *, reason: str, frozen: bool = True) -> ChangeResult: ...

    def tag(self, distribution: str, tag: str, *, revision: int | None = None) -> Tag: ...

    def rollback(
        self, distribution: str, revision_or_tag: str | int, *, reason: str = ""
    ) -> ChangeResult: ...

    def rollback_plan(self, distribution: str, revision_or_tag: str | int) -> RollbackPlan: ...

    def stages(self) -> StageGraph: ...

    def stage_events(self, name: str) -> list[Event]: ...

    def list_entries(
        self,
        *,
        stage: str | None = None,
        distribution: str | None = None,
        revision: str | int | None = None,
    ) -> list[StageEntry] | list[RevisionEntry]: ...

    def show(self, name: str, version: str | None = None) -> list[PackageLocation]: ...

    def diff(self, stage_a: str, stage_b: str) -> StageDiff: ...

    def history(self, query: EventFilter | None = None) -> list[Event]: ...

    def revisions(self, distribution: str) -> list[Revision]: ...

    def resolve_revision(self, distribution: str, revision_or_tag: str | int) -> Revision: ...

    def current_revision(self, distribution: str) -> Revision | None: ...

    def tags(self, distribution: str | None = None) -> list[Tag]: ...

    def verify(
        self, name: str, version: str, *, stage: str | None = None
    ) -> list[SignatureCheck]: ...

    def fsck(self, *, repair: bool = False) -> FsckReport: ...

    def create_token(
        self, name: str, scopes: Sequence[str], *, lifetime: timedelta | None = None
    ) -> tuple[TokenRecord, str]: ...

    def tokens(self) -> list[TokenRecord]: ...

    def revoke_token(self, name: str) -> tuple[TokenRecord, bool]: ...


_READ = Scope(READ)
_ADMIN = Scope(ADMIN)


class GuardedService:
    """:class:`StoreOperations` for one token: checks its scope, then calls ``service`` (which
    acts as the token's name, so every event records it as the actor)."""

    def __init__(self, service: StoreService, token: TokenRecord) -> None:
        self.service = service
        self.token = token
        self._scopes = tuple(parse_scope(s) for s in token.scopes)

    def require(self, needed: Scope) -> None:
        """ForbiddenError naming ``needed`` when the token does not hold it."""
        check_granted(self._scopes, needed, token=self.token.name)

    def _publish_stage(self, stage: str | None) -> str:
        if stage is not None:
            return stage
        self.require(_READ)
        stages = self.service.stages().publish_stages()
        if not stages:
            raise PolicyError("no stage accepts a publish (every stage is frozen or promoted into)")
        return stages[0]

    # --- changes ---------------------------------------------------------------------------

    def publish(
        self, path: Path, *, stage: str | None = None, force: bool = False, reason: str = ""
    ) -> ChangeResult:
        target = self._publish_stage(stage)
        self.require(Scope("publish", target))
        return self.service.publish(path, stage=target, force=force, reason=reason)

    def publish_bytes(
        self,
        data: bytes,
        *,
        location: str = "<upload>",
        signature: bytes | None = None,
        stage: str | None = None,
        force: bool = False,
        reason: str = "",
    ) -> ChangeResult:
        target = self._publish_stage(stage)
        self.require(Scope("publish", target))
        return self.service.publish_bytes(
            data, location=location, signature=signature, stage=target, force=force, reason=reason
        )

    def promote(
        self,
        name: str,
        version: str,
        *,
        to: str,
        source: str | None = None,
        force: bool = False,
        reason: str = "",
    ) -> ChangeResult:
        self.require(Scope("promote", to))
        return self.service.promote(name, version, to=to, source=source, force=force, reason=reason)

    def remove(
        self, name: str, version: str, *, stage: str, force: bool = False, reason: str = ""
    ) -> ChangeResult:
        self.require(Scope("remove", stage))
        return self.service.remove(name, version, stage=stage, force=force, reason=reason)

    def yank(
        self, name: str, version: str, *, stage: str, reason: str, yanked: bool = True
    ) -> ChangeResult:
        self.require(Scope("yank", stage))  # yank:STAGE covers unyank too
        return self.service.yank(name, version, stage=stage, reason=reason, yanked=yanked)

    def add_stage(self, stage: Stage, *, reason: str) -> ChangeResult:
        self.require(_ADMIN)
        return self.service.add_stage(stage, reason=reason)

    def freeze_stage(self, name: str, *, reason: str, frozen: bool = True) -> ChangeResult:
        self.require(_ADMIN)
        return self.service.freeze_stage(name, reason=reason, frozen=frozen)

    def tag(
        self, distribution: str, tag: str, *, revision: int | None = None, reason: str = ""
    ) -> Tag:
        self.require(Scope("tag", distribution))
        return self.service.tag(distribution, tag, revision=revision, reason=reason)

    def rollback(
        self, distribution: str, revision_or_tag: str | int, *, reason: str = ""
    ) -> ChangeResult:
        self.require(Scope("rollback", distribution))
        return self.service.rollback(distribution, revision_or_tag, reason=reason)

    def rollback_plan(self, distribution: str, revision_or_tag: str | int) -> RollbackPlan:
        self.require(_READ)  # a dry run changes nothing
        return self.service.rollback_plan(distribution, revision_or_tag)

    # --- reads -----------------------------------------------------------------------------

    def stages(self) -> StageGraph:
        self.require(_READ)
        return self.service.stages()

    def stage_events(self, name: str) -> list[Event]:
        self.require(_READ)
        return self.service.stage_events(name)

    def list_entries(
        self,
        *,
        stage: str | None = None,
        distribution: str | None = None,
        revision: str | int | None = None,
    ) -> list[StageEntry] | list[RevisionEntry]:
        self.require(_READ)
        return self.service.list_entries(stage=stage, distribution=distribution, revision=revision)

    def show(self, name: str, version: str | None = None) -> list[PackageLocation]:
        self.require(_READ)
        return self.service.show(name, version)

    def diff(
        self,
        stage_a: str,
        stage_b: str,
        *,
        revision_entries: Callable[[str, int], Sequence[RevisionEntry]] | None = None,
    ) -> StageDiff:
        self.require(_READ)
        return self.service.diff(stage_a, stage_b, revision_entries=revision_entries)

    def history(self, query: EventFilter | None = None) -> list[Event]:
        self.require(_READ)
        return self.service.history(query)

    def revisions(
        self, distribution: str, *, newest: int | None = None, skip: int = 0
    ) -> list[Revision]:
        self.require(_READ)
        return self.service.revisions(distribution, newest=newest, skip=skip)

    def resolve_revision(self, distribution: str, revision_or_tag: str | int) -> Revision:
        self.require(_READ)
        return self.service.resolve_revision(distribution, revision_or_tag)

    def current_revision(self, distribution: str) -> Revision | None:
        self.require(_READ)
        return self.service.current_revision(distribution)

    def tags(self, distribution: str | None = None) -> list[Tag]:
        self.require(_READ)
        return self.service.tags(distribution)

    def verify(self, name: str, version: str, *, stage: str | None = None) -> list[SignatureCheck]:
        self.require(_READ)
        return self.service.verify(name, version, stage=stage)

    def artifact(self, digest: str) -> ArtifactRecord:
        self.require(_READ)
        return self.service.artifact(digest)

    def event_revisions(self, event_id: int) -> tuple[Event, list[Revision]]:
        self.require(_READ)
        return self.service.event_revisions(event_id)

    def artifact_docs(self, digest: str) -> PackageDocs:
        self.require(_READ)
        return self.service.artifact_docs(digest)

    # --- admin -----------------------------------------------------------------------------

    def fsck(self, *, repair: bool = False) -> FsckReport:
        self.require(_ADMIN)
        if repair:
            raise PolicyError(
                "fsck --repair runs only on the store's own machine (package-storage fsck"
                " --repair --store DIR): over the management API fsck only reports"
            )
        return self.service.fsck(repair=False)

    def create_token(
        self, name: str, scopes: Sequence[str], *, lifetime: timedelta | None = None
    ) -> tuple[TokenRecord, str]:
        self.require(_ADMIN)
        return self.service.create_token(name, scopes, lifetime=lifetime)

    def tokens(self) -> list[TokenRecord]:
        self.require(_ADMIN)
        return self.service.tokens()

    def revoke_token(self, name: str) -> tuple[TokenRecord, bool]:
        self.require(_ADMIN)
        return self.service.revoke_token(name)


__all__ = ["GuardedService", "StoreOperations"]
