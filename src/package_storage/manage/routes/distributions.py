"""``/distributions/{distribution}/...``: revisions, tags, rollback; ``/tags``; ``/stages``;
``/history``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from package_storage.errors import InvalidInputError
from package_storage.manage.deps import Guarded
from package_storage.manage.schemas import (
    MAX_ID,
    ChangeOut,
    EventOut,
    RevisionOut,
    RollbackIn,
    RollbackPlanOut,
    StageOut,
    StagesOut,
    TagIn,
    TagOut,
)
from package_storage.store.storage.base import EventFilter

router = APIRouter(tags=["distributions"])


class RevisionsOut(BaseModel):
    revisions: list[RevisionOut]


class TagsOut(BaseModel):
    tags: list[TagOut]


class HistoryOut(BaseModel):
    events: list[EventOut]


@router.get("/stages", summary="The stages and their rules")
def stages(service: Guarded) -> StagesOut:
    return StagesOut(stages=[StageOut(**s) for s in service.stages().as_config()])


class DistributionOut(BaseModel):
    distribution: str
    current: RevisionOut | None


@router.get("/distributions/{distribution}", summary="A distribution and its current revision")
def distribution(distribution: str, service: Guarded) -> DistributionOut:
    current = service.current_revision(distribution)
    return DistributionOut(
        distribution=distribution, current=RevisionOut.of(current) if current else None
    )


@router.get("/distributions/{distribution}/revisions", summary="Revisions, oldest first")
def revisions(distribution: str, service: Guarded) -> RevisionsOut:
    return RevisionsOut(revisions=[RevisionOut.of(r) for r in service.revisions(distribution)])


@router.get("/distributions/{distribution}/revisions/{ref}", summary="One revision (N or TAG)")
def revision(distribution: str, ref: str, service: Guarded) -> RevisionOut:
    return RevisionOut.of(service.resolve_revision(distribution, ref))


@router.post("/distributions/{distribution}/tags", summary="Tag a revision")
def tag(distribution: str, body: TagIn, service: Guarded) -> TagOut:
    """Name a revision (default: the current one) permanently. Needs ``tag:DISTRIBUTION``."""
    return TagOut.of(service.tag(distribution, body.tag, revision=body.revision))


@router.post("/distributions/{distribution}/rollback", summary="Roll a distribution back")
def rollback(distribution: str, body: RollbackIn, service: Guarded) -> ChangeOut:
    """Point DISTRIBUTION back at a revision (number or tag). Needs ``rollback:DISTRIBUTION``."""
    return ChangeOut.of(service.rollback(distribution, body.revision, reason=body.reason))


@router.get("/distributions/{distribution}/rollback-plan", summary="What a rollback would do")
def rollback_plan(
    distribution: str,
    service: Guarded,
    revision: Annotated[str, Query(description="A revision number, a tag or a commit id.")],
) -> RollbackPlanOut:
    """The versions a rollback to ``revision`` would move, and where to (a dry run)."""
    return RollbackPlanOut.of(service.rollback_plan(distribution, revision))


@router.get("/tags", summary="Every tag")
def tags(service: Guarded, distribution: str | None = None) -> TagsOut:
    return TagsOut(tags=[TagOut.of(t) for t in service.tags(distribution)])


def _time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"{name} {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise InvalidInputError(f"{name} {value!r} needs a time zone (e.g. Z)")
    return parsed


@router.get("/history", summary="The audit history")
def history(
    service: Guarded,
    stage: str | None = None,
    package: str | None = None,
    version: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: Annotated[str | None, Query(description="RFC 3339: time >= since")] = None,
    until: Annotated[str | None, Query(description="RFC 3339: time < until")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="Only events with id > after")
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    newest_first: bool = False,
) -> HistoryOut:
    query = EventFilter(
        stage=stage,
        name=package,
        version=version,
        action=action,
        actor=actor,
        since=_time("since", since),
        until=_time("until", until),
        after_id=after,
        limit=limit,
        newest_first=newest_first,
    )
    return HistoryOut(events=[EventOut.of(e) for e in service.history(query)])
