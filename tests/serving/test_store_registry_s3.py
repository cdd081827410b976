"""Serving a store whose blobs are in S3 (real SeaweedFS): through the replica cache, without it,
with redirects to pre-signed URLs, and with S3 stopped while serving (cached artifacts still
served, others 503 with a clear body, publishes refused with nothing recorded).

The store is a SQLite catalog with an S3 blob store (``Store(root, catalog, S3BlobStore)``);
the read app runs in-process (httpx ASGI transport).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_service import make_package

from package_storage.errors import UnavailableError
from package_storage.registry.http.app import AppOptions, create_app
from package_storage.registry.http.errors import STORAGE_UNAVAILABLE
from package_storage.serving.store_registry import StoreRegistry
from package_storage.store.directory import Store
from package_storage.store.storage.blobcache import BlobCache
from package_storage.store.storage.s3 import S3BlobStore
from package_storage.store.storage.sqlite import SQLiteCatalog
from s3_server import BUCKET, S3Server, S3Unavailable

OPTIONS = AppOptions(
    cache_time_index=1.0, cache_time_search=1.0, cache_time_categories=1.0, cache_time_catch_all=1.0
)
ZIP = "/snapshot/epr/hello_nginx/hello_nginx-{v}.zip"


def s3_store(server: S3Server, prefix: str | None = None, **kwargs: object) -> S3BlobStore:
    env = server.env()
    return S3BlobStore(
        BUCKET,
        prefix or server.new_prefix("serving"),
        endpoint_url=env["AWS_ENDPOINT_URL"],
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        **kwargs,  # type: ignore[arg-type]
    )


def open_store(tmp_path: Path, blobs: S3BlobStore) -> Store:
    root = tmp_path / "store"
    root.mkdir(exist_ok=True)
    return Store(root, SQLiteCatalog(root / "catalog.db"), blobs)  # type: ignore[arg-type]


def publish(store: Store, tmp_path: Path, *versions: str) -> dict[str, bytes]:
    """Publish hello_nginx ``versions`` to snapshot; their zip bytes as stored."""
    svc = store.service("tester")
    out: dict[str, bytes] = {}
    for version in versions:
        folder = make_package(tmp_path / "packages", version)
        svc.publish(folder)
        entry = store.catalog.get_entry("snapshot", "hello_nginx", version)
        assert entry is not None
        out[version] = store.blobs.get(entry.artifact)
    return out


def get(app: object, path: str) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(run())


def test_served_through_the_cache(s3_server: S3Server, tmp_path: Path) -> None:
    blobs = s3_store(s3_server)
    store = open_store(tmp_path, blobs)
    zips = publish(store, tmp_path, "1.0.0", "1.1.0")
    cache = BlobCache(blobs, tmp_path / "cache", 64 << 20)
    registry = StoreRegistry(store.catalog, cache, notify=False)
    app = create_app(registry, OPTIONS)
    for version, data in zips.items():
        answer = get(app, ZIP.format(v=version))
        assert answer.status_code == 200
        assert answer.content == data
        assert answer.headers["content-type"] == "application/zip"
    assert sorted(cache.cached()) == sorted(hashlib.sha256(d).hexdigest() for d in zips.values())
    # A static file read from the zip (the index parsed it from the cached copy).
    readme = get(app, "/snapshot/package/hello_nginx/1.0.0/docs/README.md")
    assert readme.status_code == 200 and b"nginx" in readme.content.lower()
    registry.stop()
    store.close()


def test_evicted_zip_still_serves_its_static_files(s3_server: S3Server, tmp_path: Path) -> None:
    """A cache smaller than the store: the index keeps working after its zips were evicted
    (the zip is downloaded again when a file inside it is asked for)."""
    blobs = s3_store(s3_server)
    store = open_store(tmp_path, blobs)
    zips = publish(store, tmp_path, "1.0.0", "1.1.0")
    smallest = min(len(d) for d in zips.values())
    cache = BlobCache(blobs, tmp_path / "cache", smallest + 10)  # room for one zip
    registry = StoreRegistry(store.catalog, cache, notify=False)
    app = create_app(registry, OPTIONS)
    for version in zips:
        answer = get(app, f"/snapshot/package/hello_nginx/{version}/manifest.yml")
        assert answer.status_code == 200, answer.text
        assert f"version: {version}".encode() in answer.content
        zipped = get(app, ZIP.format(v=version))
        assert zipped.status_code == 200 and zipped.content == zips[version]
    assert cache.cached_bytes <= cache.max_bytes
    registry.stop()
    store.close()


def test_served_from_s3_without_a_cache(s3_server: S3Server, tmp_path: Path) -> None:
    blobs = s3_store(s3_server)
    store = open_store(tmp_path, blobs)
    zips = publish(store, tmp_path, "1.0.0")
    registry = StoreRegistry(store.catalog, blobs, notify=False)
    app = create_app(registry, OPTIONS)
    answer = get(app, ZIP.format(v="1.0.0"))
    assert answer.status_code == 200 and answer.content == zips["1.0.0"]
    registry.stop()
    store.close()


def test_artifact_redirect_to_a_presigned_url(s3_server: S3Server, tmp_path: Path) -> None:
    blobs = s3_store(s3_server)
    store = open_store(tmp_path, blobs)
    zips = publish(store, tmp_path, "1.0.0")
    registry = StoreRegistry(
        store.catalog, blobs, notify=False, artifact_url=lambda d: blobs.presigned_url(d, 60)
    )
    app = create_app(registry, OPTIONS)
    answer = get(app, ZIP.format(v="1.0.0"))
    assert answer.status_code == 302
    assert "no-store" in answer.headers["cache-control"]
    location = answer.headers["location"]
    assert location.startswith(f"{s3_server.endpoint}/{BUCKET}/{blobs.prefix}/")
    followed = httpx.get(location)  # what Kibana does
    assert followed.status_code == 200 and followed.content == zips["1.0.0"]
    assert get(app, "/snapshot/epr/hello_nginx/hello_nginx-9.9.9.zip").status_code == 404
    registry.stop()
    store.close()


# --- S3 stopped while serving --------------------------------------------------------------


@pytest.fixture
def own_s3() -> Iterator[S3Server]:
    """A server of this test alone (it is stopped in the middle)."""
    server = S3Server()
    try:
        server.start()
    except S3Unavailable as exc:
        pytest.skip(f"S3 fault test skipped: SeaweedFS cannot start: {exc}")
    try:
        yield server
    finally:
        server.stop()


def test_s3_stopped_while_serving(own_s3: S3Server, tmp_path: Path) -> None:
    blobs = s3_store(own_s3, "faults", max_attempts=1, connect_timeout=1)
    store = open_store(tmp_path, blobs)
    zips = publish(store, tmp_path, "1.0.0", "1.1.0")
    cached_version, other_version = "1.0.0", "1.1.0"
    other_digest = hashlib.sha256(zips[other_version]).hexdigest()
    cache = BlobCache(blobs, tmp_path / "cache", 64 << 20)
    registry = StoreRegistry(store.catalog, cache, notify=False)
    app = create_app(registry, OPTIONS)
    assert get(app, ZIP.format(v=cached_version)).status_code == 200
    # The index build read both zips through the cache; forget the other one, as if it had
    # been evicted, so that it must come from S3.
    cache.evict(other_digest)
    counter = store.catalog.change_counter()
    artifacts = store.catalog.referenced_blobs()

    own_s3.kill()

    answer = get(app, ZIP.format(v=cached_version))
    assert answer.status_code == 200 and answer.content == zips[cached_version]
    down = get(app, ZIP.format(v=other_version))
    assert down.status_code == 503
    assert down.text.strip() == STORAGE_UNAVAILABLE
    assert "no-store" in down.headers["cache-control"]
    # Everything that needs no blob keeps working.
    assert get(app, "/snapshot/search").status_code == 200
    assert get(app, f"/snapshot/package/hello_nginx/{cached_version}/").status_code == 200

    # A publish is refused with one line naming the blob store, and nothing is recorded.
    folder = make_package(tmp_path / "packages", "2.0.0")
    with pytest.raises(UnavailableError) as refused:
        store.service("tester").publish(folder)
    message = str(refused.value)
    assert "\n" not in message
    assert "blob store s3://" in message and "cannot" in message
    assert store.catalog.change_counter() == counter
    assert store.catalog.get_entry("snapshot", "hello_nginx", "2.0.0") is None
    assert store.catalog.referenced_blobs() == artifacts
    registry.stop()
    store.close()
