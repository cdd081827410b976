"""Access tokens of the management API: scopes, secrets, expiry (pure; no I/O).

A token has a name (recorded as the actor of every event it makes), a set of scopes, an
optional expiry and, once revoked, a revocation time. Its secret is shown once, when it is
made, and stored only as a hash.

Scopes (``SCOPE`` in ``tokens create --scope``):

============================  ================================================================
``read``                      every read operation (list, show, diff, history, revisions,
                              tags, stages, verify, the event feed)
``publish:STAGE``             publish into STAGE
``promote:STAGE``             promote *into* STAGE
``remove:STAGE``              remove from STAGE
``yank:STAGE``                yank and unyank a version in STAGE
``tag:DISTRIBUTION``          tag a revision of DISTRIBUTION
``rollback:DISTRIBUTION``     roll DISTRIBUTION back
``admin``                     tokens, stage changes (add, freeze, unfreeze), fsck, and
                              everything else
============================  ================================================================

``*`` in place of STAGE/DISTRIBUTION means every one. Every write scope includes ``read``;
``admin`` includes every scope.

Secrets: ``pst_<id>_<secret>``: ``id`` is 16 hex digits (public, the lookup key), ``secret``
32 random bytes (256 bits) in URL-safe base64. The catalog keeps ``sha256(secret)``; a
presented secret is hashed and compared with :func:`hmac.compare_digest` (constant time). A
sha256 of a 256-bit random secret needs no salt or slow hash: it cannot be guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from package_storage.errors import AuthenticationError, ForbiddenError, InvalidInputError

READ = "read"
ADMIN = "admin"
WILDCARD = "*"
TARGETED_ACTIONS: tuple[str, ...] = ("publish", "promote", "remove", "yank", "tag", "rollback")
"""Scopes that name a stage (publish, promote, remove, yank) or a distribution (tag,
rollback)."""

SECRET_PREFIX = "pst_"
SECRET_BYTES = 32  # 256 bits
_ID_RE = re.compile(r"[0-9a-f]{16}")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_TARGET_RE = re.compile(r"\*|[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_DURATION_RE = re.compile(r"([1-9][0-9]{0,5})([mhdw])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
_UNITS["w"] = timedelta(weeks=1)
MAX_LIFETIME = timedelta(days=3660)


# --- scopes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """``read``, ``admin`` or ``action:target`` (``target`` a stage, a distribution or ``*``)."""

    action: str
    target: str | None = None

    def __str__(self) -> str:
        return self.action if self.target is None else f"{self.action}:{self.target}"

    def grants(self, needed: Scope) -> bool:
        """Does holding this scope allow what ``needed`` allows?"""
        if self.action == ADMIN:
            return True
        if needed.action == READ:
            return True  # every scope includes read
        if needed.action == ADMIN or self.action != needed.action:
            return False
        return self.target == WILDCARD or self.target == needed.target


def parse_scope(text: str) -> Scope:
    """The scope named by ``text``; InvalidInputError naming it and the rule when it is not
    one (see the module docstring)."""
    value = text.strip() if isinstance(text, str) else ""
    if value in (READ, ADMIN):
        return Scope(value)
    action, sep, target = value.partition(":")
    if sep and action in TARGETED_ACTIONS and _TARGET_RE.fullmatch(target):
        return Scope(action, target)
    raise InvalidInputError(
        f"scope {text!r} is not valid: use read, admin, or ACTION:STAGE with ACTION one of"
        f" {', '.join(TARGETED_ACTIONS)} and STAGE a stage or distribution name or *"
    )


def parse_scopes(texts: Iterable[str]) -> tuple[Scope, ...]:
    """Parsed, deduplicated and sorted scopes; at least one (InvalidInputError otherwise)."""
    scopes = tuple(sorted({parse_scope(t) for t in texts}))
    if not scopes:
        raise InvalidInputError("a token needs at least one scope (--scope read, ...)")
    return scopes


def check_granted(held: Sequence[Scope], needed: Scope, *, token: str = "") -> None:
    """ForbiddenError naming ``needed`` when no scope in ``held`` grants it."""
    if any(scope.grants(needed) for scope in held):
        return
    who = f"token {token}" if token else "this token"
    raise ForbiddenError(
        f"{who} lacks the scope {needed} (it has: {', '.join(map(str, held)) or 'none'})",
        scope=str(needed),
    )


# --- names, lifetimes ------------------------------------------------------------------------


def check_token_name(name: str) -> str:
    """Return ``name`` when it is a valid token name, else InvalidInputError."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInputError(
            f"token name {name!r} is not valid: use 1-64 ASCII letters, digits, '.', '_' or '-'"
            " (not starting with '.' or '-')"
        )
    return name


def parse_lifetime(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` -> a timedelta (at most about ten years)."""
    match = _DURATION_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidInputError(
            f"lifetime {text!r} is not valid: use a number and a unit, m (minutes), h (hours),"
            " d (days) or w (weeks), e.g. 30d"
        )
    lifetime = int(match.group(1)) * _UNITS[match.group(2)]
    if lifetime > MAX_LIFETIME:
        raise InvalidInputError(f"lifetime {text!r} is longer than {MAX_LIFETIME.days} days")
    return lifetime


# --- secrets ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSecret:
    """A freshly made secret: ``token_id`` and ``secret_hash`` are stored, ``text`` is shown
    once and never stored."""

    token_id: str
    secret_hash: str
    text: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii", "replace")).hexdigest()


def new_secret() -> NewSecret:
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return NewSecret(token_id, hash_secret(secret), f"{SECRET_PREFIX}{token_id}_{secret}")


def split_secret(text: str) -> tuple[str, str]:
    """(token id, secret) of a presented token; AuthenticationError when it has not the
    shape of one."""
    body = text.strip()[len(SECRET_PREFIX) :] if text.strip().startswith(SECRET_PREFIX) else ""
    token_id, sep, secret = body.partition("_")
    if not sep or not _ID_RE.fullmatch(token_id) or not secret:
        raise AuthenticationError("the token is not a package-storage token (pst_...)")
    return token_id, secret


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def check_usable(
    name: str, expires: datetime | None, revoked: datetime | None, now: datetime
) -> None:
    """AuthenticationError when the token is revoked or expired at ``now``."""
    if revoked is not None:
        raise AuthenticationError(f"token {name} was revoked")
    if expires is not None and now >= expires:
        raise AuthenticationError(f"token {name} expired")


__all__ = [
    "ADMIN",
    "READ",
    "SECRET_PREFIX",
    "TARGETED_ACTIONS",
    "WILDCARD",
    "NewSecret",
    "Scope",
    "check_granted",
    "check_token_name",
    "check_usable",
    "hash_secret",
    "new_secret",
    "parse_lifetime",
    "parse_scope",
    "parse_scopes",
    "secret_matches",
    "split_secret",
]
