"""The PostgreSQL server of the tests: the machine's own at 127.0.0.1:5432 (user postgres, trust
auth), or the one named by ``PACKAGE_STORAGE_TEST_POSTGRES`` (an admin URL).

Each test makes its own database (:func:`temporary_database`) and drops it afterwards, so
tests never see each other's data. When no server answers, :func:`require_server` skips with
a loud reason (pytest's ``-ra`` summary lists it).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


# --- a throw-away server of the test's own ---------------------------------------------------


def _binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return found[0].parent if found else None


class PrivateServer:
    """A PostgreSQL cluster of one test (``initdb`` in a temporary folder, a free loopback
    port, trust auth for ``postgres``), which the test may stop and start at will, unlike the
    machine's shared server. As root, the cluster runs as the ``postgres`` OS user
    (``initdb`` refuses root). :meth:`require` skips loudly when the binaries are missing."""

    def __init__(self, port: int) -> None:
        bin_dir = _binaries()
        assert bin_dir is not None
        self.bin = bin_dir
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="ps-pg-", dir="/tmp"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")

    @staticmethod
    def require() -> None:
        if _binaries() is None:
            pytest.skip(
                "POSTGRESQL FAULT TESTS SKIPPED: no /usr/lib/postgresql/*/bin/pg_ctl (Debian's"
                " postgresql package) to start a throw-away server"
            )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip(
                    "POSTGRESQL FAULT TESTS SKIPPED: running as root without a postgres user"
                )

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions, cut every connection)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
