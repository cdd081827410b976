"""The read API's error answers: statuses from the one mapping (``status.py``) and the
client-visible texts of the reference (spec §1.4).

Handlers catch, call :func:`status_for`, and render the pair as a plain-text error. The fixed
texts of the reference's HTTP layer are constants here so the router and handlers share them.
"""

from __future__ import annotations

from typing import Literal

from package_storage.errors import PackageError, PackageStorageError, UnavailableError
from package_storage.status import status_of

# Exact texts of the reference (spec §1.4).
PAGE_NOT_FOUND = "404 page not found"
INVALID_PACKAGE_VERSION = "invalid package version"
PACKAGE_REVISION_NOT_FOUND = "package revision not found"
ARTIFACT_NOT_FOUND = "artifact not found"
SIGNATURE_NOT_FOUND = "signature file not found"
RESOURCE_NOT_FOUND = "resource not found"
INTERNAL_SERVER_ERROR = "internal server error"
# Texts of this implementation for requests the reference's Go server rejects on its own.
URI_TOO_LONG = "request URI too long"
INVALID_URL_ESCAPE = "invalid URL escape"
# A stored file whose blob store cannot be reached right now (S3 down, not in the cache).
STORAGE_UNAVAILABLE = "storage temporarily unavailable: the file cannot be read now, retry later"

Endpoint = Literal["search", "categories", ""]


def status_for(exc: BaseException, *, endpoint: Endpoint = "") -> tuple[int, str]:
    """HTTP status and error text for ``exc`` raised while answering a request.

        ``endpoint`` names the handler when its texts differ: a package-source failure
        (``PackageError``) is ``404 fetching package failed: <msg>`` on ``/search`` and
        ``404 <msg>`` on ``/categories``. Query validation errors (``QueryError`` and every other
        ``InvalidInputError``) are 400 with their message. A blob store that cannot be reached
    (``UnavailableError``) is ``503`` with :data:`STORAGE_UNAVAILABLE`. Anything unexpected (storage failures,
        vanished files, bugs) is ``500 internal server error``: internals never reach a client.
    """
    if isinstance(exc, PackageError):
        # On the read path a package error means a served package is broken (or, on
        # /search and /categories, a source failed): never the client's fault.
        if endpoint == "search":
            return 404, f"fetching package failed: {exc.message}"
        if endpoint == "categories":
            return 404, exc.message
        return 500, INTERNAL_SERVER_ERROR
    if isinstance(exc, UnavailableError):
        return 503, STORAGE_UNAVAILABLE
    status = status_of(exc)
    # 422 means "the package you sent is broken"; a read request sends none: ours is broken.
    if status >= 500 or status == 422 or not isinstance(exc, PackageStorageError):
        return 500, INTERNAL_SERVER_ERROR
    return status, exc.message
