"""Opening a store by name (``store/locator.py``): a directory or a ``postgresql://`` URL, its
blob location recorded by ``init --blobs``, and the schema refusals."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from package_storage.errors import ConfigError, InvalidInputError, NotFoundError, SchemaVersionError
from package_storage.store.locator import (
    display,
    init_store,
    is_store_url,
    migrate_store,
    open_store,
)
from package_storage.store.storage import migrations
from pg_server import temporary_database
from s3_server import S3Server

V3_DUMP = Path(__file__).parent / "storage" / "data" / "v3_store.sql"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temporary_database("ps_locator") as url:
        yield url


def test_url_or_directory() -> None:
    assert is_store_url("postgresql://u@h:5432/db")
    assert is_store_url("postgres://u@h/db")
    assert not is_store_url("./data")
    assert not is_store_url(Path("postgresql:"))
    assert display("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    with pytest.raises(InvalidInputError, match="a directory or postgresql://"):
        open_store("mysql://u@h/db")


def test_a_postgresql_store_needs_blobs_and_records_them(pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="run `package-storage init --store postgresql://"):
        open_store(pg_url)
    with pytest.raises(InvalidInputError, match="needs --blobs LOCATION"):
        init_store(pg_url)
    with pytest.raises(NotFoundError):  # the refused init created nothing
        open_store(pg_url)
    result = init_store(pg_url, blobs=str(tmp_path / "blobs"))
    assert result.created
    result.store.close()
    with open_store(pg_url) as store:  # from now on the URL is enough
        assert store.root is None
        assert store.blobs_location == str(tmp_path / "blobs")
        assert store.keyring().store_dir is None  # keys in the catalog only
        service = store.service("test")
        assert service.stages().names == ("production", "staging", "snapshot")
        blob = store.blobs.put(b"hello")
        assert (tmp_path / "blobs" / blob[:2] / blob[2:4] / blob).is_file()
    again = init_store(pg_url, blobs=str(tmp_path / "blobs"))  # idempotent
    assert not again.created
    again.store.close()
    with pytest.raises(InvalidInputError, match=r"keeps its blobs at .*copy-store"):
        init_store(pg_url, blobs=str(tmp_path / "elsewhere"))


def test_a_directory_store_keeps_its_blobs_inside_unless_told(tmp_path: Path) -> None:
    with init_store(tmp_path / "plain").store as store:
        assert store.blobs_default and store.blobs_location == str(tmp_path / "plain" / "blobs")
    with init_store(tmp_path / "apart", blobs=str(tmp_path / "shared")).store as store:
        assert not store.blobs_default
    with open_store(tmp_path / "apart") as store:
        assert store.blobs_location == str(tmp_path / "shared")
    with pytest.raises(InvalidInputError, match="applies to a new store only"):
        init_store(tmp_path / "plain", blobs=str(tmp_path / "shared"))


def test_migrate_adopts_a_store_of_the_hand_written_code(tmp_path: Path) -> None:
    root = tmp_path / "old"
    root.mkdir()
    raw = sqlite3.connect(root / "catalog.db")
    raw.executescript(V3_DUMP.read_text())
    raw.close()
    with pytest.raises(SchemaVersionError, match=f"run `package-storage migrate --store {root}`"):
        open_store(root)
    result = migrate_store(root)
    assert result.applied == ("0001", "0002", "0003") and result.head == migrations.head()
    assert migrate_store(root).applied == ()
    with open_store(root) as store:
        assert store.blobs_default
        assert [e.version for e in store.catalog.entries("snapshot")] == ["1.0.1", "1.0.2"]


def test_migrate_of_nothing_is_not_found(tmp_path: Path, pg_url: str) -> None:
    with pytest.raises(NotFoundError):
        migrate_store(tmp_path / "none")
    with pytest.raises(NotFoundError):
        migrate_store(pg_url)


def test_a_postgresql_store_with_s3_blobs_opens_by_its_url_alone(
    pg_url: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    location = s3_server.location(s3_server.new_prefix("locator"))
    with init_store(pg_url, blobs=location).store as store:
        assert store.blobs_location == location
        digest = store.blobs.put(b"artifact bytes")
    with open_store(pg_url) as store:
        assert store.blobs.get(digest) == b"artifact bytes"

    with temporary_database("ps_locator") as fresh:
        with pytest.raises(ConfigError, match="blob location 'ftp://x'"):
            init_store(fresh, blobs="ftp://x")
        with pytest.raises(NotFoundError):  # the refused init created nothing
            open_store(fresh)
