"""Backend fixtures for the storage contract suite.

Every test in ``tests/contract/`` is written once against the protocols of
``package_storage.store.storage.base`` and runs against every backend listed here. A backend is a
function ``(tmp_path) -> factory``; the factory is a *picklable* zero-argument callable that
opens the same (fresh, per test) store, so tests can open it again after a "crash" and in
other processes (multiprocessing spawn).

To add a backend: add an entry to ``CATALOG_BACKENDS`` / ``BLOB_BACKENDS`` whose function
creates an empty database / bucket for the test (``pytest.skip`` when the server is not
available) and returns e.g. ``functools.partial(PostgresCatalog, url)``. Catalog backends also
get the test's ``request`` to register the clean-up (``postgresql`` drops its database).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from package_storage.store.storage.base import BlobStore, Catalog
from package_storage.store.storage.blobs_location import open_blob_store
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.store.storage.postgres import PostgresCatalog
from package_storage.store.storage.s3 import S3BlobStore
from package_storage.store.storage.sqlite import SQLiteCatalog
from pg_server import create_database, drop_database, require_server
from s3_server import BUCKET, S3Unavailable, shared_server

CatalogFactory = Callable[[], Catalog]
BlobStoreFactory = Callable[[], BlobStore]


def _sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> CatalogFactory:
    del request
    return functools.partial(SQLiteCatalog, tmp_path / "store" / "catalog.db")


def _postgresql(tmp_path: Path, request: pytest.FixtureRequest) -> CatalogFactory:
    """A database of its own on the local PostgreSQL server, dropped after the test."""
    del tmp_path
    require_server()
    url = create_database("ps_contract")
    request.addfinalizer(lambda: drop_database(url))
    return functools.partial(PostgresCatalog, url)


def _localfs(tmp_path: Path) -> BlobStoreFactory:
    return functools.partial(LocalBlobStore, tmp_path / "store" / "blobs")


def _s3(tmp_path: Path) -> BlobStoreFactory:
    """A fresh prefix of the session's SeaweedFS bucket (tests/s3_server.py)."""
    try:
        server = shared_server()
    except S3Unavailable as exc:
        pytest.skip(f"S3 backend skipped: SeaweedFS cannot start: {exc}")
    env = server.env()
    return functools.partial(
        S3BlobStore,
        BUCKET,
        server.new_prefix("contract"),
        endpoint_url=env["AWS_ENDPOINT_URL"],
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        region=env["AWS_REGION"],
    )


def _s3_cached(tmp_path: Path) -> BlobStoreFactory:
    """S3 behind the replicas' local disk cache (store/storage/blobcache.py)."""
    try:
        server = shared_server()
    except S3Unavailable as exc:
        pytest.skip(f"S3 backend skipped: SeaweedFS cannot start: {exc}")
    return functools.partial(
        open_blob_store,
        server.location(server.new_prefix("cached")),
        cache_dir=tmp_path / "cache",
        cache_size=64 << 20,
        environ=server.env(),
    )


CATALOG_BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], CatalogFactory]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}
BLOB_BACKENDS: dict[str, Callable[[Path], BlobStoreFactory]] = {
    "localfs": _localfs,
    "s3": _s3,
    "s3-cached": _s3_cached,
}


@pytest.fixture(params=sorted(CATALOG_BACKENDS))
def catalog_factory(request: pytest.FixtureRequest, tmp_path: Path) -> CatalogFactory:
    return CATALOG_BACKENDS[request.param](tmp_path, request)


@pytest.fixture
def catalog(catalog_factory: CatalogFactory) -> Iterator[Catalog]:
    cat = catalog_factory()
    try:
        yield cat
    finally:
        cat.close()


@pytest.fixture(params=sorted(BLOB_BACKENDS))
def blob_factory(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStoreFactory:
    return BLOB_BACKENDS[request.param](tmp_path)


@pytest.fixture
def blobs(blob_factory: BlobStoreFactory) -> BlobStore:
    return blob_factory()
