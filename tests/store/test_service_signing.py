"""Publish applies the store's signature rules: sign with the store key, verify imported .sig."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_service import make_package, make_zip, state

from package_storage.errors import SignatureError
from package_storage.packages.signing import (
    generate_key,
    public_key_of,
    sign_detached,
    verify_detached,
)
from package_storage.store.directory import Store
from package_storage.store.keyring import StoreKeyring


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store.init(tmp_path / "store")
    try:
        yield st
    finally:
        st.close()


def test_publish_signs_with_the_store_key(store: Store, tmp_path: Path) -> None:
    keyring = StoreKeyring(store.root)
    key = keyring.set_signing_key(generate_key("Store <store@example.com>").armored)
    result = store.service("tester").publish(make_package(tmp_path / "p", "2.0.0"))
    assert result.changed
    record = store.catalog.get_artifact(result.event.detail["digest"])  # type: ignore[union-attr]
    assert record is not None and record.signature_digest is not None
    data = store.blobs.get(record.digest)
    signature = store.blobs.get(record.signature_digest)
    assert signature.startswith(b"-----BEGIN PGP SIGNATURE-----")
    public = keyring.signing_public_key()
    assert public is not None
    check = verify_detached([public], data, signature)
    assert check.ok and check.fingerprint == key.fingerprint


def test_without_a_key_nothing_is_signed(store: Store, tmp_path: Path) -> None:
    result = store.service("tester").publish(make_package(tmp_path / "p", "2.0.0"))
    record = store.catalog.get_artifact(result.event.detail["digest"])  # type: ignore[union-attr]
    assert record is not None and record.signature_digest is None


def test_imported_signature_must_verify_against_trusted_keys(store: Store, tmp_path: Path) -> None:
    trusted = generate_key("Upstream <up@example.com>")
    stranger = generate_key("Stranger <x@example.com>")
    keyring = StoreKeyring(store.root)
    keyring.add_trusted(public_key_of(trusted).armored)
    folder = make_package(tmp_path / "p", "2.0.0")
    bad = make_zip(folder, tmp_path / "bad", signature=b"placeholder")
    bad.with_name(bad.name + ".sig").write_bytes(sign_detached(stranger, bad.read_bytes()))
    before = state(store)
    with pytest.raises(SignatureError, match=r"hello_nginx-2\.0\.0: signature refused"):
        store.service("tester").publish(bad)
    assert state(store) == before

    good = make_zip(folder, tmp_path / "good", signature=b"placeholder")
    good.with_name(good.name + ".sig").write_bytes(sign_detached(trusted, good.read_bytes()))
    assert store.service("tester").publish(good).changed


def test_garbage_signature_is_refused(store: Store, tmp_path: Path) -> None:
    zipped = make_zip(make_package(tmp_path / "p", "2.0.0"), tmp_path / "z", signature=b"abc\n")
    before = state(store)
    with pytest.raises(SignatureError, match=r"hello_nginx-2\.0\.0"):
        store.service("tester").publish(zipped)
    assert state(store) == before
