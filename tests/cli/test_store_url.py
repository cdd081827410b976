"""A store named by one URL: ``init --store postgresql://... --blobs DIR`` once, then every
command (``serve`` included) with ``--store postgresql://...`` or ``PACKAGE_STORAGE_STORE``
only; ``migrate``; the schema refusals; and a live ``serve`` that learns of a publish through
LISTEN/NOTIFY (its fallback poll is set far beyond the test's patience)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from live_manage import start_server
from package_storage.cli.main import main
from package_storage.store.storage import migrations
from pg_server import temporary_database

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "packages"
V3_DUMP = Path(__file__).resolve().parents[1] / "store" / "storage" / "data" / "v3_store.sql"


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env or {})


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temporary_database("ps_cli") as url:
        yield url


def test_init_once_then_the_url_is_enough(pg_url: str, tmp_path: Path) -> None:
    r = cli("list", "--store", pg_url)
    assert (r.exit_code, r.stderr) == (
        1,
        f"error: no package store at {pg_url}: run `package-storage init --store {pg_url}`\n",
    )
    r = cli("init", "--store", pg_url)
    assert r.exit_code == 1 and "needs --blobs LOCATION" in r.stderr
    r = cli("init", "--store", pg_url, "--blobs", str(tmp_path / "blobs"), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {
        "store": pg_url,
        "created": True,
        "stages": ["snapshot", "staging", "production"],
        "blobs": str(tmp_path / "blobs"),
    }
    r = cli("publish", str(EXAMPLES / "hello_nginx" / "1.1.0"), "--store", pg_url)
    assert r.exit_code == 0, r.output
    r = cli("list", "--stage", "snapshot", "--json", env={"PACKAGE_STORAGE_STORE": pg_url})
    assert r.exit_code == 0, r.output
    assert [(e["name"], e["version"]) for e in json.loads(r.stdout)] == [("hello_nginx", "1.1.0")]
    assert r.stderr == f"store: {pg_url} (from PACKAGE_STORAGE_STORE)\n"
    r = cli("fsck", "--store", pg_url)
    assert r.exit_code == 0, r.output
    r = cli("migrate", "--store", pg_url)
    assert (r.exit_code, r.stdout) == (
        0,
        f"store {pg_url} is up to date (revision {migrations.head()})\n",
    )
    r = cli("keys", "list", "--store", pg_url)  # keys live in the catalog
    assert r.exit_code == 0 and "no keys" in r.stdout, r.output


def test_every_command_refuses_an_older_or_newer_schema(pg_url: str, tmp_path: Path) -> None:
    assert cli("init", "--store", pg_url, "--blobs", str(tmp_path / "b")).exit_code == 0
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    for args in (("list",), ("fsck",), ("migrate",), ("init",)):
        r = cli(*args, "--store", pg_url)
        assert r.exit_code == 1, args
        assert r.stderr.count("\n") == 1 and "upgrade package-storage" in r.stderr, args
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE settings"))
        conn.execute(text("DROP TABLE store_keys"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    r = cli("list", "--store", pg_url)
    assert (r.exit_code, r.stderr) == (
        1,
        f"error: store {pg_url}: its catalog is at revision 0001, older than this"
        f" package-storage (revision {migrations.head()}): run `package-storage migrate"
        f" --store {pg_url}`\n",
    )
    r = cli("migrate", "--store", pg_url, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["applied"] == ["0002", "0003"]


def test_migrate_a_directory_store_of_the_hand_written_code(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    raw = sqlite3.connect(root / "catalog.db")
    raw.executescript(V3_DUMP.read_text())
    raw.close()
    r = cli("list", "--store", str(root))
    assert r.exit_code == 1 and f"run `package-storage migrate --store {root}`" in r.stderr
    r = cli("migrate", "--store", str(root))
    assert (r.exit_code, r.stdout) == (
        0,
        f"migrated store {root} to revision {migrations.head()} (applied 0001, 0002, 0003)\n",
    )
    r = cli("list", "--stage", "snapshot", "--store", str(root), "--json")
    assert r.exit_code == 0, r.output
    assert [e["version"] for e in json.loads(r.stdout)] == ["1.0.1", "1.0.2"]


def test_serve_a_postgresql_store_and_learn_of_a_publish_by_notification(
    pg_url: str, tmp_path: Path
) -> None:
    assert cli("init", "--store", pg_url, "--blobs", str(tmp_path / "blobs")).exit_code == 0
    hello = EXAMPLES / "hello_nginx"
    r = cli("publish", str(hello / "1.0.0"), "--store", pg_url)
    assert r.exit_code == 0, r.output
    # Polling only every 10 minutes: the change below can only arrive by NOTIFY.
    log = tmp_path / "server.log"
    with start_server(pg_url, log, extra=["--store-poll", "600"]) as server:
        assert names(httpx.get(server.read_url + "/snapshot/search")) == ["hello_nginx-1.0.0"]
        r = cli("publish", str(hello / "1.1.0"), "--store", pg_url)
        assert r.exit_code == 0, r.output
        deadline = time.monotonic() + 60
        want = ["hello_nginx-1.0.0", "hello_nginx-1.1.0"]
        while names(httpx.get(server.read_url + "/snapshot/search?all=true")) != want:
            assert time.monotonic() < deadline, "the publish was not notified"
            time.sleep(0.05)
        r2 = httpx.get(server.read_url + "/snapshot/epr/hello_nginx/hello_nginx-1.1.0.zip")
        assert (r2.status_code, r2.headers["content-type"]) == (200, "application/zip")
        # the management API of the replica works on the same catalog
        assert httpx.get(server.manage_url + "/api/v1/openapi.json").is_success
    assert "Loading package store " + pg_url in log.read_text()


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(f"{e['name']}-{e['version']}" for e in response.json())
