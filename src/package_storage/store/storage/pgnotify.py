"""Change notification for the PostgreSQL catalog: a :class:`~.base.ChangeNotifier` over
``LISTEN``.

Every committed writing transaction of the catalog runs ``pg_notify(CHANNEL, change_seq)``
(``postgres.py``); PostgreSQL delivers it at commit to every listening session, on every host.
:class:`PostgresChangeNotifier` keeps one connection of its own (autocommit, ``LISTEN``) in a
daemon thread and wakes :meth:`~PostgresChangeNotifier.wait` on each notification.

When the connection drops (server restart, network), :meth:`~PostgresChangeNotifier.active`
turns False (the reader then polls at its fast interval), the thread reconnects every
:data:`RETRY_SECONDS` until it succeeds, and after reconnecting it wakes the reader once: a
change may have been committed while nobody listened. A silent connection is noticed by a
``SELECT 1`` every :data:`PING_SECONDS` (and TCP keepalives).
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from psycopg import sql

log = logging.getLogger("package_storage.pgnotify")

CHANNEL = "package_storage_catalog"
"""The notification channel of catalog changes (payload: the committed change sequence)."""
RETRY_SECONDS = 1.0
PING_SECONDS = 5.0
_STEP_SECONDS = 0.5  # how long one wait for notifications lasts (bounds close() latency)


class PostgresChangeNotifier:
    """Notifications of :data:`CHANNEL` on the server of ``conninfo`` (a libpq connection
    string or URL). Starts at once in a daemon thread; :meth:`close` stops it."""

    def __init__(self, conninfo: str, channel: str = CHANNEL) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self.connects = 0
        """How many times the listening connection was (re)established."""
        self._thread = threading.Thread(
            target=self._run, name="package-storage-catalog-listen", daemon=True
        )
        self._thread.start()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=5,
            application_name="package-storage-listen",
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )

    def _listen(self) -> None:
        with self._connect() as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self.connects += 1
            if self.connects > 1:
                log.info("catalog notifications: reconnected")
            self._connected.set()
            self._changed.set()  # changes may have been committed while nobody listened
            pinged = time.monotonic()
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=_STEP_SECONDS):
                    self._changed.set()
                if time.monotonic() - pinged >= PING_SECONDS:
                    conn.execute("SELECT 1")
                    pinged = time.monotonic()

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                if not failing and not self._stop.is_set():
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                    log.warning(f"catalog notifications lost, polling until reconnected: {first}")
                failing = True
            except Exception as exc:  # never let the thread die silently
                log.error(f"catalog notifications stopped: {exc}")
                failing = True
            else:
                failing = False
            finally:
                self._connected.clear()
                self._changed.set()
            self._stop.wait(RETRY_SECONDS)

    def active(self) -> bool:
        """True while the listening connection is up."""
        return self._connected.is_set() and not self._stop.is_set()

    def wait(self, timeout: float) -> bool:
        woke = self._changed.wait(timeout)
        self._changed.clear()
        return woke

    def close(self) -> None:
        self._stop.set()
        self._changed.set()
        self._thread.join(timeout=5)


__all__ = ["CHANNEL", "PostgresChangeNotifier"]
