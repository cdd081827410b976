"""``/stages`` changes: add a stage, freeze, unfreeze (``admin``); a stage's configuration
events (``read``). The list of stages is ``GET /stages`` (``distributions.py``)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from package_storage.manage.deps import Guarded
from package_storage.manage.schemas import ChangeOut, EventOut, ReasonIn, StageIn
from package_storage.store.stages import stage_from_config

router = APIRouter(tags=["stages"])


class StageEventsOut(BaseModel):
    events: list[EventOut]


@router.post("/stages", summary="Add a stage")
def add_stage(body: StageIn, service: Guarded) -> ChangeOut:
    """The same rules as ``stages add``. Needs ``admin``."""
    stage = stage_from_config(body.model_dump(exclude={"reason"}))
    return ChangeOut.of(service.add_stage(stage, reason=body.reason))


@router.post("/stages/{name}/freeze", summary="Freeze a stage")
def freeze(name: str, body: ReasonIn, service: Guarded) -> ChangeOut:
    """Served, but every later change is refused. Needs ``admin``."""
    return ChangeOut.of(service.freeze_stage(name, reason=body.reason))


@router.post("/stages/{name}/unfreeze", summary="Unfreeze a stage")
def unfreeze(name: str, body: ReasonIn, service: Guarded) -> ChangeOut:
    """Needs ``admin``."""
    return ChangeOut.of(service.freeze_stage(name, reason=body.reason, frozen=False))


@router.get("/stages/{name}/events", summary="The configuration events of a stage")
def stage_events(name: str, service: Guarded) -> StageEventsOut:
    return StageEventsOut(events=[EventOut.of(e) for e in service.stage_events(name)])


__all__ = ["router"]
