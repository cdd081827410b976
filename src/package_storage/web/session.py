"""Sign-in cookie and CSRF tokens of the web UI (pure; no I/O).

Signing in stores the token's secret in the ``ps_session`` cookie (``HttpOnly``: no script
reads it, ``SameSite=Strict``: no other site's page sends it, ``Secure`` under TLS, ``Path=/``);
every request looks the token up again, so a revocation or an expiry takes effect on the next
page. A second cookie, ``ps_csrf``, holds a random seed set on the first visit. Every form that
changes something (sign-in and sign-out included) carries the hidden field ``csrf`` =
HMAC-SHA256(seed, session secret): a page of another site can neither read the seed nor the
secret, so it cannot forge the field, and the value changes with each sign-in. The field is
compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

SESSION_COOKIE = "ps_session"
CSRF_COOKIE = "ps_csrf"
CSRF_FIELD = "csrf"
SESSION_SECONDS = 12 * 3600
"""The session cookie's lifetime (the token's own expiry still applies)."""
_SEED_BYTES = 32


def new_seed() -> str:
    """A fresh CSRF seed (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(_SEED_BYTES)


def csrf_token(seed: str, secret: str | None) -> str:
    """The CSRF field value for the browser holding ``seed`` signed in with ``secret``."""
    message = b"package-storage ui csrf v1\0" + (secret or "").encode()
    return hmac.new(seed.encode(), message, hashlib.sha256).hexdigest()


def csrf_ok(seed: str | None, secret: str | None, presented: str | None) -> bool:
    """Is ``presented`` the CSRF value of this browser's seed and session?"""
    if not seed or not presented:
        return False
    return hmac.compare_digest(csrf_token(seed, secret), presented)


def same_origin(origin: str | None, scheme: str, host: str | None) -> bool:
    """A request's ``Origin`` header (when the browser sends one) names this server."""
    if origin is None:
        return True
    if not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme == scheme and parts.netloc.lower() == host.lower()


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path of this site (``/x``, not ``//host`` nor a URL), else
    ``default``: where a sign-in goes back to, never another site."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target


__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "csrf_ok",
    "csrf_token",
    "local_path",
    "new_seed",
    "same_origin",
]
