"""StoreRegistry: serving a store's distributions, tags and revisions, swaps and reuse.

The store is built with the catalog and the blob store directly (no service): zips of the
example packages go into the blob store, entries and revisions into the catalog.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from package_storage.packages.artifacts import build_zip
from package_storage.packages.trees import FolderTree
from package_storage.registry.http.app import AppOptions, ASGIApp, create_app
from package_storage.serving.store_registry import StoreRegistry, parse_prefix
from package_storage.store.storage.base import ArtifactRecord, BlobStore
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.store.storage.sqlite import SQLiteCatalog

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "packages"
OPTIONS = AppOptions(
    cache_time_index=1.0, cache_time_search=1.0, cache_time_categories=1.0, cache_time_catch_all=1.0
)


# --- helpers --------------------------------------------------------------------------------


def example_zip(tmp: Path, name: str, version: str, *, title: str | None = None) -> bytes:
    """The deterministic zip of an example package, optionally with another title."""
    src = EXAMPLES / name / version
    if title is not None:
        copy = tmp / "trees" / f"{name}-{version}-{title.replace(' ', '_')}"
        shutil.copytree(src, copy)
        manifest = copy / "manifest.yml"
        lines = manifest.read_text().splitlines()
        manifest.write_text(
            "\n".join(f"title: {title}" if ln.startswith("title:") else ln for ln in lines) + "\n"
        )
        src = copy
    return build_zip(FolderTree(src), name, version)


@dataclass
class Store:
    root: Path
    catalog: SQLiteCatalog
    blobs: LocalBlobStore

    def publish(
        self,
        stage: str,
        name: str,
        version: str,
        data: bytes,
        *,
        signature: bytes | None = None,
        catalog: SQLiteCatalog | None = None,
    ) -> str:
        digest = self.blobs.put(data)
        sig = self.blobs.put(signature) if signature is not None else None
        with (catalog or self.catalog).transaction() as tx:
            tx.add_artifact(ArtifactRecord(digest, len(data), name, version, signature_digest=sig))
            tx.put_entry(stage, name, version, digest, actor="test")
            for distribution in tx.stages().affected_distributions(stage):
                tx.new_revision(distribution)
        return digest

    def tag(self, distribution: str, tag: str) -> int:
        with self.catalog.transaction() as tx:
            current = tx.current_revision(distribution)
            assert current is not None
            tx.add_tag(distribution, tag, current.number, actor="test")
            return current.number


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    catalog = SQLiteCatalog(tmp_path / "store" / "catalog.db")
    s = Store(tmp_path, catalog, LocalBlobStore(tmp_path / "store" / "blobs", fsync=False))
    yield s
    catalog.close()


async def _get(app: ASGIApp, target: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(target)


def get(app: ASGIApp, target: str) -> httpx.Response:
    return asyncio.run(_get(app, target))


def versions(app: ASGIApp, prefix: str, name: str = "hello_nginx") -> list[str]:
    r = get(app, f"{prefix}/search?package={name}&all=true&prerelease=true")
    assert r.status_code == 200, (prefix, r.status_code, r.text)
    return sorted(entry["version"] for entry in r.json())


def titles(app: ASGIApp, prefix: str) -> dict[str, str]:
    r = get(app, f"{prefix}/search?all=true&prerelease=true")
    assert r.status_code == 200
    return {f"{e['name']}-{e['version']}": e["title"] for e in r.json()}


# --- tests ----------------------------------------------------------------------------------


def test_parse_prefix() -> None:
    assert parse_prefix("production") == ("production", None)
    assert parse_prefix("production@8.12.0") == ("production", "8.12.0")
    assert parse_prefix("production@7") == ("production", "7")
    for bad in ("@x", "production@", "a@b@c"):
        with pytest.raises(ValueError):
            parse_prefix(bad)


def test_an_empty_store_serves_empty_distributions(store: Store, tmp_path: Path) -> None:
    """A fresh store (and a stage nothing reached yet) answers /search and /categories with
    200 and the reference's empty bodies, un-prefixed and prefixed; unknown names stay 404."""
    registry = StoreRegistry(store.catalog, store.blobs)
    app = create_app(registry, OPTIONS)
    for prefix in ("", "/production", "/staging", "/snapshot"):
        search = get(app, f"{prefix}/search")
        assert (search.status_code, search.content) == (200, b"[]"), prefix
        categories = get(app, f"{prefix}/categories")
        assert (categories.status_code, categories.content) == (200, b"[]\n"), prefix
        assert get(app, f"{prefix}/package/hello_nginx/1.1.0/").status_code == 404
    assert get(app, "/nope/search").status_code == 404
    assert get(app, "/production@7/search").status_code == 404
    assert get(app, "/health").status_code == 200
    # snapshot gets a revision; production (nothing promoted there yet) stays served empty
    store.publish("snapshot", "hello_nginx", "1.1.0", example_zip(tmp_path, "hello_nginx", "1.1.0"))
    registry.refresh()
    assert versions(app, "/snapshot") == ["1.1.0"]
    assert get(app, "/production/search").content == b"[]"
    assert get(app, "/search").content == b"[]"


def test_distributions_see_their_stages_and_the_more_stable_copy_wins(
    store: Store, tmp_path: Path
) -> None:
    prod = example_zip(tmp_path, "hello_nginx", "1.0.0", title="Prod copy")
    snap = example_zip(tmp_path, "hello_nginx", "1.0.0", title="Snapshot copy")
    assert prod != snap
    store.publish("snapshot", "hello_nginx", "1.0.0", snap)
    store.publish("production", "hello_nginx", "1.0.0", prod)
    store.publish("snapshot", "hello_nginx", "1.1.0", example_zip(tmp_path, "hello_nginx", "1.1.0"))
    store.publish("staging", "acme_input", "1.0.0", example_zip(tmp_path, "acme_input", "1.0.0"))
    registry = StoreRegistry(store.catalog, store.blobs)
    app = create_app(registry, OPTIONS)

    assert titles(app, "/production") == {"hello_nginx-1.0.0": "Prod copy"}
    assert titles(app, "") == titles(app, "/production")
    assert titles(app, "/staging") == {
        "hello_nginx-1.0.0": "Prod copy",
        "acme_input-1.0.0": "ACME TCP Input",
    }
    snapshot = titles(app, "/snapshot")
    assert snapshot["hello_nginx-1.0.0"] == "Prod copy"
    assert set(snapshot) == {"hello_nginx-1.0.0", "hello_nginx-1.1.0", "acme_input-1.0.0"}
    # The served zip is the production copy's bytes, in every distribution that sees it.
    for prefix in ("", "/production", "/staging", "/snapshot"):
        r = get(app, f"{prefix}/epr/hello_nginx/hello_nginx-1.0.0.zip")
        assert r.status_code == 200
        assert r.content == prod
        assert r.headers["content-type"] == "application/zip"
    doc = get(app, "/snapshot/package/hello_nginx/1.0.0/").json()
    assert doc["title"] == "Prod copy"
    r = get(app, "/snapshot/package/hello_nginx/1.0.0/manifest.yml")
    assert r.status_code == 200 and b"title: Prod copy" in r.content
    assert get(app, "/production/package/hello_nginx/1.1.0/").status_code == 404
    assert get(app, "/nothing/search").text == "404 page not found\n"


def test_tag_and_revision_prefixes(store: Store, tmp_path: Path) -> None:
    store.publish(
        "production", "hello_nginx", "1.0.0", example_zip(tmp_path, "hello_nginx", "1.0.0")
    )
    first = store.tag("production", "8.12.0")
    store.publish(
        "production", "hello_nginx", "1.1.0", example_zip(tmp_path, "hello_nginx", "1.1.0")
    )
    registry = StoreRegistry(store.catalog, store.blobs)
    app = create_app(registry, OPTIONS)
    assert versions(app, "/production") == ["1.0.0", "1.1.0"]
    assert versions(app, "/production@8.12.0") == ["1.0.0"]
    assert versions(app, f"/production@{first}") == ["1.0.0"]
    assert versions(app, f"/production@{first + 1}") == ["1.0.0", "1.1.0"]
    # The snapshot distribution has its own revision numbers (the cascade made them).
    assert versions(app, "/snapshot@1") == ["1.0.0"]
    for missing in ("/production@99", "/production@nope", "/nope@1", "/production@", "/@1"):
        r = get(app, f"{missing}/search")
        assert (r.status_code, r.text) == (404, "404 page not found\n"), missing
    # Strict-slash redirects keep the prefix.
    r = get(app, "/production@8.12.0/search/")
    assert (r.status_code, r.headers["location"]) == (301, "/production@8.12.0/search")
    r = get(app, "/production@8.12.0/package/hello_nginx/1.0.0")
    assert r.headers["location"] == "/production@8.12.0/package/hello_nginx/1.0.0/"
    # Revision indexes are built once and kept.
    a = registry.resolve("production@8.12.0")
    assert a is not None and a is registry.resolve(f"production@{first}")
    # A tag made after a miss is found (misses are forgotten on every change).
    assert registry.resolve("production@9.0.0") is None
    store.tag("production", "9.0.0")
    registry.refresh()
    assert versions(app, "/production@9.0.0") == ["1.0.0", "1.1.0"]


def test_default_distribution_is_configurable(store: Store, tmp_path: Path) -> None:
    store.publish("snapshot", "hello_nginx", "1.1.0", example_zip(tmp_path, "hello_nginx", "1.1.0"))
    store.publish(
        "production", "hello_nginx", "1.0.0", example_zip(tmp_path, "hello_nginx", "1.0.0")
    )
    app = create_app(
        StoreRegistry(store.catalog, store.blobs, default_distribution="snapshot"), OPTIONS
    )
    assert versions(app, "") == ["1.0.0", "1.1.0"]
    assert versions(app, "/production") == ["1.0.0"]


def test_swap_keeps_the_old_index_answering_and_reuses_parsed_packages(
    store: Store, tmp_path: Path
) -> None:
    store.publish(
        "production", "hello_nginx", "1.0.0", example_zip(tmp_path, "hello_nginx", "1.0.0")
    )
    store.publish("production", "acme_input", "1.0.0", example_zip(tmp_path, "acme_input", "1.0.0"))
    registry = StoreRegistry(store.catalog, store.blobs)
    old = registry.resolve("production")
    assert old is not None
    old_body = old.search_body("")
    old_built = registry.current["production"]

    assert registry.refresh() is False  # nothing changed
    store.publish(
        "production", "hello_nginx", "1.1.0", example_zip(tmp_path, "hello_nginx", "1.1.0")
    )
    assert registry.resolve("production") is old  # not seen before a poll
    assert registry.refresh() is True
    new = registry.resolve("production")
    assert new is not None and new is not old
    built = registry.current["production"]
    assert built.revision.number == old_built.revision.number + 1
    assert built.parsed == 1  # only the new artifact was read
    for key in (("hello_nginx", "1.0.0"), ("acme_input", "1.0.0")):
        assert new.lookup(*key) is old.lookup(*key)  # the same parsed Package objects
    # The old index still answers as before (requests in flight keep it).
    assert old.search_body("") == old_body
    assert [e["version"] for e in json.loads(new.search_body("package=hello_nginx"))] == ["1.1.0"]
    # The previous index's recent queries were rendered before the swap.
    assert ("search", "", True) in new.cache.key_list()
    # The other distributions moved too (the cascade) and share the same packages.
    snap = registry.resolve("snapshot")
    assert snap is not None and snap.lookup("hello_nginx", "1.0.0") is new.lookup(
        "hello_nginx", "1.0.0"
    )


def test_rollback_is_served(store: Store, tmp_path: Path) -> None:
    store.publish(
        "production", "hello_nginx", "1.0.0", example_zip(tmp_path, "hello_nginx", "1.0.0")
    )
    store.publish(
        "production", "hello_nginx", "1.1.0", example_zip(tmp_path, "hello_nginx", "1.1.0")
    )
    registry = StoreRegistry(store.catalog, store.blobs)
    app = create_app(registry, OPTIONS)
    assert versions(app, "") == ["1.0.0", "1.1.0"]
    with store.catalog.transaction() as tx:
        current = tx.current_revision("production")
        assert current is not None
        tx.set_current("production", current.number - 1)
    registry.refresh()
    assert versions(app, "") == ["1.0.0"]
    assert registry.current["production"].parsed == 0


def test_signatures_are_blobs(store: Store, tmp_path: Path) -> None:
    sig = b"-----BEGIN PGP SIGNATURE-----\n\nx\n-----END PGP SIGNATURE-----\n"
    signed = example_zip(tmp_path, "hello_nginx", "1.0.0")
    store.publish("production", "hello_nginx", "1.0.0", signed, signature=sig)
    store.publish("production", "acme_input", "1.0.0", example_zip(tmp_path, "acme_input", "1.0.0"))
    app = create_app(StoreRegistry(store.catalog, store.blobs), OPTIONS)
    entries = {e["name"]: e for e in get(app, "/search").json()}
    assert entries["hello_nginx"]["signature_path"] == (
        "/epr/hello_nginx/hello_nginx-1.0.0.zip.sig"
    )
    assert "signature_path" not in entries["acme_input"]
    doc = get(app, "/package/hello_nginx/1.0.0/").json()
    assert doc["signature_path"] == "/epr/hello_nginx/hello_nginx-1.0.0.zip.sig"
    r = get(app, "/epr/hello_nginx/hello_nginx-1.0.0.zip.sig")
    assert (r.status_code, r.content) == (200, sig)
    r = get(app, "/production/epr/acme_input/acme_input-1.0.0.zip.sig")
    assert (r.status_code, r.text) == (404, "signature file not found\n")


class RemoteBlobs:
    """A blob store without local files (like an object store): bytes only."""

    def __init__(self, inner: LocalBlobStore) -> None:
        self.inner = inner
        self.gets = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def path_for(self, digest: str) -> Path | None:
        return None

    def get(self, digest: str) -> bytes:
        self.gets += 1
        return self.inner.get(digest)


def test_blob_stores_without_local_files(store: Store, tmp_path: Path) -> None:
    data = example_zip(tmp_path, "hello_nginx", "1.0.0")
    store.publish("production", "hello_nginx", "1.0.0", data, signature=b"sig\n")
    remote = RemoteBlobs(store.blobs)
    blobs: BlobStore = remote  # type: ignore[assignment]
    app = create_app(StoreRegistry(store.catalog, blobs), OPTIONS)
    assert remote.gets == 1  # the zip, read once to parse it
    r = get(app, "/epr/hello_nginx/hello_nginx-1.0.0.zip")
    assert (r.status_code, r.content) == (200, data)
    assert "last-modified" not in r.headers
    assert get(app, "/epr/hello_nginx/hello_nginx-1.0.0.zip.sig").content == b"sig\n"
    r = get(app, "/package/hello_nginx/1.0.0/docs/README.md")
    assert r.status_code == 200 and r.content


def test_a_broken_revision_keeps_the_old_index(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.publish(
        "production", "hello_nginx", "1.0.0", example_zip(tmp_path, "hello_nginx", "1.0.0")
    )
    registry = StoreRegistry(store.catalog, store.blobs)
    old = registry.resolve("production")
    digest = store.publish(
        "production", "hello_nginx", "1.1.0", example_zip(tmp_path, "hello_nginx", "1.1.0")
    )
    path = store.blobs.path_for(digest)
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(b"not a zip")
    with caplog.at_level("ERROR"):
        assert registry.refresh() is False
        registry.refresh()  # retried, logged once
    assert registry.resolve("production") is old
    assert sum("cannot serve production" in r.getMessage() for r in caplog.records) == 1
    path.write_bytes(example_zip(tmp_path, "hello_nginx", "1.1.0"))
    assert registry.refresh() is True
    assert registry.resolve("production") is not old


def wait_for(check: Callable[[], bool], limit: float = 10.0) -> float:
    """Seconds until ``check()`` holds (fails after ``limit``: a hang guard, not a timing)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit, "change not seen"
        time.sleep(0.01)
    return time.monotonic() - start


def test_the_poll_thread_sees_changes_of_another_catalog(store: Store, tmp_path: Path) -> None:
    store.publish(
        "production", "hello_nginx", "1.0.0", example_zip(tmp_path, "hello_nginx", "1.0.0")
    )
    swaps: list[tuple[str, int]] = []
    registry = StoreRegistry(
        store.catalog,
        store.blobs,
        poll_interval=0.05,
        notify=False,
        on_swap=[lambda dist, built: swaps.append((dist, built.revision.number))],
    )
    other = SQLiteCatalog(store.catalog.path)  # another writer (as another process would)
    try:
        with registry:
            store.publish(
                "production",
                "hello_nginx",
                "1.1.0",
                example_zip(tmp_path, "hello_nginx", "1.1.0"),
                catalog=other,
            )

            def seen() -> bool:
                index = registry.resolve(None)
                return index is not None and index.lookup("hello_nginx", "1.1.0") is not None

            wait_for(seen)
        assert ("production", 2) in swaps
    finally:
        other.close()


def test_a_change_notification_wakes_the_watch_thread(store: Store, tmp_path: Path) -> None:
    """With a fallback poll of a minute, only the catalog's file-change event can make the
    thread see another writer's publish within the wait below."""
    store.publish(
        "production", "hello_nginx", "1.0.0", example_zip(tmp_path, "hello_nginx", "1.0.0")
    )
    registry = StoreRegistry(store.catalog, store.blobs, poll_interval=60)
    other = SQLiteCatalog(store.catalog.path)
    try:
        with registry:
            assert registry.notified
            for stage, name, version in (
                ("production", "hello_nginx", "1.1.0"),
                ("production", "acme_input", "1.0.0"),
            ):
                data = example_zip(tmp_path, name, version)
                store.publish(stage, name, version, data, catalog=other)

                def seen(name: str = name, version: str = version) -> bool:
                    index = registry.resolve(None)
                    return index is not None and index.lookup(name, version) is not None

                wait_for(seen)
        assert not registry.notified  # stopped with the thread
    finally:
        other.close()


def test_without_notifications_the_watch_thread_polls(store: Store, tmp_path: Path) -> None:
    store.publish(
        "production", "hello_nginx", "1.0.0", example_zip(tmp_path, "hello_nginx", "1.0.0")
    )
    registry = StoreRegistry(store.catalog, store.blobs, notify=False)
    other = SQLiteCatalog(store.catalog.path)
    try:
        with registry:
            assert not registry.notified
            assert registry.poll_interval == 0.1  # the short default without events
            store.publish(
                "production",
                "hello_nginx",
                "1.1.0",
                example_zip(tmp_path, "hello_nginx", "1.1.0"),
                catalog=other,
            )

            def seen() -> bool:
                index = registry.resolve(None)
                return index is not None and index.lookup("hello_nginx", "1.1.0") is not None

            wait_for(seen)
    finally:
        other.close()


def test_stop_ends_a_thread_waiting_for_a_long_poll(store: Store) -> None:
    for notify in (True, False):
        registry = StoreRegistry(store.catalog, store.blobs, poll_interval=3600, notify=notify)
        registry.start()
        thread = registry._thread
        assert thread is not None and thread.is_alive()
        registry.stop(timeout=30)
        assert not thread.is_alive()


def test_no_reader_sees_half_a_revision(store: Store, tmp_path: Path) -> None:
    """Readers resolving and searching while revisions are swapped always see a whole one:
    revision k serves exactly versions 1.0.0 .. 1.0.k-1 of the package."""
    base = example_zip(tmp_path, "hello_nginx", "1.0.0")
    store.publish("production", "hello_nginx", "1.0.0", base)
    registry = StoreRegistry(store.catalog, store.blobs)
    app = create_app(registry, OPTIONS)
    stop = threading.Event()
    seen: list[int] = []
    problems: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                index = registry.resolve("production")
                assert index is not None
                body = json.loads(index.search_body("package=hello_nginx&all=true"))
            except Exception as exc:
                problems.append(repr(exc))
                return
            got = sorted(int(e["version"].split(".")[2]) for e in body)
            if got != list(range(len(got))):
                problems.append(repr(got))
            seen.append(len(got))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        src = tmp_path / "v"
        for patch in range(1, 8):
            version = f"1.0.{patch}"
            tree = src / version
            shutil.copytree(EXAMPLES / "hello_nginx" / "1.0.0", tree)
            manifest = tree / "manifest.yml"
            manifest.write_text(
                manifest.read_text().replace("version: 1.0.0", f"version: {version}")
            )
            store.publish(
                "production",
                "hello_nginx",
                version,
                build_zip(FolderTree(tree), "hello_nginx", version),
            )
            registry.refresh()
    finally:
        stop.set()
        thread.join()
    assert not problems
    assert versions(app, "/production")[-1] == "1.0.7"
    assert registry.current["production"].parsed == 1


def test_a_signature_added_later_is_served_after_the_next_poll(tmp_path: Path) -> None:
    from package_storage.packages.signing import generate_key, sign_detached
    from package_storage.store.directory import Store as RealStore

    real = RealStore.init(tmp_path / "real")
    service = real.service("tester")
    zipped = tmp_path / "hello_nginx-1.0.0.zip"
    zipped.write_bytes(example_zip(tmp_path, "hello_nginx", "1.0.0"))
    service.publish(zipped)
    registry = StoreRegistry(real.catalog, real.blobs)
    app = create_app(registry, OPTIONS)
    entry = get(app, "/snapshot/search").json()[0]
    assert "signature_path" not in entry

    sig = sign_detached(generate_key("Late <late@example.com>"), zipped.read_bytes())
    zipped.with_name(zipped.name + ".sig").write_bytes(sig)
    assert service.publish(zipped).changed  # same bytes, signature added
    registry.refresh()
    entry = get(app, "/snapshot/search").json()[0]
    assert entry["signature_path"] == "/epr/hello_nginx/hello_nginx-1.0.0.zip.sig"
    r = get(app, "/snapshot/epr/hello_nginx/hello_nginx-1.0.0.zip.sig")
    assert (r.status_code, r.content) == (200, sig)
    real.close()


def test_every_route_head_is_a_reserved_stage_name() -> None:
    """A stage named like a route of the read API could never be served under its name: the
    stage graph refuses every such name."""
    from package_storage.registry.http.app import ROUTE_HEADS
    from package_storage.store.stages import RESERVED_STAGE_NAMES

    assert {h for h in ROUTE_HEADS if h} <= RESERVED_STAGE_NAMES


def test_a_frozen_stage_is_still_served(store: Store, tmp_path: Path) -> None:
    store.publish("snapshot", "hello_nginx", "1.1.0", example_zip(tmp_path, "hello_nginx", "1.1.0"))
    with store.catalog.transaction() as tx:
        graph = tx.stages().with_legacy_stage("experimental")
        tx.set_stages(graph)
    store.publish(
        "experimental", "hello_nginx", "1.0.0", example_zip(tmp_path, "hello_nginx", "1.0.0")
    )
    with store.catalog.transaction() as tx:
        tx.set_stages(tx.stages().with_frozen("experimental", True))
    app = create_app(StoreRegistry(store.catalog, store.blobs), OPTIONS)
    assert versions(app, "/experimental") == ["1.0.0"]


# --- derived documents and incremental switches ------------------------------------------------


TEMPLATES = ("hello_nginx/1.1.0", "acme_input/1.0.0", "demo_dashboards/1.0.0")


def made_zip(tmp: Path, template: str, name: str, version: str, *, extra: str = "") -> bytes:
    """The zip of an example package under another name and version; ``extra`` lines are
    added to its manifest (e.g. a deprecation notice, another title)."""
    src = EXAMPLES / template
    copy = tmp / "made" / f"{name}-{version}-{abs(hash(extra))}"
    if not copy.exists():
        shutil.copytree(src, copy)
        manifest = copy / "manifest.yml"
        lines = [
            f"name: {name}"
            if ln.startswith("name:")
            else f"version: {version}"
            if ln.startswith("version:")
            else ln
            for ln in manifest.read_text().splitlines()
            if not (extra and ln.startswith("title:") and "title:" in extra)
        ]
        manifest.write_text("\n".join(lines) + "\n" + extra)
    return build_zip(FolderTree(copy), name, version)


def answers(registry: StoreRegistry, distribution: str) -> dict[str, bytes]:
    """Every answer that depends on the index contents."""
    index = registry.resolve(distribution)
    assert index is not None
    out: dict[str, bytes] = {"count": str(index.package_count).encode()}
    for query in (
        "",
        "all=true&prerelease=true",
        "prerelease=true",
        "category=web",
        "kibana.version=8.12.0&all=true",
        "package=pkg_1&all=true&prerelease=true",
    ):
        out[f"search?{query}"] = bytes(index.search_body(query))
    for query in ("", "prerelease=true", "include_policy_templates=true"):
        out[f"categories?{query}"] = bytes(index.categories_body(query))
    for pkg in index.packages():
        found = index.lookup(pkg.name, str(pkg.version))
        assert found is not None
        out[f"doc {pkg.key}"] = bytes(index.document_body(found))
        zip_file = index.zip_file(found)
        out[f"zip {pkg.key}"] = str(zip_file).encode()
        out[f"sig {pkg.key}"] = str(index.signature_file(found)).encode()
    return out


def test_a_cold_start_reads_derived_documents_and_opens_no_zip(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from package_storage.packages.derived import LazyTree
    from package_storage.packages.doccache import DocCache
    from package_storage.packages.trees import ZipTree

    store.publish(
        "production", "hello_nginx", "1.1.0", example_zip(tmp_path, "hello_nginx", "1.1.0")
    )
    store.publish("staging", "acme_input", "1.0.0", example_zip(tmp_path, "acme_input", "1.0.0"))
    docs = DocCache(tmp_path / "derived")
    first = StoreRegistry(store.catalog, store.blobs, derived=docs)
    assert sum(b.parsed for b in first.current.values()) == 2
    assert docs.writes == 2
    plain = StoreRegistry(store.catalog, store.blobs)

    opened: list[str] = []
    real_open = ZipTree.open

    def counting_open(path: Path, **kwargs: Any) -> ZipTree:
        opened.append(str(path))
        return real_open(path, **kwargs)

    monkeypatch.setattr(ZipTree, "open", counting_open)
    second = StoreRegistry(store.catalog, store.blobs, derived=docs)
    assert all(b.parsed == 0 for b in second.current.values())
    assert opened == []
    for distribution in ("production", "staging", "snapshot"):
        assert answers(second, distribution) == answers(plain, distribution)
    index = second.resolve("staging")
    assert index is not None
    trees = [p.tree for p in index.packages()]
    assert trees and all(isinstance(t, LazyTree) and not t.is_open for t in trees)
    assert opened == []
    # A file of the package opens its zip, once.
    app = create_app(second, OPTIONS)
    r = get(app, "/staging/package/hello_nginx/1.1.0/manifest.yml")
    assert r.status_code == 200
    assert r.content == (EXAMPLES / "hello_nginx" / "1.1.0" / "manifest.yml").read_bytes()
    assert get(app, "/staging/package/hello_nginx/1.1.0/docs/README.md").status_code == 200
    assert len(opened) == 1


def test_an_unreadable_derived_document_is_derived_again(store: Store, tmp_path: Path) -> None:
    from package_storage.packages.doccache import DocCache

    digest = store.publish(
        "production", "hello_nginx", "1.1.0", example_zip(tmp_path, "hello_nginx", "1.1.0")
    )
    docs = DocCache(tmp_path / "derived")
    docs.put(digest, b"{not json")
    registry = StoreRegistry(store.catalog, store.blobs, derived=docs)
    assert registry.current["production"].parsed == 1
    assert answers(registry, "production") == answers(
        StoreRegistry(store.catalog, store.blobs), "production"
    )
    again = StoreRegistry(store.catalog, store.blobs, derived=docs)
    assert again.current["production"].parsed == 0


@pytest.mark.parametrize("derived", [False, True], ids=["parsed", "derived"])
@pytest.mark.parametrize("seed", range(3))
def test_an_incremental_switch_serves_what_a_full_build_serves(
    store: Store, tmp_path: Path, seed: int, derived: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random publishes (some signed), overwrites, removals, yanks and promotions (with
    deprecation notices and prerelease versions): after each refresh, every answer of the
    incrementally switched registry equals a registry built from scratch (``derived``: the
    switched one holds its documents as derived-document bytes, the fresh one as parsed from
    the zips)."""
    import random

    from package_storage.packages.doccache import DocCache
    from package_storage.registry import index as index_module

    docs = DocCache(tmp_path / "derived") if derived else None

    # Every /search body keeps its layout, so switches patch them (not only bodies of 64+).
    monkeypatch.setattr(index_module, "LAYOUT_MIN_ENTRIES", 1 if seed % 2 == 0 else 64)
    rng = random.Random(seed)
    stages = ("snapshot", "staging", "production")
    live: dict[tuple[str, str, str], str] = {}  # (stage, name, version) -> digest
    for i in range(6):  # a start
        name, version = f"pkg_{i % 3}", f"1.0.{i}"
        template = TEMPLATES[i % 3]
        digest = store.publish(
            "production", name, version, made_zip(tmp_path, template, name, version)
        )
        live[("production", name, version)] = digest
    registry = StoreRegistry(store.catalog, store.blobs, derived=docs)
    if derived:  # a second start: every document comes from its derived bytes
        registry = StoreRegistry(store.catalog, store.blobs, derived=docs)
        assert all(b.parsed == 0 for b in registry.current.values())
    incremental = 0
    for step in range(24):
        action = rng.choice(["publish", "publish", "overwrite", "remove", "yank", "promote"])
        stage = rng.choice(stages)
        if action in ("publish", "overwrite"):
            n = rng.randrange(4)
            name = f"pkg_{n}"
            version = rng.choice(["1.0.0", "1.0.1", "1.1.0", "2.0.0-rc1", f"1.2.{step}"])
            extra = ""
            if rng.random() < 0.3:
                extra = (
                    "deprecated:\n  since: 1.0.0\n  description: use another one\n"
                    if rng.random() < 0.5
                    else f"title: Title {step}\n"
                )
            data = made_zip(tmp_path, TEMPLATES[n % 3], name, version, extra=extra)
            # Signed or not by content: the same artifact always has the same signature.
            digest = hashlib.sha256(data).digest()
            signature = b"sig " + digest if digest[0] % 3 == 0 else None
            live[(stage, name, version)] = store.publish(
                stage, name, version, data, signature=signature
            )
        else:
            candidates = sorted(k for k in live if action != "promote" or k[0] != "production")
            if not candidates:
                continue
            key = rng.choice(candidates)
            with store.catalog.transaction() as tx:
                graph = tx.stages()
                affected = set(graph.affected_distributions(key[0]))
                if action == "remove":
                    tx.delete_entry(*key)
                    del live[key]
                elif action == "yank":
                    entry = tx.get_entry(*key)
                    assert entry is not None
                    tx.set_yanked(*key, not entry.yanked)
                else:
                    target = stages[stages.index(key[0]) + 1]
                    tx.put_entry(target, key[1], key[2], live[key], actor="test")
                    live[(target, key[1], key[2])] = live[key]
                    affected |= set(graph.affected_distributions(target))
                for distribution in sorted(affected):
                    tx.new_revision(distribution)
        registry.refresh()
        fresh = StoreRegistry(store.catalog, store.blobs)
        for distribution in stages:
            assert answers(registry, distribution) == answers(fresh, distribution), (
                step,
                action,
                distribution,
            )
        incremental += sum(b.incremental for b in registry.current.values())
    assert incremental > 0
    if derived:
        held = [p for d in stages for p in registry.resolve(d).packages()]  # type: ignore[union-attr]
        assert any(p.documents.is_encoded for p in held)


def test_distributions_share_the_state_of_a_stage_they_serve_alike(
    store: Store, tmp_path: Path
) -> None:
    """Production's entries, served by production, staging and snapshot, are held once."""
    for version in ("1.0.0", "1.1.0"):
        store.publish(
            "production", "hello_nginx", version, example_zip(tmp_path, "hello_nginx", "1.1.0")
        )
    store.publish("staging", "acme_input", "1.0.0", example_zip(tmp_path, "acme_input", "1.0.0"))
    registry = StoreRegistry(store.catalog, store.blobs)
    current = registry.current
    shared = current["production"].stages["production"]
    assert current["staging"].stages["production"] is shared
    assert current["snapshot"].stages["production"] is shared
    assert current["snapshot"].stages["staging"] is current["staging"].stages["staging"]
    fresh = StoreRegistry(store.catalog, store.blobs)
    for distribution in ("production", "staging", "snapshot"):
        assert answers(registry, distribution) == answers(fresh, distribution)


def test_files_of_a_store_carry_strong_etags_and_answer_304(store: Store, tmp_path: Path) -> None:
    """Zips, signatures and files in zips of a store never change: the blob digest is their
    ETag (a file in a zip: its zip's and its path), If-None-Match answers 304; a big zip goes
    out mapped and arrives whole."""
    import os as _os

    # The example plus an incompressible file, so the zip is above 64 KiB (sent mapped).
    folder = tmp_path / "big" / "hello_nginx" / "1.1.0"
    shutil.copytree(EXAMPLES / "hello_nginx" / "1.1.0", folder)
    (folder / "img").mkdir(exist_ok=True)
    (folder / "img" / "noise.bin").write_bytes(_os.urandom(300_000))
    big = build_zip(FolderTree(folder), "hello_nginx", "1.1.0")
    digest = store.publish("production", "hello_nginx", "1.1.0", big, signature=b"-----SIG-----")
    record = store.catalog.get_artifact(digest)
    assert record is not None and record.signature_digest
    app = create_app(StoreRegistry(store.catalog, store.blobs), OPTIONS)

    async def fetch(target: str, headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.get(target, headers=headers)

    zip_url = "/epr/hello_nginx/hello_nginx-1.1.0.zip"
    r = asyncio.run(fetch(zip_url, {}))
    assert r.status_code == 200 and r.content == big
    assert r.headers["etag"] == f'"{digest}"'
    r = asyncio.run(fetch(zip_url, {"if-none-match": f'"{digest}"'}))
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == f'"{digest}"'
    r = asyncio.run(fetch(zip_url, {"range": "bytes=0-9", "if-range": f'"{digest}"'}))
    assert r.status_code == 206 and r.content == big[:10]
    sig = asyncio.run(fetch(zip_url + ".sig", {}))
    assert sig.status_code == 200 and sig.headers["etag"] == f'"{record.signature_digest}"'
    manifest_url = "/package/hello_nginx/1.1.0/manifest.yml"
    r = asyncio.run(fetch(manifest_url, {}))
    assert r.status_code == 200 and r.headers["etag"].startswith(f'"{digest[:32]}-')
    tag = r.headers["etag"]
    assert asyncio.run(fetch(manifest_url, {"if-none-match": tag})).status_code == 304
    other = asyncio.run(fetch("/package/hello_nginx/1.1.0/docs/README.md", {}))
    assert other.headers["etag"] != tag
    noise = asyncio.run(fetch("/package/hello_nginx/1.1.0/img/noise.bin", {}))
    assert noise.status_code == 200
    assert noise.content == (folder / "img" / "noise.bin").read_bytes()
