"""The management app: FastAPI under ``/api/v1/``, OpenAPI 3.1 at ``/api/v1/openapi.json``.

:func:`create_app` builds it over an open :class:`~package_storage.store.directory.Store`;
``serve --manage-address`` runs it on its own listener beside the read API. :func:`stop`
ends its event streams (the server calls it when it shuts down).
"""

from __future__ import annotations

from fastapi import FastAPI

from package_storage import __version__
from package_storage.manage import errors
from package_storage.manage.deps import ERROR_RESPONSES, Api
from package_storage.manage.routes import admin, distributions, events, packages, stages
from package_storage.manage.uploads import DEFAULT_MAX_UPLOAD
from package_storage.store.directory import Store

PREFIX = "/api/v1"

DESCRIPTION = """The store's operations over HTTP, with the same rules, messages and one
transaction each as the `package-storage` CLI. Every request needs
`Authorization: Bearer SECRET` (a token of `package-storage tokens create`) whose scopes allow
the operation: `read` for every read, `publish:STAGE`, `promote:STAGE`, `remove:STAGE`,
`yank:STAGE` (yank and unyank), `tag:DISTRIBUTION`, `rollback:DISTRIBUTION` (`*`: every
one), `admin` for stage changes, tokens, fsck and everything.
Errors are `{"error": {"code": STABLE_CODE, "message": "..."}}`."""


def create_app(
    store: Store,
    *,
    max_upload: int = DEFAULT_MAX_UPLOAD,
    poll_interval: float = 0.5,
    stream_seconds: float = 3600.0,
) -> FastAPI:
    """The management app over ``store`` (uploads up to ``max_upload`` bytes)."""
    app = FastAPI(
        title="package-storage management API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    app.state.api = Api(
        store, max_upload, poll_interval=poll_interval, stream_seconds=stream_seconds
    )
    errors.install(app)
    for module in (packages, distributions, stages, events, admin):
        app.include_router(module.router, prefix=PREFIX)
    return app


def stop(app: FastAPI) -> None:
    """End the open event streams (the server is shutting down)."""
    api = app.state.api
    assert isinstance(api, Api)
    api.closing.set()


__all__ = ["PREFIX", "create_app", "stop"]
