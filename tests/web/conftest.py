"""Fixtures of the web UI tests: a store with packages in every stage (one with a hostile title
and README), tokens, and the UI in-process (Starlette's test client)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_helpers import build_store

from package_storage.store.directory import Store
from package_storage.web.app import create_ui
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
def client(store: Store) -> Iterator[TestClient]:
    """The UI, not signed in (``base_url`` http://testserver: no Secure cookies)."""
    with TestClient(create_ui(store), raise_server_exceptions=False) as test_client:
        yield test_client
