"""What every route needs: the API's state, the token's guarded service, the documented
error answers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from package_storage.manage.auth import authenticator
from package_storage.manage.schemas import ErrorOut
from package_storage.store.access import GuardedService
from package_storage.store.directory import Store


@dataclass
class Api:
    """The state of one management app: the store, its limits, and the stop flag that ends
    the event streams when the server shuts down."""

    store: Store
    max_upload: int
    poll_interval: float = 0.5
    stream_seconds: float = 3600.0
    closing: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.authenticate = authenticator(self.store)


def api_of(request: Request) -> Api:
    api = request.app.state.api
    assert isinstance(api, Api)
    return api


_bearer = HTTPBearer(
    auto_error=False,
    description="A token made with `package-storage tokens create` (scopes: docs/api.md).",
)


def guarded(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> GuardedService:
    """The service acting for the request's token (401 without a usable one)."""
    return api_of(request).authenticate(request.headers.get("authorization"))


Guarded = Annotated[GuardedService, Depends(guarded)]

_ERRORS = {
    400: "Bad input (one line naming the input and the rule)",
    401: "No token, or an unknown, expired or revoked one",
    403: "The token lacks a scope, or a stage rule refuses",
    404: "No such stage, package, revision or tag",
    409: "Conflicts with the current state (a tag exists, ...)",
    413: "Upload above the size limit",
    422: "The package is broken or breaks a package-spec rule",
    500: "Internal error",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text} for status, text in _ERRORS.items()
}
