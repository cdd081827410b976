"""Fixtures of the management API tests: a store with packages in every stage, tokens, the app
in-process (Starlette's test client) and through a real ``package-storage serve`` on loopback."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from manage_helpers import build_store
from test_service import make_package, make_zip

from live_manage import LiveServer, start_server
from package_storage.manage.app import create_app
from package_storage.store.directory import Store
from token_fixtures import MakeToken, token_maker

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's test client warns about its httpx use
    from fastapi.testclient import TestClient


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with build_store(tmp_path / "store", tmp_path / "packages") as st:
        yield st


@pytest.fixture
def make_token(store: Store) -> MakeToken:
    """A new token with ``scopes`` (name: ``t1``, ``t2``, ... unless given); its secret."""
    return token_maker(store)


@pytest.fixture
def app_client(store: Store) -> Iterator[TestClient]:
    app = create_app(store, max_upload=4 * 1024 * 1024, poll_interval=0.05)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def upload(tmp_path: Path) -> Callable[..., Path]:
    """A package zip of hello_nginx ``version`` (``extra`` changes its bytes)."""

    def make(version: str, extra: str = "") -> Path:
        folder = make_package(tmp_path / "upload-src", version, extra=extra)
        return make_zip(folder, tmp_path / "zips" / (extra or "plain"))

    return make


@pytest.fixture
def live(store: Store, tmp_path: Path) -> Iterator[LiveServer]:
    """``package-storage serve --store DIR --manage-address ...`` as a real process."""
    with start_server(store.root, tmp_path / "server.log", max_upload="4MiB") as server:
        yield server
