"""The JSON of the management API: one pydantic model per record, both ways.

``X.of(record)`` renders a record for an answer (the app); ``x.record()`` reads an answer back
into the same record (the client), so a command prints the same whether the store is local or
remote. Times are RFC 3339 UTC with milliseconds (``format_time``). The models also make the
OpenAPI document's schemas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from package_storage.store.service import (
    ChangeResult,
    FsckReport,
    PackageLocation,
    RollbackMove,
    RollbackPlan,
    SignatureCheck,
    StageDiff,
    event_title,
)
from package_storage.store.storage.base import (
    ArtifactRecord,
    Event,
    Revision,
    RevisionEntry,
    StageEntry,
    Tag,
    TokenRecord,
    format_time,
)

MAX_ID = (1 << 63) - 1
"""The largest id, revision or sequence number (a SQL BIGINT)."""


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _parse_required(value: str) -> datetime:
    return datetime.fromisoformat(value)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ----------------------------------------------------------------------------------


class ErrorBody(Model):
    code: str = Field(description="A stable code from the error tree, e.g. policy_refused.")
    message: str = Field(description="One line naming the input and the rule.")


class ErrorOut(Model):
    error: ErrorBody


# --- events ----------------------------------------------------------------------------------


class EventOut(Model):
    id: int
    time: str
    actor: str
    action: str
    stage: str | None
    name: str | None
    version: str | None
    reason: str | None
    title: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(
            id=event.id,
            time=format_time(event.time),
            actor=event.actor,
            action=event.action,
            stage=event.stage,
            name=event.name,
            version=event.version,
            reason=event.reason,
            title=event_title(event),
            detail=event.detail,
        )

    def record(self) -> Event:
        return Event(
            id=self.id,
            time=_parse_required(self.time),
            actor=self.actor,
            action=self.action,
            stage=self.stage,
            name=self.name,
            version=self.version,
            reason=self.reason,
            detail=self.detail,
        )


class EventsPage(Model):
    events: list[EventOut]
    next_after: int = Field(description="Pass as ?after= to get the events after this page.")
    more: bool = Field(description="True when more events follow this page.")


# --- revisions, tags -------------------------------------------------------------------------


class RevisionOut(Model):
    distribution: str
    revision: int
    digest: str
    created: str
    current: bool
    tags: list[str]
    server_version: str
    seq: int
    stages: list[str]
    count: int
    commit: str | None = Field(default=None, description="The git commit it was imported from.")
    event: int | None = Field(default=None, description="The event that made it (revisions).")
    event_title: str = ""

    @classmethod
    def of(cls, rev: Revision) -> RevisionOut:
        return cls(
            distribution=rev.distribution,
            revision=rev.number,
            digest=rev.digest,
            created=format_time(rev.created),
            current=rev.current,
            tags=list(rev.tags),
            server_version=rev.server_version,
            seq=rev.seq,
            stages=list(rev.stages),
            count=rev.count,
            commit=rev.commit,
            event=rev.event,
            event_title=rev.event_title,
        )

    def record(self) -> Revision:
        return Revision(
            distribution=self.distribution,
            number=self.revision,
            digest=self.digest,
            created=_parse_required(self.created),
            server_version=self.server_version,
            seq=self.seq,
            stages=tuple(self.stages),
            count=self.count,
            current=self.current,
            tags=tuple(self.tags),
            commit=self.commit,
            event=self.event,
            event_title=self.event_title,
        )


class TagOut(Model):
    distribution: str
    tag: str
    revision: int
    created: str
    created_by: str

    @classmethod
    def of(cls, tag: Tag) -> TagOut:
        return cls(
            distribution=tag.distribution,
            tag=tag.tag,
            revision=tag.revision,
            created=format_time(tag.created),
            created_by=tag.created_by,
        )

    def record(self) -> Tag:
        return Tag(
            self.distribution,
            self.tag,
            self.revision,
            _parse_required(self.created),
            self.created_by,
        )


# --- entries ---------------------------------------------------------------------------------


class EntryOut(Model):
    """A version in a stage (``added_at``/``added_by`` set) or served by a revision (``stage``
    is where its copy comes from; no ``added_*``)."""

    name: str
    version: str
    stage: str
    artifact: str
    added_at: str | None = None
    added_by: str | None = None
    yanked: bool = Field(default=False, description="Hidden from search, still downloadable.")

    @classmethod
    def of(cls, entry: StageEntry | RevisionEntry) -> EntryOut:
        if isinstance(entry, StageEntry):
            return cls(
                name=entry.name,
                version=entry.version,
                stage=entry.stage,
                artifact=entry.artifact,
                added_at=format_time(entry.added_at),
                added_by=entry.added_by,
                yanked=entry.yanked,
            )
        return cls(
            name=entry.name,
            version=entry.version,
            stage=entry.stage,
            artifact=entry.artifact,
            yanked=entry.yanked,
        )

    def stage_entry(self) -> StageEntry:
        return StageEntry(
            stage=self.stage,
            name=self.name,
            version=self.version,
            artifact=self.artifact,
            added_at=_parse_required(self.added_at or "1970-01-01T00:00:00Z"),
            added_by=self.added_by or "",
            yanked=self.yanked,
        )

    def entry(self) -> StageEntry | RevisionEntry:
        """A stage entry (it has ``added_at``) or a revision entry."""
        return self.revision_entry() if self.added_at is None else self.stage_entry()

    def revision_entry(self) -> RevisionEntry:
        return RevisionEntry(self.name, self.version, self.artifact, self.stage, self.yanked)


class EntriesOut(Model):
    kind: Literal["stage", "revision"] = Field(
        description="stage: versions stored in stages; revision: what a distribution serves."
    )
    entries: list[EntryOut]


class ArtifactOut(Model):
    digest: str
    size: int
    name: str
    version: str
    signature_digest: str | None
    manifest: dict[str, Any]
    created: str | None

    @classmethod
    def of(cls, a: ArtifactRecord) -> ArtifactOut:
        return cls(
            digest=a.digest,
            size=a.size,
            name=a.name,
            version=a.version,
            signature_digest=a.signature_digest,
            manifest=a.manifest,
            created=_time(a.created),
        )

    def record(self) -> ArtifactRecord:
        return ArtifactRecord(
            self.digest,
            self.size,
            self.name,
            self.version,
            self.signature_digest,
            self.manifest,
            _parse(self.created),
        )


class LocationOut(Model):
    name: str
    version: str
    entries: list[EntryOut]
    artifact_size: int
    signed: bool
    artifacts: list[ArtifactOut]
    events: list[EventOut]

    @classmethod
    def of(cls, loc: PackageLocation) -> LocationOut:
        return cls(
            name=loc.name,
            version=loc.version,
            entries=[EntryOut.of(e) for e in loc.entries],
            artifact_size=loc.artifact_size,
            signed=loc.signed,
            artifacts=[ArtifactOut.of(a) for a in loc.artifacts],
            events=[EventOut.of(e) for e in loc.events],
        )

    def record(self) -> PackageLocation:
        return PackageLocation(
            name=self.name,
            version=self.version,
            entries=tuple(e.stage_entry() for e in self.entries),
            artifact_size=self.artifact_size,
            signed=self.signed,
            artifacts=tuple(a.record() for a in self.artifacts),
            events=tuple(e.record() for e in self.events),
        )


class ShowOut(Model):
    name: str
    versions: list[LocationOut]


class DifferentOut(Model):
    a: EntryOut
    b: EntryOut


class DiffOut(Model):
    stage_a: str
    stage_b: str
    only_a: list[EntryOut]
    only_b: list[EntryOut]
    different: list[DifferentOut]

    @classmethod
    def of(cls, d: StageDiff) -> DiffOut:
        return cls(
            stage_a=d.stage_a,
            stage_b=d.stage_b,
            only_a=[EntryOut.of(e) for e in d.only_a],
            only_b=[EntryOut.of(e) for e in d.only_b],
            different=[DifferentOut(a=EntryOut.of(a), b=EntryOut.of(b)) for a, b in d.different],
        )

    def record(self) -> StageDiff:
        return StageDiff(
            stage_a=self.stage_a,
            stage_b=self.stage_b,
            only_a=tuple(e.entry() for e in self.only_a),
            only_b=tuple(e.entry() for e in self.only_b),
            different=tuple((d.a.entry(), d.b.entry()) for d in self.different),
        )


# --- changes ---------------------------------------------------------------------------------


class ChangeOut(Model):
    changed: bool = Field(description="False for a no-op (e.g. the same bytes again).")
    message: str
    event: EventOut | None
    revisions: list[RevisionOut] = Field(description="The revisions the change made.")

    @classmethod
    def of(cls, result: ChangeResult) -> ChangeOut:
        return cls(
            changed=result.changed,
            message=result.message,
            event=EventOut.of(result.event) if result.event is not None else None,
            revisions=[RevisionOut.of(r) for r in result.revisions],
        )

    def record(self) -> ChangeResult:
        return ChangeResult(
            changed=self.changed,
            event=self.event.record() if self.event is not None else None,
            revisions=tuple(r.record() for r in self.revisions),
            message=self.message,
        )


class PromoteIn(Model):
    to: str = Field(description="The stage to promote into.")
    source: str | None = Field(
        default=None, alias="from", description="The stage to promote from (default: the one)."
    )
    force: bool = False
    reason: str = ""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RemoveIn(Model):
    stage: str
    force: bool = False
    reason: str = ""


class TagIn(Model):
    tag: str
    revision: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Default: the current one."
    )


class RollbackIn(Model):
    revision: Annotated[int, Field(ge=0, le=MAX_ID)] | str = Field(
        description="A revision number, a tag or a commit id."
    )
    reason: str = Field(default="", description="Recorded in the rollback's events.")


class RollbackMoveOut(Model):
    action: Literal["remove", "return", "restore", "take_back"]
    name: str
    version: str
    digest: str
    stage: str | None
    replaced: str | None

    @classmethod
    def of(cls, m: RollbackMove) -> RollbackMoveOut:
        return cls(
            action=m.action,
            name=m.name,
            version=m.version,
            digest=m.digest,
            stage=m.stage,
            replaced=m.replaced,
        )

    def record(self) -> RollbackMove:
        return RollbackMove(
            self.action, self.name, self.version, self.digest, self.stage, self.replaced
        )


class RollbackPlanOut(Model):
    distribution: str
    revision: int
    tag: str | None
    previous: int | None = Field(description="The revision served now.")
    moves: list[RollbackMoveOut]

    @classmethod
    def of(cls, p: RollbackPlan) -> RollbackPlanOut:
        return cls(
            distribution=p.distribution,
            revision=p.revision,
            tag=p.tag,
            previous=p.previous,
            moves=[RollbackMoveOut.of(m) for m in p.moves],
        )

    def record(self) -> RollbackPlan:
        return RollbackPlan(
            self.distribution,
            self.revision,
            self.tag,
            self.previous,
            tuple(m.record() for m in self.moves),
        )


# --- stages, fsck, signatures ----------------------------------------------------------------


class StageOut(Model):
    model_config = ConfigDict(extra="allow")  # a stage's configuration may grow keys

    name: str
    rank: int
    overwrite: str
    remove: str
    frozen: bool
    sees: list[str]
    promotes_to: str | None


class StagesOut(Model):
    stages: list[StageOut]


class StageIn(Model):
    """A stage to add (``stages add``): its rules as in a stage configuration file."""

    name: str
    rank: int = Field(ge=-MAX_ID, le=MAX_ID, description="Stability: higher is more stable.")
    overwrite: str = Field(default="never", description="yes, force or never.")
    remove: str = Field(default="never", description="yes, force or never.")
    frozen: bool = False
    sees: list[str] = Field(default_factory=list)
    promotes_to: str | None = None
    publish: bool | None = Field(default=None, description="Default: no stage promotes to it.")
    reason: str = Field(description="Why (recorded; required).")


class ReasonIn(Model):
    reason: str = Field(description="Why (recorded; required).")


class YankIn(Model):
    stage: str
    reason: str = Field(description="Why (recorded; required).")


class FsckOut(Model):
    ok: bool
    missing: list[str]
    corrupt: list[str]
    orphaned: list[str]
    catalog_problems: list[str]
    repaired: list[str]
    temp_files: list[str]
    checked: int

    @classmethod
    def of(cls, r: FsckReport) -> FsckOut:
        return cls(
            ok=r.ok,
            missing=list(r.missing),
            corrupt=list(r.corrupt),
            orphaned=list(r.orphaned),
            catalog_problems=list(r.catalog_problems),
            repaired=list(r.repaired),
            temp_files=list(r.temp_files),
            checked=r.checked,
        )

    def record(self) -> FsckReport:
        return FsckReport(
            missing=tuple(self.missing),
            corrupt=tuple(self.corrupt),
            orphaned=tuple(self.orphaned),
            catalog_problems=tuple(self.catalog_problems),
            repaired=tuple(self.repaired),
            temp_files=tuple(self.temp_files),
            checked=self.checked,
        )


class SignatureCheckOut(Model):
    stage: str
    state: Literal["ok", "failed", "missing", "bad"]
    reason: str

    def record(self) -> SignatureCheck:
        return SignatureCheck(self.stage, self.state, self.reason)


class VerifyOut(Model):
    name: str
    version: str
    checks: list[SignatureCheckOut]


# --- tokens ----------------------------------------------------------------------------------


class TokenOut(Model):
    name: str
    scopes: list[str]
    created: str
    created_by: str
    expires: str | None
    revoked: str | None
    revoked_by: str | None

    @classmethod
    def of(cls, t: TokenRecord) -> TokenOut:
        return cls(
            name=t.name,
            scopes=list(t.scopes),
            created=format_time(t.created),
            created_by=t.created_by,
            expires=_time(t.expires),
            revoked=_time(t.revoked),
            revoked_by=t.revoked_by,
        )

    def record(self) -> TokenRecord:
        """The record without its id and hash (never sent)."""
        return TokenRecord(
            id="",
            name=self.name,
            secret_hash="",
            scopes=tuple(self.scopes),
            created=_parse_required(self.created),
            created_by=self.created_by,
            expires=_parse(self.expires),
            revoked=_parse(self.revoked),
            revoked_by=self.revoked_by,
        )


class TokensOut(Model):
    tokens: list[TokenOut]


class TokenIn(Model):
    name: str
    scopes: list[str]
    expires: str | None = Field(default=None, description="A lifetime such as 30d, 12h, 90m.")


class NewTokenOut(Model):
    token: str = Field(description="The secret: shown only in this answer.")
    record: TokenOut


class RevokedOut(Model):
    changed: bool
    record: TokenOut


class WhoAmIOut(Model):
    name: str
    scopes: list[str]
    expires: str | None
