"""``package-storage serve --store DIR``: a live server over a store, changed by this process."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from test_serve import run_serve

from package_storage.packages.artifacts import build_zip
from package_storage.packages.trees import FolderTree
from package_storage.store.storage.base import ArtifactRecord
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.store.storage.sqlite import SQLiteCatalog
from process_helpers import clean_env, command, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "packages"


def publish(
    catalog: SQLiteCatalog, blobs: LocalBlobStore, stage: str, name: str, version: str
) -> None:
    data = build_zip(FolderTree(EXAMPLES / name / version), name, version)
    digest = blobs.put(data)
    with catalog.transaction() as tx:
        tx.add_artifact(ArtifactRecord(digest, len(data), name, version))
        tx.put_entry(stage, name, version, digest, actor="test")
        for distribution in tx.stages().affected_distributions(stage):
            tx.new_revision(distribution)


def make_store(root: Path) -> tuple[SQLiteCatalog, LocalBlobStore]:
    catalog = SQLiteCatalog(root / "catalog.db")
    blobs = LocalBlobStore(root / "blobs", fsync=False)
    return catalog, blobs


class Server:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5)


def start(args: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Server:
    port = free_port()
    proc = subprocess.Popen(
        [*command(), "serve", "--address", f"127.0.0.1:{port}", "-log-type", "dev", *args],
        env=clean_env(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(proc, port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"server exited with {proc.returncode}: {out}")
        try:
            if server.get("/health").status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start")


def stop(server: Server) -> str:
    server.proc.send_signal(signal.SIGTERM)
    out, _ = server.proc.communicate(timeout=30)
    assert server.proc.returncode == 0, out
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Path, SQLiteCatalog, LocalBlobStore]]:
    root = tmp_path / "store"
    catalog, blobs = make_store(root)
    yield root, catalog, blobs
    catalog.close()


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(f"{e['name']}-{e['version']}" for e in response.json())


def test_a_live_server_sees_store_changes(
    store: tuple[Path, SQLiteCatalog, LocalBlobStore], tmp_path: Path
) -> None:
    root, catalog, blobs = store
    publish(catalog, blobs, "production", "hello_nginx", "1.0.0")
    publish(catalog, blobs, "snapshot", "acme_input", "1.0.0")
    # No config.yml in the working directory: store mode does not need one.
    server = start(["--store", str(root)], cwd=tmp_path)
    try:
        assert names(server.get("/search")) == ["hello_nginx-1.0.0"]
        assert names(server.get("/production/search")) == ["hello_nginx-1.0.0"]
        assert names(server.get("/snapshot/search")) == ["acme_input-1.0.0", "hello_nginx-1.0.0"]
        assert server.get("/production@1/search").status_code == 200
        assert server.get("/nope/search").status_code == 404
        r = server.get("/epr/hello_nginx/hello_nginx-1.0.0.zip")
        assert (r.status_code, r.headers["content-type"]) == (200, "application/zip")

        publish(catalog, blobs, "production", "hello_nginx", "1.1.0")
        changed = time.monotonic()
        while names(server.get("/search?all=true")) != ["hello_nginx-1.0.0", "hello_nginx-1.1.0"]:
            assert time.monotonic() - changed < 10, "the change was not picked up"
            time.sleep(0.02)
        seen = time.monotonic() - changed
        print(f"change visible over HTTP after {seen * 1000:.0f} ms")
        assert names(server.get("/production@1/search?all=true")) == ["hello_nginx-1.0.0"]
        assert "hello_nginx-1.1.0" in names(server.get("/snapshot/search?all=true"))

        # a yanked version leaves /search but stays downloadable by its version
        from package_storage.store.service import StoreService

        StoreService(catalog, blobs, actor="test").yank(
            "hello_nginx", "1.1.0", stage="production", reason="bad release"
        )
        changed = time.monotonic()
        while names(server.get("/search?all=true")) != ["hello_nginx-1.0.0"]:
            assert time.monotonic() - changed < 10, "the yank was not picked up"
            time.sleep(0.02)
        assert server.get("/package/hello_nginx/1.1.0/").json()["yanked"] is True
        assert server.get("/epr/hello_nginx/hello_nginx-1.1.0.zip").status_code == 200
    finally:
        out = stop(server)
    assert "Package registry stopped" in out


@pytest.mark.parametrize(
    "args",
    [
        # a fallback poll of a minute: only the catalog's file-change event can be seen in time
        ["--store-poll", "60"],
        # notifications off: the short poll still finds the change
        ["--no-store-watch", "--store-poll", "0.2"],
    ],
    ids=["notified", "polled"],
)
def test_a_publish_from_another_process_is_served_without_waiting_for_a_poll(
    store: tuple[Path, SQLiteCatalog, LocalBlobStore], tmp_path: Path, args: list[str]
) -> None:
    root, catalog, blobs = store
    publish(catalog, blobs, "production", "hello_nginx", "1.0.0")
    server = start(["--store", str(root), *args], cwd=tmp_path)
    try:
        for name, version in (("hello_nginx", "1.1.0"), ("acme_input", "1.0.0")):
            publish(catalog, blobs, "production", name, version)
            deadline = time.monotonic() + 10  # a hang guard, far below the 60 s poll
            while server.get(f"/package/{name}/{version}/").status_code != 200:
                assert time.monotonic() < deadline, f"{name} {version} was not served"
                time.sleep(0.02)
    finally:
        stop(server)


def test_default_distribution_from_the_environment(
    store: tuple[Path, SQLiteCatalog, LocalBlobStore], tmp_path: Path
) -> None:
    root, catalog, blobs = store
    publish(catalog, blobs, "snapshot", "acme_input", "1.0.0")
    server = start(
        [],
        env={
            "PACKAGE_STORAGE_STORE": str(root),
            "PACKAGE_STORAGE_DEFAULT_DISTRIBUTION": "snapshot",
        },
        cwd=tmp_path,
    )
    try:
        assert names(server.get("/search")) == ["acme_input-1.0.0"]
        empty = server.get("/production/search")  # no revision yet: served empty
        assert (empty.status_code, empty.content) == (200, b"[]")
    finally:
        out = stop(server)
    assert f"store {root} (from PACKAGE_STORAGE_STORE)" in out


def test_a_fresh_store_is_served_empty_over_http(
    store: tuple[Path, SQLiteCatalog, LocalBlobStore], tmp_path: Path
) -> None:
    root, _catalog, _blobs = store
    server = start(["--store", str(root)], cwd=tmp_path)
    try:
        for prefix in ("", "/production", "/snapshot"):
            search = server.get(f"{prefix}/search?kibana.version=8.12.0")
            assert (search.status_code, search.content) == (200, b"[]")
            categories = server.get(f"{prefix}/categories")
            assert (categories.status_code, categories.content) == (200, b"[]\n")
        assert server.get("/nope/search").status_code == 404
    finally:
        stop(server)


def test_startup_errors(store: tuple[Path, SQLiteCatalog, LocalBlobStore], tmp_path: Path) -> None:
    root, _catalog, _blobs = store
    missing = run_serve(["--store", str(tmp_path / "nothing")], tmp_path, timeout=60)
    assert missing.returncode == 1
    assert "no package store at" in missing.stdout + missing.stderr
    assert not (tmp_path / "nothing").exists()
    unknown = run_serve(
        ["--store", str(root), "--default-distribution", "qa"], tmp_path, timeout=60
    )
    assert unknown.returncode == 1
    assert "default distribution qa is not a stage" in unknown.stdout + unknown.stderr
    dry = run_serve(["--store", str(root), "-dry-run"], tmp_path, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: store" in dry.stdout
