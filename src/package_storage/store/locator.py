"""One name for a store: ``--store DIR`` (the embedded default, ``directory.py``) or
``--store postgresql://USER@HOST:PORT/DB`` (a PostgreSQL catalog whose ``blobs`` setting says
where its blobs are: a folder, or ``s3://BUCKET/PREFIX``).

:func:`open_store` opens either into a :class:`~package_storage.store.directory.Store`;
:func:`init_store` creates one (``package-storage init``; a PostgreSQL store needs ``blobs``);
:func:`migrate_store` upgrades its schema (``package-storage migrate``). Every other opening
refuses a store whose schema is older or newer than this package-storage, with one line that
names the command to run.

PostgreSQL (``storage/postgres.py``: psycopg and SQLAlchemy's PostgreSQL dialect) is imported
only for a location that has a ``://``: opening a directory never pays for it (issue 15).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from package_storage.errors import InvalidInputError, NotFoundError
from package_storage.store.directory import (
    CATALOG_FILE,
    BlobOptions,
    Store,
    normalize_blob_location,
    open_blob_location,
    record_blob_location,
)
from package_storage.store.storage import migrations
from package_storage.store.storage.sqlite import SQLCatalog, SQLiteCatalog


def is_store_url(location: str | Path) -> bool:
    """True when ``location`` names a store by URL (a PostgreSQL catalog), not a directory."""
    if not isinstance(location, str) or "://" not in location:
        return False  # (no import of the PostgreSQL catalog for a directory)
    from package_storage.store.storage.postgres import is_postgres_url

    return is_postgres_url(location)


def display(location: str | Path) -> str:
    """``location`` for messages: a directory as given, a URL without its password."""
    if not is_store_url(location):
        return str(location)
    from package_storage.store.storage.postgres import display_url

    return display_url(str(location))


def _check(location: str | Path) -> None:
    if not is_store_url(location) and "://" in str(location):
        raise InvalidInputError(
            f"store {location}: a store is a directory or postgresql://USER@HOST:PORT/DB"
        )


def open_catalog(location: str | Path, *, upgrade: bool = False) -> SQLCatalog:
    """The catalog alone of the existing store at ``location`` (no blobs opened)."""
    _check(location)
    if is_store_url(location):
        from package_storage.store.storage.postgres import PostgresCatalog, display_url

        return PostgresCatalog(
            str(location), create=False, upgrade=upgrade, location=display_url(str(location))
        )
    root = Path(location)
    if not Store.is_store(root):
        raise NotFoundError(
            f"no package store at {root}: run `package-storage init --store {root}`"
        )
    return SQLiteCatalog(root / CATALOG_FILE, create=False, upgrade=upgrade, location=str(root))


def _open_url(
    url: str,
    *,
    create: bool,
    blobs: str | None,
    upgrade: bool,
    blob_options: BlobOptions | None,
) -> Store:
    from package_storage.store.storage.postgres import PostgresCatalog, display_url

    shown = display_url(url)
    if create and blobs is not None:
        # A bad or unreachable --blobs fails before the catalog is created.
        open_blob_location(normalize_blob_location(blobs), create=True, options=blob_options)
    try:
        catalog = PostgresCatalog(
            url, create=create and blobs is not None, upgrade=upgrade, location=shown
        )
    except NotFoundError:
        if create:
            raise InvalidInputError(
                f"a new store at {shown} needs --blobs LOCATION (a folder, or"
                " s3://BUCKET/PREFIX): where its artifacts are kept"
            ) from None
        raise
    try:
        location = record_blob_location(catalog, blobs, None)
        return Store(
            None,
            catalog,
            open_blob_location(location, create=catalog.created, options=blob_options),
            location=shown,
            blobs_location=location,
        )
    except BaseException:
        catalog.close()
        raise


def open_store(
    location: str | Path,
    *,
    create: bool = False,
    blobs: str | None = None,
    upgrade: bool = False,
    blob_options: BlobOptions | None = None,
) -> Store:
    """Open the store named by ``location`` (a directory or a ``postgresql://`` URL).

    ``create`` makes it when absent (``blobs``: where its blobs go; required for a new
    PostgreSQL store, default ``DIR/blobs`` for a directory); ``upgrade`` migrates an older
    schema; ``blob_options`` (a local disk cache in front of the blobs, for replicas). Errors
    as :meth:`Store.open`.
    """
    _check(location)
    if is_store_url(location):
        return _open_url(
            str(location),
            create=create,
            blobs=blobs,
            upgrade=upgrade,
            blob_options=blob_options,
        )
    return Store.open(
        Path(location), create=create, blobs=blobs, upgrade=upgrade, blob_options=blob_options
    )


@dataclass(frozen=True, slots=True)
class InitResult:
    """What ``init`` did: ``created`` a new store (else it existed)."""

    store: Store
    created: bool


def init_store(location: str | Path, *, blobs: str | None = None) -> InitResult:
    """Create the store at ``location`` (idempotent: an existing store is opened unchanged,
    and a ``blobs`` that differs from its setting is refused)."""
    store = open_store(location, create=True, blobs=blobs)
    return InitResult(store, store.catalog.created)


@dataclass(frozen=True, slots=True)
class MigrateResult:
    """What ``migrate`` did: the revisions applied (oldest first; empty: already current)
    and the revision the schema is at now."""

    applied: tuple[str, ...]
    head: str


def migrate_store(location: str | Path) -> MigrateResult:
    """Upgrade the schema of the existing store at ``location`` to this package-storage's.
    A newer schema is refused (SchemaVersionError); a missing store is NotFoundError."""
    catalog = open_catalog(location, upgrade=True)
    try:
        return MigrateResult(tuple(catalog.migrated), migrations.head())
    finally:
        catalog.close()


__all__ = [
    "InitResult",
    "MigrateResult",
    "display",
    "init_store",
    "is_store_url",
    "migrate_store",
    "open_catalog",
    "open_store",
]
