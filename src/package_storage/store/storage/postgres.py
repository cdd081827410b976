"""The PostgreSQL catalog: :class:`PostgresCatalog` (``postgresql://USER@HOST:PORT/DB``).

The same :class:`~package_storage.store.storage.sqlite.SQLCatalog` code and schema as SQLite,
over psycopg 3. How the rules of the SQLite catalog hold on a server shared by many hosts:

* **Writers are serialized by the catalog.** A writing transaction begins by locking the one
  ``catalog_state`` row (``SELECT ... FOR UPDATE``); a second writer, on any host, waits there
  until the first commits or rolls back, then reads the committed state (READ COMMITTED: every
  statement after the lock sees every earlier commit). No lost update, no half-written change:
  the whole change is one transaction.
* **Schema creation and migration** hold a transaction-level advisory lock
  (``pg_advisory_xact_lock``) instead: there is no row to lock in an empty database, and two
  processes running ``init`` or ``migrate`` at once must not both create the tables.
* **Readers see a snapshot.** A read runs in a READ ONLY, REPEATABLE READ transaction, so the
  several statements of one read (a revision, its tags, the current pointer) agree.
* **Change notification.** A committing write runs ``pg_notify`` on :data:`CHANNEL` with its
  change sequence (delivered at commit, never for a rollback);
  :meth:`PostgresCatalog.change_notifier` listens (``pgnotify.py``).
* **Connections** come from SQLAlchemy's pool with a liveness check on checkout, so a server
  restart costs the in-flight statements only: the next read or write reconnects.

Text columns that are compared and sorted (names, versions, stages, tags) use the ``C``
collation (``schema._key``), as SQLite does, whatever the database's default collation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError

from package_storage import __version__
from package_storage.errors import InvalidInputError
from package_storage.store.storage.base import ChangeNotifier
from package_storage.store.storage.pgnotify import CHANNEL, PostgresChangeNotifier
from package_storage.store.storage.sqlite import SQLCatalog, SQLTransaction

URL_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
"""What a catalog URL may start with (``SCHEME://``)."""

_SCHEMA_LOCK = 0x7061636B73746F72  # "packstor": the advisory lock of schema changes
_CONNECT_TIMEOUT = 10


def is_postgres_url(text: str) -> bool:
    """True when ``text`` names a PostgreSQL catalog (``postgresql://...``)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in URL_SCHEMES


def parse_url(text: str) -> URL:
    """The SQLAlchemy URL (psycopg 3 driver) of ``postgresql://USER[:PASS]@HOST[:PORT]/DB``.

    InvalidInputError (one line) when ``text`` is not such a URL."""
    if not is_postgres_url(text):
        raise InvalidInputError(f"catalog URL {text!r} is not postgresql://USER@HOST:PORT/DB")
    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise InvalidInputError(f"catalog URL {text!r} is not valid: {exc}") from exc
    if not url.database:
        raise InvalidInputError(
            f"catalog URL {display_url(text)} names no database: postgresql://USER@HOST:PORT/DB"
        )
    return url.set(drivername="postgresql+psycopg")


def display_url(text: str) -> str:
    """``text`` with its password (if any) hidden, for messages and logs."""
    try:
        return make_url(text).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return text


def libpq_conninfo(url: URL) -> str:
    """The libpq connection string of ``url`` (for psycopg's own connections)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresCatalog(SQLCatalog):
    """The catalog in the PostgreSQL database at ``url``; see the module docstring.

    ``create``/``upgrade`` as :class:`SQLCatalog` (an empty database is only given a schema by
    ``create``; ``package-storage init`` passes it, every other command does not)."""

    def __init__(
        self,
        url: str,
        *,
        server_version: str = __version__,
        create: bool = True,
        upgrade: bool = False,
        location: str | None = None,
    ) -> None:
        self.url = parse_url(url)
        self._conninfo = libpq_conninfo(self.url)
        engine = create_engine(
            self.url,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": _CONNECT_TIMEOUT,
                "application_name": "package-storage",
            },
        )
        super().__init__(
            engine,
            server_version=server_version,
            create=create,
            upgrade=upgrade,
            location=location or display_url(url),
        )

    def change_notifier(self) -> ChangeNotifier | None:
        """LISTEN on :data:`CHANNEL` from a connection of its own (reconnects by itself)."""
        return PostgresChangeNotifier(self._conninfo)

    @contextmanager
    def _schema_connection(self) -> Iterator[Connection]:
        with self._engine.begin() as conn:
            conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            yield conn

    def _write_connection(self) -> AbstractContextManager[Connection]:
        if not self._schema_ready:
            return self._schema_connection()
        return self._locked_connection()

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            with conn.begin():
                yield conn

    def _read_connection(self) -> AbstractContextManager[Connection]:
        return self._snapshot()

    def _before_commit(self, conn: Connection, tx: SQLTransaction) -> None:
        conn.execute(select(func.pg_notify(CHANNEL, str(tx.seq))))


__all__ = [
    "URL_SCHEMES",
    "PostgresCatalog",
    "display_url",
    "is_postgres_url",
    "libpq_conninfo",
    "parse_url",
]
