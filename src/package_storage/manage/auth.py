"""Bearer tokens: ``Authorization: Bearer SECRET`` -> the service acting for that token.

The token is looked up on every request (a revocation or an expiry takes effect at once); the
answer is a :class:`~package_storage.store.access.GuardedService`, which checks the token's
scope before each call and records the token's name as the actor of every event.
"""

from __future__ import annotations

from collections.abc import Callable

from package_storage.errors import AuthenticationError
from package_storage.store.access import GuardedService
from package_storage.store.directory import Store

BEARER = "bearer"


def bearer_secret(header: str | None) -> str:
    """The secret of an ``Authorization`` header; AuthenticationError when there is none."""
    if not header:
        raise AuthenticationError(
            "this API needs a token: send Authorization: Bearer SECRET"
            " (package-storage tokens create)"
        )
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != BEARER or not secret.strip():
        raise AuthenticationError("the Authorization header is not Bearer SECRET")
    return secret.strip()


def authenticator(store: Store) -> Callable[[str | None], GuardedService]:
    """A function from an ``Authorization`` header to the guarded service of its token."""
    checker = store.service("management-api")

    def authenticate(header: str | None) -> GuardedService:
        token = checker.authenticate(bearer_secret(header))
        return GuardedService(store.service(token.name), token)

    return authenticate


__all__ = ["authenticator", "bearer_secret"]
