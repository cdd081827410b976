"""The store directory: layout, init/open, default directory and actor."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from package_storage.errors import NotFoundError, StorageError
from package_storage.store.directory import (
    Store,
    default_actor,
    default_store_dir,
)
from package_storage.store.service import StoreService
from package_storage.store.storage.base import ArtifactRecord


def test_init_creates_layout_and_is_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "a" / "store"
    with Store.init(root) as store:
        assert (root / "catalog.db").is_file()
        assert (root / "blobs").is_dir()
        assert store.root == root
        digest = store.blobs.put(b"zip bytes")
        with store.catalog.transaction() as tx:
            tx.add_artifact(ArtifactRecord(digest, 9, "pkg", "1.0.0"))
            tx.put_entry("snapshot", "pkg", "1.0.0", digest, actor="me")
            tx.new_revision("snapshot")
        counter = store.catalog.change_counter()
    with Store.init(root) as again:  # existing store: opened unchanged
        assert again.catalog.get_entry("snapshot", "pkg", "1.0.0") is not None
        assert again.blobs.get(digest) == b"zip bytes"
        assert again.catalog.change_counter() == counter
    with Store.open(root) as opened:
        assert opened.catalog.stages().names == ("production", "staging", "snapshot")


def test_open_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    for path in (tmp_path / "missing", tmp_path):
        with pytest.raises(NotFoundError) as info:
            Store.open(path)
        assert str(info.value) == (
            f"no package store at {path}: run `package-storage init --store {path}`"
        )
    assert not (tmp_path / "missing").exists()  # nothing created by a failed open
    assert not (tmp_path / "catalog.db").exists()


def test_open_with_create(tmp_path: Path) -> None:
    with Store.open(tmp_path / "new", create=True) as store:
        assert Store.is_store(store.root)


def test_store_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a directory")
    with pytest.raises(StorageError, match="is not a directory"):
        Store.open(path, create=True)


def test_service_uses_the_given_or_default_actor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACKAGE_STORAGE_ACTOR", "release-bot")
    with Store.init(tmp_path / "s") as store:
        svc = store.service("alice")
        assert isinstance(svc, StoreService)
        assert svc.actor == "alice"
        assert svc.catalog is store.catalog and svc.blobs is store.blobs
        assert store.service().actor == "release-bot"


def test_default_store_dir() -> None:
    assert default_store_dir({}) == Path("./data")
    assert default_store_dir({"PACKAGE_STORAGE_STORE": ""}) == Path("./data")
    assert default_store_dir({"PACKAGE_STORAGE_STORE": "/srv/pkgs"}) == Path("/srv/pkgs")


def test_default_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_actor({"PACKAGE_STORAGE_ACTOR": "ci"}) == "ci"
    assert default_actor({"PACKAGE_STORAGE_ACTOR": "  "}) == getpass.getuser()
    assert default_actor({}) == getpass.getuser()

    def no_user() -> str:
        raise KeyError("no passwd entry")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert default_actor({}).startswith("uid-")
