"""Helpers shared by the management API and web UI test fixtures: tokens of a store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from package_storage.store.directory import Store

MakeToken = Callable[..., str]


def token_maker(store: Store) -> MakeToken:
    """A function making a new token of ``store`` with ``scopes`` (name: ``t1``, ``t2``, ...
    unless given) and returning its secret."""
    count = 0

    def make(*scopes: str, name: str | None = None, **kwargs: Any) -> str:
        nonlocal count
        count += 1
        _, secret = store.service("setup").create_token(name or f"t{count}", list(scopes), **kwargs)
        return secret

    return make
