"""The one mapping from the error tree (``errors.py``) to HTTP statuses.

Both HTTP apps use it: the read API (``registry/http/errors.py``, which adds the reference's
fixed texts and its one contextual exception) and the management API (``manage/errors.py``,
which renders ``{"error": {"code": ..., "message": ...}}``). The most specific class wins.
"""

from __future__ import annotations

from package_storage.errors import (
    AuthenticationError,
    BundleError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PackageError,
    PackageStorageError,
    PolicyError,
    SignatureError,
    TooLargeError,
    UnavailableError,
    UnsafePackageError,
)

# Most specific first: the first class an error is an instance of gives its status.
STATUSES: tuple[tuple[type[PackageStorageError], int], ...] = (
    (TooLargeError, 413),
    (InvalidInputError, 400),
    (PackageError, 422),  # the package sent is unreadable or breaks a package-spec rule
    (UnsafePackageError, 422),  # refused by the archive-safety gate or a size limit
    (SignatureError, 422),
    (BundleError, 422),
    (NotFoundError, 404),
    (AuthenticationError, 401),
    (ForbiddenError, 403),
    (PolicyError, 403),
    (ConflictError, 409),
    (UnavailableError, 503),  # a backend that cannot be reached right now
)

INTERNAL = 500
"""Every other error (storage failures, bugs): internals never reach a client."""


def status_of(exc: BaseException) -> int:
    """The HTTP status of ``exc`` (500 for anything not in :data:`STATUSES`)."""
    for cls, status in STATUSES:
        if isinstance(exc, cls):
            return status
    return INTERNAL


__all__ = ["INTERNAL", "STATUSES", "status_of"]
