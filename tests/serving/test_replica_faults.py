"""Replica faults (issue 11, item 6): a replica (``serve --store``) killed with -9 while it
switches to a new revision. The other replica keeps serving and switches; the killed one,
restarted, serves the latest revision; nothing is lost (the catalog is whole, fsck clean).

Replicas hold only indexes and caches, so the kill cannot hurt the store; what this checks is
that nothing a replica does while switching (reading the catalog, parsing artifacts, building
the index beside the old one) leaves anything behind that the next start or the other replica
trips over.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_service import make_package

from package_storage.store.directory import Store
from package_storage.store.locator import init_store, open_store
from pg_server import temporary_database
from replicas import Replica, add_versions, build_zips, start_replica, stop_replica, wait_for

BATCH = 40  # versions per change: enough for a switch that takes the replica a while
ROUNDS = 2


# "directory" runs it on a store directory too (kept out of `make test` for time: the directory
# store's replicas are the same code, woken by file events instead of LISTEN).
@pytest.fixture(params=["postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store directory, or a PostgreSQL catalog (its blobs in a folder) served by URL."""
    if request.param == "directory":
        root = tmp_path / "store"
        Store.init(root).close()
        yield str(root)
        return
    with temporary_database("ps_replicas") as url:
        init_store(url, blobs=str(tmp_path / "blobs")).store.close()
        yield url


class Watcher(threading.Thread):
    """Asks a replica for /production/search all the time; counts failures."""

    def __init__(self, replica: Replica) -> None:
        super().__init__(daemon=True)
        self.replica = replica
        self.stop = threading.Event()
        self.answers = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                response = self.replica.get("/production/search?all=true&prerelease=true")
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
                self.answers += 1
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_replica_killed_during_a_switch(location: str, tmp_path: Path) -> None:
    folders = [
        make_package(tmp_path / "pkgs", f"1.{r}.{i}")
        for r in range(ROUNDS + 1)
        for i in range(BATCH)
    ]
    zips = build_zips(folders)
    with open_store(location) as store:
        add_versions(store.catalog, store.blobs, "production", zips[:BATCH])
        logs = tmp_path / "logs"
        logs.mkdir()
        a = start_replica(location, logs / "a.log")
        b = start_replica(location, logs / "b.log")
        watcher = Watcher(b)
        try:
            wait_for(a, BATCH)
            wait_for(b, BATCH)
            watcher.start()
            for r in range(1, ROUNDS + 1):
                add_versions(
                    store.catalog, store.blobs, "production", zips[r * BATCH : (r + 1) * BATCH]
                )
                a.proc.send_signal(signal.SIGKILL)  # while it reads and builds the switch
                assert a.proc.wait(30) == -signal.SIGKILL
                wait_for(b, (r + 1) * BATCH)  # the other replica switches meanwhile
                a = start_replica(location, logs / "a.log", port=a.port)
                wait_for(a, (r + 1) * BATCH)  # restarted: the latest revision
            watcher.stop.set()
            watcher.join(30)
            assert watcher.failures == [], watcher.failures[:3]
            assert watcher.answers > 0
            current = store.catalog.current_revision("production")
            assert current is not None
            for replica in (a, b):
                zip_response = replica.get("/epr/hello_nginx/hello_nginx-1.2.0.zip")
                assert zip_response.status_code == 200
        finally:
            watcher.stop.set()
            stop_replica(a)
            stop_replica(b)
        assert len(store.catalog.entries("production")) == (ROUNDS + 1) * BATCH
        assert store.catalog.check(deep=True) == []
        report = store.service("checker").fsck()
        assert report.ok and not report.orphaned, report
