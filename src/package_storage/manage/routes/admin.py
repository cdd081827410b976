"""``/fsck`` (report only), ``/tokens`` and ``/whoami``."""

from __future__ import annotations

from fastapi import APIRouter

from package_storage.manage.deps import Guarded
from package_storage.manage.schemas import (
    FsckOut,
    NewTokenOut,
    RevokedOut,
    TokenIn,
    TokenOut,
    TokensOut,
    WhoAmIOut,
)
from package_storage.store.storage.base import format_time
from package_storage.store.tokens import parse_lifetime

router = APIRouter(tags=["admin"])


@router.get("/whoami", summary="The token of this request")
def whoami(service: Guarded) -> WhoAmIOut:
    token = service.token
    expires = format_time(token.expires) if token.expires else None
    return WhoAmIOut(name=token.name, scopes=list(token.scopes), expires=expires)


@router.get("/fsck", summary="Check the store (report only)")
def fsck(service: Guarded) -> FsckOut:
    """Catalog consistency and blobs. Needs ``admin``. Repairs run on the store's machine."""
    return FsckOut.of(service.fsck())


@router.get("/tokens", summary="Every token (never a secret)")
def tokens(service: Guarded) -> TokensOut:
    return TokensOut(tokens=[TokenOut.of(t) for t in service.tokens()])


@router.post("/tokens", summary="Create a token")
def create_token(body: TokenIn, service: Guarded) -> NewTokenOut:
    """The secret is in this answer only. Needs ``admin``."""
    lifetime = parse_lifetime(body.expires) if body.expires is not None else None
    record, secret = service.create_token(body.name, body.scopes, lifetime=lifetime)
    return NewTokenOut(token=secret, record=TokenOut.of(record))


@router.post("/tokens/{name}/revoke", summary="Revoke a token")
def revoke_token(name: str, service: Guarded) -> RevokedOut:
    record, changed = service.revoke_token(name)
    return RevokedOut(changed=changed, record=TokenOut.of(record))
