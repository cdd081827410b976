"""File-change notification for the SQLite catalog: a :class:`~.base.ChangeNotifier` that wakes
a reader when another process (or this one) writes the database file or its write-ahead log.

It watches the catalog's folder (not recursively) with ``watchfiles`` (inotify on Linux, the
platform's native events elsewhere) and keeps events for the catalog's own files only
(``catalog.db``, ``catalog.db-wal``, ``catalog.db-journal``). A commit in WAL mode writes its
frames to the ``-wal`` file; readers never write either file (their locks live in the
memory-mapped ``-shm`` file, which makes no events), so a serving process does not wake
itself by reading. Events are grouped for :data:`STEP_MS` ms of quiet (a commit's writes
arrive together) and then reported.

When watching cannot start or stops with an error (no inotify watch left, an unsupported file
system), :meth:`FileChangeNotifier.active` turns False and the reader falls back to polling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("package_storage.filewatch")

STEP_MS = 10
"""Quiet time (ms) after the last event before the group is reported."""
DEBOUNCE_MS = 100
"""Longest time (ms) events are grouped while writes keep coming."""
_CHECK_STOP_MS = 500


class FileChangeNotifier:
    """Notifier over file-change events of ``files`` (all in one folder). Starts watching at
    once in a daemon thread; :meth:`close` stops it."""

    def __init__(self, files: Iterable[Path]) -> None:
        paths = [Path(f).absolute() for f in files]
        if not paths or len({p.parent for p in paths}) != 1:
            raise ValueError("a FileChangeNotifier watches files of one folder")
        self._folder = paths[0].parent
        self._names = frozenset(p.name for p in paths)
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._active = True
        self._thread = threading.Thread(
            target=self._run, name="package-storage-catalog-watch", daemon=True
        )
        self._thread.start()

    def _wanted(self, _change: Any, path: str) -> bool:
        return Path(path).name in self._names

    def _run(self) -> None:
        try:
            import watchfiles

            for _ in watchfiles.watch(
                self._folder,
                watch_filter=self._wanted,
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=self._stop,
                rust_timeout=_CHECK_STOP_MS,
                recursive=False,
                force_polling=False,
                raise_interrupt=False,
            ):
                self._changed.set()
        except Exception as exc:  # no watch possible: the reader polls instead
            if not self._stop.is_set():
                log.warning(f"catalog file watching stopped, polling instead: {exc}")
        finally:
            self._active = False
            self._changed.set()

    def active(self) -> bool:
        """True while events are being watched."""
        return self._active and not self._stop.is_set()

    def wait(self, timeout: float) -> bool:
        woke = self._changed.wait(timeout)
        self._changed.clear()
        return woke

    def close(self) -> None:
        self._stop.set()
        self._changed.set()
        self._thread.join(timeout=5)


def catalog_notifier(database: Path) -> FileChangeNotifier | None:
    """A notifier for the SQLite database at ``database``, or None when ``watchfiles`` is not
    installed."""
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return None
    name = database.name
    folder = database.absolute().parent
    return FileChangeNotifier(folder / n for n in (name, f"{name}-wal", f"{name}-journal"))
