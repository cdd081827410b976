"""The PostgreSQL server of the tests: the machine's own at 127.0.0.1:5432 (user postgres, trust
auth), or the one named by ``PACKAGE_STORAGE_TEST_POSTGRES`` (an admin URL).

Each test makes its own database (:func:`temporary_database`) and drops it afterwards, so
tests never see each other's data. When no server answers, :func:`require_server` skips with
a loud reason (pytest's ``-ra`` summary lists it).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ADMIN_ENV = "PACKAGE_STORAGE_TEST_POSTGRES"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get(ADMIN_ENV) or DEFAULT_ADMIN_URL


def _base(url: str) -> str:
    return url.rsplit("/", 1)[0]


@functools.cache
def unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when the server answers."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - a dev dependency
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(admin_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        return f"no PostgreSQL server answers at {admin_url()} ({first})"
    return None


def require_server() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"POSTGRESQL TESTS SKIPPED: {reason}; set {ADMIN_ENV} to run them")


def create_database(prefix: str = "ps_test", admin: str | None = None) -> str:
    """A new empty database; returns its URL."""
    import psycopg

    admin = admin or admin_url()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{_base(admin)}/{name}"


def drop_database(url: str, admin: str | None = None) -> None:
    import psycopg

    admin = admin or admin_url()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def temporary_database(prefix: str = "ps_test") -> Iterator[str]:
    """A fresh database for one test (skips when there is no server); dropped afterwards."""
    require_server()
    url = create_database(prefix)
    try:
        yield url
    finally:
        drop_database(url)
