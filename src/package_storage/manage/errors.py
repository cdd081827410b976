"""Errors of the management API: ``{"error": {"code": STABLE_CODE, "message": "..."}}``.

The status comes from the one mapping (``package_storage/status.py``); the code is the error
class's stable ``code``. Request validation failures (a missing field, a wrong type) are
``400 invalid_input`` with one line naming the field; unknown routes ``404 not_found``; a
wrong method ``405 method_not_allowed``; anything unexpected ``500 internal`` (logged, never
shown).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from package_storage.errors import AuthenticationError, PackageStorageError
from package_storage.logs import get_logger
from package_storage.status import status_of

log = get_logger("manage")

INTERNAL_MESSAGE = "internal server error"


def error_response(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={"cache-control": "no-store", **headers},
    )


def response_for(exc: BaseException) -> JSONResponse:
    """The answer to ``exc`` raised by an operation."""
    status = status_of(exc)
    if status >= 500 or not isinstance(exc, PackageStorageError):
        log.error("management request failed: %s", exc, exc_info=exc)
        return error_response(500, "internal", INTERNAL_MESSAGE)
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationError):
        headers["www-authenticate"] = 'Bearer realm="package-storage"'
    return error_response(status, exc.code, exc.message, **headers)


def _validation_message(exc: RequestValidationError) -> str:
    problems: list[str] = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        problems.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(problems)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def on_error(_request: Request, exc: Exception) -> JSONResponse:
        return response_for(exc)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, "invalid_input", _validation_message(exc))

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        codes: dict[int, str] = {404: "not_found", 405: "method_not_allowed"}
        message = {404: "no such API route", 405: "method not allowed"}.get(
            exc.status_code, str(exc.detail)
        )
        headers: dict[str, Any] = dict(exc.headers or {})
        return error_response(
            exc.status_code, codes.get(exc.status_code, "http_error"), message, **headers
        )

    app.add_exception_handler(PackageStorageError, on_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_error)


__all__ = ["error_response", "install", "response_for"]
