"""One store directory: the embedded default backend (SQLite catalog + local blob folder).

Layout of ``DIR`` (``--store DIR``, ``PACKAGE_STORAGE_STORE``, default ``./data``)::

    DIR/catalog.db     the SQLite catalog (stages, artifacts, entries, revisions, tags, events)
    DIR/catalog.db-wal  (SQLite write-ahead log, while in use)
    DIR/blobs/         content-addressed blobs (``storage/localfs.py``)

``Store.init(DIR)`` creates the layout (idempotent); ``Store.open(DIR)`` refuses a directory
that is not a store with a message telling how to make one, so a typo in ``--store`` never
silently creates an empty store.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from package_storage.errors import NotFoundError, StorageError
from package_storage.store.keyring import StoreKeyring
from package_storage.store.service import StoreService
from package_storage.store.storage.keystore import CatalogKeyStore
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.store.storage.sqlite import SQLiteCatalog

STORE_ENV = "PACKAGE_STORAGE_STORE"
ACTOR_ENV = "PACKAGE_STORAGE_ACTOR"
DEFAULT_STORE_DIR = "./data"

CATALOG_FILE = "catalog.db"
BLOBS_DIR = "blobs"


def default_store_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``PACKAGE_STORAGE_STORE`` when set (and not empty), else ``./data``."""
    env = os.environ if environ is None else environ
    return Path(env.get(STORE_ENV) or DEFAULT_STORE_DIR)


def default_actor(environ: Mapping[str, str] | None = None) -> str:
    """Who is acting: ``PACKAGE_STORAGE_ACTOR`` when set, else the OS user name."""
    env = os.environ if environ is None else environ
    actor = (env.get(ACTOR_ENV) or "").strip()
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


class Store:
    """An open store directory: ``.catalog``, ``.blobs`` and ``.service(actor)``.

    Use as a context manager or call :meth:`close`. One ``Store`` per process (the catalog is
    thread-safe; several processes may open the same directory at once).
    """

    def __init__(self, root: Path, catalog: SQLiteCatalog, blobs: LocalBlobStore) -> None:
        self.root = root
        self.catalog = catalog
        self.blobs = blobs

    @staticmethod
    def is_store(path: str | Path) -> bool:
        return (Path(path) / CATALOG_FILE).is_file()

    @classmethod
    def open(cls, path: str | Path, *, create: bool = False) -> Store:
        """Open the store at ``path``; with ``create`` make it first when absent.

        NotFoundError when ``path`` holds no store (and ``create`` is False); StorageError when
        it cannot be created or opened.
        """
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise StorageError(f"store {root} is not a directory")
        if not cls.is_store(root):
            if not create:
                raise NotFoundError(
                    f"no package store at {root}: run `package-storage init --store {root}`"
                )
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create store {root}: {exc}") from exc
        try:
            blobs = LocalBlobStore(root / BLOBS_DIR)
        except OSError as exc:
            raise StorageError(f"cannot open blob folder {root / BLOBS_DIR}: {exc}") from exc
        catalog = SQLiteCatalog(root / CATALOG_FILE)
        return cls(root, catalog, blobs)

    @classmethod
    def init(cls, path: str | Path) -> Store:
        """Create the store at ``path`` (idempotent: an existing store is opened unchanged)."""
        return cls.open(path, create=True)

    def keyring(self, actor: str | None = None) -> StoreKeyring:
        """The store's keys: in its catalog, plus the key files of stores made before keys
        moved there (``DIR/keys``, still read; see ``store/keyring.py``)."""
        return StoreKeyring(
            self.root, keystore=CatalogKeyStore(self.catalog), actor=actor or default_actor()
        )

    def service(self, actor: str | None = None) -> StoreService:
        """The service acting as ``actor`` (default: :func:`default_actor`)."""
        return StoreService(
            self.catalog,
            self.blobs,
            actor=actor or default_actor(),
            keyring=self.keyring(actor),
        )

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"


__all__ = [
    "ACTOR_ENV",
    "DEFAULT_STORE_DIR",
    "STORE_ENV",
    "Store",
    "default_actor",
    "default_store_dir",
]
