"""Session fixtures of the read-API tests: indexes over the conformance setups."""

from __future__ import annotations

import pytest
from http_driver import FIXTURES, ONE_SECOND, PrefixRegistry, load_index

from package_storage.registry.http.app import ASGIApp, create_app
from package_storage.registry.index import RegistryIndex as Index


@pytest.fixture(scope="session")
def setup_d_index() -> Index:
    """cases.md setup D: zip source [local-storage] then folder source [package]."""
    return load_index(FIXTURES / "local-storage", FIXTURES / "package")


@pytest.fixture(scope="session")
def setup_d(setup_d_index: Index) -> ASGIApp:
    return create_app(PrefixRegistry(setup_d_index, {}), ONE_SECOND)


@pytest.fixture(scope="session")
def setup_a_index() -> Index:
    """cases.md setup A: local-storage, second_package_path, package."""
    return load_index(
        FIXTURES / "local-storage", FIXTURES / "second_package_path", FIXTURES / "package"
    )


@pytest.fixture(scope="session")
def setup_a(setup_a_index: Index) -> ASGIApp:
    return create_app(PrefixRegistry(setup_a_index, {}), ONE_SECOND)
