"""Fault test on loopback with a real PostgreSQL server of the test's own: the server is
restarted while a replica (``serve --store postgresql://...``) serves and a writer publishes.

* the replica keeps serving the last revision while the database is down, and reconnects
  (it serves the next publish once the database is back);
* a publish while the database is down fails with one clear line and records nothing;
* a writing transaction cut by the restart leaves nothing half-done;
* the next publish works.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner, Result

from live_manage import start_server
from package_storage.cli.main import main
from package_storage.errors import StorageError
from package_storage.store.storage.base import ArtifactRecord
from package_storage.store.storage.postgres import PostgresCatalog
from pg_server import PrivateServer
from process_helpers import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "packages"
HELLO = EXAMPLES / "hello_nginx"


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={})


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    PrivateServer.require()
    pg = PrivateServer(free_port())
    try:
        pg.start()
        with psycopg.connect(pg.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE store")
        yield pg
    finally:
        pg.remove()


def versions(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(e["version"] for e in response.json())


def wait_for(what: str, predicate: object, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if predicate():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_postgresql_restart_while_a_replica_serves_and_a_writer_publishes(
    server: PrivateServer, tmp_path: Path
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{server.port}/store"
    r = cli("init", "--store", url, "--blobs", str(tmp_path / "blobs"))
    assert r.exit_code == 0, r.output
    assert cli("publish", str(HELLO / "1.0.0"), "--store", url).exit_code == 0
    log = tmp_path / "replica.log"
    with start_server(url, log) as replica:
        search = replica.read_url + "/snapshot/search?all=true"
        zip_path = replica.read_url + "/snapshot/epr/hello_nginx/hello_nginx-1.0.0.zip"
        assert versions(httpx.get(search)) == ["1.0.0"]

        # A writing transaction in flight when the server goes down.
        catalog = PostgresCatalog(url)
        before = catalog.change_counter()
        with pytest.raises(StorageError) as cut, catalog.transaction() as tx:
            digest = "ab" * 32
            tx.add_artifact(ArtifactRecord(digest, 1, "doomed", "1.0.0"))
            tx.put_entry("snapshot", "doomed", "1.0.0", digest, actor="doomed")
            tx.new_revision("snapshot")
            server.stop()
        assert "\n" not in str(cut.value)
        assert str(cut.value).startswith("catalog transaction failed, nothing was changed: ")

        # The database is down: the replica serves what it had, the writer fails cleanly.
        for _ in range(3):
            assert versions(httpx.get(search)) == ["1.0.0"]
            assert httpx.get(zip_path).status_code == 200
            time.sleep(0.2)
        r = cli("publish", str(HELLO / "1.1.0"), "--store", url)
        assert r.exit_code == 1
        assert r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith(f"error: cannot open catalog {url}: connection failed"), r.stderr
        assert versions(httpx.get(search)) == ["1.0.0"]

        server.start()
        # Nothing of the cut transaction nor of the refused publish was recorded.
        assert catalog.change_counter() == before
        assert catalog.find_entries("doomed") == []
        assert catalog.find_entries("hello_nginx", "1.1.0") == []
        catalog.close()

        r = cli("publish", str(HELLO / "1.1.0"), "--store", url)  # the next publish works
        assert r.exit_code == 0, r.output
        wait_for(
            "the replica did not reconnect and serve the new revision",
            lambda: versions(httpx.get(search)) == ["1.0.0", "1.1.0"],
        )
        # The new revision may come from the fallback poll; the listener reconnects too.
        wait_for(
            "the replica's change listener did not reconnect",
            lambda: "catalog notifications: reconnected" in log.read_text(),
        )
    r = cli("fsck", "--store", url, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["catalog_problems"] == []
    assert "catalog notifications lost" in log.read_text()
