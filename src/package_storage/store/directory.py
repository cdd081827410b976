"""An open store (:class:`Store`: catalog + blobs + service) and the store directory, the
embedded default backend (SQLite catalog + local blob folder).

Layout of ``DIR`` (``--store DIR``, ``PACKAGE_STORAGE_STORE``, default ``./data``)::

    DIR/catalog.db     the SQLite catalog (stages, artifacts, entries, revisions, tags, events)
    DIR/catalog.db-wal  (SQLite write-ahead log, while in use)
    DIR/blobs/         content-addressed blobs (``storage/localfs.py``), unless the catalog's
                       ``blobs`` setting (``init --blobs LOCATION``) names another place
    DIR/keys/          the signing and trusted keys (``keyring.py``)
    DIR/derived/       derived documents of the artifacts, by artifact digest
                       (``packages/doccache.py``): not authoritative, may be deleted

``Store.init(DIR)`` creates the layout (idempotent); ``Store.open(DIR)`` refuses a directory
that is not a store with a message telling how to make one, so a typo in ``--store`` never
silently creates an empty store, and refuses a catalog whose schema is older or newer than
this package-storage (``package-storage migrate``). A store named by a URL
(``postgresql://...``) is opened by ``locator.py``, into the same :class:`Store`.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from package_storage.errors import InvalidInputError, NotFoundError, StorageError
from package_storage.packages.doccache import DocCache
from package_storage.store.keyring import StoreKeyring
from package_storage.store.service import StoreService
from package_storage.store.storage.base import BlobStore
from package_storage.store.storage.blobs_location import open_blob_store, parse_blob_location
from package_storage.store.storage.keystore import CatalogKeyStore
from package_storage.store.storage.schema import SETTING_BLOBS
from package_storage.store.storage.sqlite import SQLCatalog, SQLiteCatalog

STORE_ENV = "PACKAGE_STORAGE_STORE"
ACTOR_ENV = "PACKAGE_STORAGE_ACTOR"
DEFAULT_STORE_DIR = "./data"

CATALOG_FILE = "catalog.db"
BLOBS_DIR = "blobs"
DERIVED_DIR = "derived"


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


@dataclass(frozen=True, slots=True)
class BlobOptions:
    """How a process opens a store's blobs: ``cache_dir``/``cache_size`` put a bounded local
    disk cache in front (``serve`` replicas over S3; see ``storage/blobs_location.py``)."""

    cache_dir: Path | None = None
    cache_size: int | None = None


def open_blob_location(
    location: str, *, create: bool = False, options: BlobOptions | None = None
) -> BlobStore:
    """The blob store at ``location`` (a folder or ``s3://BUCKET/PREFIX``); ``create`` makes
    the folder or bucket (``init``)."""
    opts = options or BlobOptions()
    try:
        return open_blob_store(
            location, create=create, cache_dir=opts.cache_dir, cache_size=opts.cache_size
        )
    except OSError as exc:
        raise StorageError(f"cannot open blob location {location}: {exc}") from exc


def normalize_blob_location(location: str) -> str:
    """``location`` as recorded in the catalog: a folder made absolute, ``s3://`` as parsed.
    ConfigError (one line) when it is no blob location."""
    parsed = parse_blob_location(location)
    if parsed.kind == "folder":
        assert parsed.path is not None
        return str(parsed.path.expanduser().absolute())
    return str(parsed)


class Store:
    """An open store: ``.catalog``, ``.blobs``, ``.keyring()`` and ``.service(actor)``.

    ``location`` names it as ``--store`` does (a directory, or a catalog URL with any password
    hidden); ``root`` is the store directory (None for a store named by a URL);
    ``blobs_location`` where its blobs are. Use as a context manager or call :meth:`close`.
    One ``Store`` per process (the catalog is thread-safe; several processes, on several hosts
    for a PostgreSQL catalog, may open the same store at once).
    """

    def __init__(
        self,
        root: Path | None,
        catalog: SQLCatalog,
        blobs: BlobStore,
        *,
        location: str | None = None,
        blobs_location: str | None = None,
    ) -> None:
        self.root = root
        self.catalog = catalog
        self.blobs = blobs
        self.location = location or str(root)
        default = str(root / BLOBS_DIR) if root is not None else None
        self.blobs_location = blobs_location or default or "?"
        self.blobs_default = self.blobs_location == default
        """True when the blobs are in the store directory's own ``blobs`` folder."""
        # Derived documents (issue 15): in the store directory; a store named by a URL has
        # none on disk (a server derives them in memory, once per process).
        self.derived = DocCache(root / DERIVED_DIR) if root is not None else None

    @staticmethod
    def is_store(path: str | Path) -> bool:
        return (Path(path) / CATALOG_FILE).is_file()

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        create: bool = False,
        blobs: str | None = None,
        upgrade: bool = False,
        blob_options: BlobOptions | None = None,
    ) -> Store:
        """Open the store at ``path``; with ``create`` make it first when absent (its blobs
        at ``blobs`` when given, else ``DIR/blobs``); with ``upgrade`` migrate an older schema;
        ``blob_options`` (a disk cache) for opening its blobs.

        NotFoundError when ``path`` holds no store (and ``create`` is False);
        SchemaVersionError when its schema is not this package-storage's (and not upgraded);
        InvalidInputError when ``blobs`` differs from where an existing store keeps them;
        StorageError when it cannot be created or opened.
        """
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise StorageError(f"store {root} is not a directory")
        if not cls.is_store(root):
            if not create:
                raise NotFoundError(
                    f"no package store at {root}: run `package-storage init --store {root}`"
                )
            if blobs is not None:  # a bad or unreachable --blobs fails before anything is made
                open_blob_location(
                    normalize_blob_location(blobs), create=True, options=blob_options
                )
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create store {root}: {exc}") from exc
        catalog = SQLiteCatalog(
            root / CATALOG_FILE, create=create, upgrade=upgrade, location=str(root)
        )
        try:
            default = str(root / BLOBS_DIR)
            location = record_blob_location(catalog, blobs, default)
            # The store directory's own folder is made whenever missing, as always; a folder
            # or bucket elsewhere only by init.
            make = catalog.created or location == default
            return cls(
                root,
                catalog,
                open_blob_location(location, create=make, options=blob_options),
                location=str(root),
                blobs_location=location,
            )
        except BaseException:
            catalog.close()
            raise

    @classmethod
    def init(cls, path: str | Path, *, blobs: str | None = None) -> Store:
        """Create the store at ``path`` (idempotent: an existing store is opened unchanged)."""
        return cls.open(path, create=True, blobs=blobs)

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
            derived=self.derived,
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
        return f"Store({self.location!r})"


def record_blob_location(catalog: SQLCatalog, wanted: str | None, default: str | None) -> str:
    """Where the store's blobs are: the catalog's ``blobs`` setting, else ``default``.

    ``wanted`` (``init --blobs``) is recorded when the store has no setting yet (a store just
    created, or one that used ``default``); an existing different setting is refused (moving
    blobs is ``copy-store``'s work). InvalidInputError when there is neither a setting nor a
    default (a catalog without a directory must be told where its blobs are).
    """
    recorded = catalog.settings().get(SETTING_BLOBS)
    if wanted is None:
        if recorded is not None:
            return recorded
        if default is None:
            raise InvalidInputError(
                f"store {catalog.location} records no blob location: run `package-storage"
                f" init --store {catalog.location} --blobs LOCATION`"
            )
        return default
    location = normalize_blob_location(wanted)
    if recorded is not None and recorded != location:
        raise InvalidInputError(
            f"store {catalog.location} keeps its blobs at {recorded}, not {location}:"
            " copy a store to new blobs with `package-storage copy-store`"
        )
    if recorded is None and default is not None and not (catalog.created or location == default):
        raise InvalidInputError(
            f"store {catalog.location} exists with its blobs at {default}: --blobs applies"
            " to a new store only"
        )
    if recorded is None and location != default:
        with catalog.transaction() as tx:
            tx.set_setting(SETTING_BLOBS, location)
    return location


__all__ = [
    "ACTOR_ENV",
    "DEFAULT_STORE_DIR",
    "STORE_ENV",
    "Store",
    "default_actor",
    "default_store_dir",
    "normalize_blob_location",
    "open_blob_location",
    "record_blob_location",
]
