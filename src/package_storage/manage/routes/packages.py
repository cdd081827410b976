"""``/packages``: list, publish (upload), show, promote, remove, yank, unyank, signatures;
and ``/diff``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from package_storage.errors import InvalidInputError
from package_storage.manage.deps import Guarded, api_of
from package_storage.manage.schemas import (
    ChangeOut,
    DiffOut,
    EntriesOut,
    EntryOut,
    LocationOut,
    PromoteIn,
    RemoveIn,
    ShowOut,
    SignatureCheckOut,
    VerifyOut,
    YankIn,
)
from package_storage.manage.uploads import read_upload

router = APIRouter(tags=["packages"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["package"],
                    "properties": {
                        "package": {
                            "type": "string",
                            "format": "binary",
                            "description": "The package zip (its file name names it in messages).",
                        },
                        "signature": {
                            "type": "string",
                            "format": "binary",
                            "description": "Its armored detached signature (.sig), if any.",
                        },
                        "stage": {"type": "string", "description": "Default: snapshot."},
                        "force": {"type": "string", "enum": ["true", "false"]},
                        "reason": {"type": "string"},
                    },
                }
            }
        },
    }
}

_TRUE = ("true", "1", "yes", "on")
_BOOL = (*_TRUE, "false", "0", "no", "off", "")


@router.get("/packages", summary="List package versions")
def list_packages(
    service: Guarded,
    stage: str | None = None,
    distribution: str | None = None,
    revision: Annotated[str | None, Query(description="With distribution: N or TAG.")] = None,
) -> EntriesOut:
    """Versions of every stage, one stage, or what a distribution serves (current revision,
    or ``revision``)."""
    entries = service.list_entries(stage=stage, distribution=distribution, revision=revision)
    listed = [EntryOut.of(e) for e in entries]
    if distribution is not None:
        return EntriesOut(kind="revision", entries=listed)
    return EntriesOut(kind="stage", entries=listed)


@router.post("/packages", summary="Publish a package zip", openapi_extra=_UPLOAD_BODY)
async def publish(request: Request, service: Guarded) -> ChangeOut:
    """Upload a package zip (and its .sig): the same validation and rules as ``publish``.
    Needs ``publish:STAGE``. The same bytes again are ``changed: false``."""
    api = api_of(request)
    upload = await read_upload(request, api.max_upload)
    force = upload.fields.get("force", "").strip().lower()
    if force not in _BOOL:
        raise InvalidInputError(f"force {force!r} is not valid: use true or false")
    stage = upload.fields.get("stage") or None
    result = await run_in_threadpool(
        service.publish_bytes,
        upload.data,
        location=upload.filename,
        signature=upload.signature,
        stage=stage,
        force=force in _TRUE,
        reason=upload.fields.get("reason", ""),
    )
    return ChangeOut.of(result)


@router.get("/packages/{name}", summary="Show a package")
def show(name: str, service: Guarded, version: str | None = None) -> ShowOut:
    """Where each version of NAME lives, its artifacts and its events."""
    return ShowOut(name=name, versions=[LocationOut.of(loc) for loc in service.show(name, version)])


@router.get("/packages/{name}/{version}", summary="Show a package version")
def show_version(name: str, version: str, service: Guarded) -> ShowOut:
    return ShowOut(name=name, versions=[LocationOut.of(loc) for loc in service.show(name, version)])


@router.post("/packages/{name}/{version}/promote", summary="Promote a version")
def promote(name: str, version: str, body: PromoteIn, service: Guarded) -> ChangeOut:
    """Move NAME VERSION one stage up into ``to`` in one step. Needs ``promote:TO``."""
    result = service.promote(
        name, version, to=body.to, source=body.source, force=body.force, reason=body.reason
    )
    return ChangeOut.of(result)


@router.post("/packages/{name}/{version}/remove", summary="Remove a version from a stage")
def remove(name: str, version: str, body: RemoveIn, service: Guarded) -> ChangeOut:
    """Needs ``remove:STAGE``."""
    result = service.remove(name, version, stage=body.stage, force=body.force, reason=body.reason)
    return ChangeOut.of(result)


@router.post("/packages/{name}/{version}/yank", summary="Yank a version in a stage")
def yank(name: str, version: str, body: YankIn, service: Guarded) -> ChangeOut:
    """Hidden from search and categories, still downloadable. Needs ``yank:STAGE``."""
    return ChangeOut.of(service.yank(name, version, stage=body.stage, reason=body.reason))


@router.post("/packages/{name}/{version}/unyank", summary="Undo a yank")
def unyank(name: str, version: str, body: YankIn, service: Guarded) -> ChangeOut:
    """Needs ``yank:STAGE``."""
    result = service.yank(name, version, stage=body.stage, reason=body.reason, yanked=False)
    return ChangeOut.of(result)


@router.get("/packages/{name}/{version}/signatures", summary="Verify the stored signatures")
def verify(name: str, version: str, service: Guarded, stage: str | None = None) -> VerifyOut:
    checks = service.verify(name, version, stage=stage)
    return VerifyOut(
        name=name,
        version=version,
        checks=[SignatureCheckOut(stage=c.stage, state=c.state, reason=c.reason) for c in checks],
    )


@router.get("/diff", summary="Compare two stages or revisions")
def diff(
    service: Guarded,
    a: Annotated[str, Query(description="A stage, DIST@N, DIST@TAG or DIST@current.")],
    b: Annotated[str, Query(description="Another one.")],
) -> DiffOut:
    return DiffOut.of(service.diff(a, b))


__all__ = ["router"]
