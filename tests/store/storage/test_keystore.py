"""Keys kept with the store (``storage/keystore.py`` + ``keyring.py`` over it): the catalog never
holds a secret key in clear, every opener of the store sees the same keys, and the key files of
older directory stores (``DIR/keys``) are still read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_keyring import protected_key  # noqa: F401  (the gpg-made protected key fixture)

from package_storage.errors import SignatureError, StorageError
from package_storage.packages.signing import (
    SecretKey,
    generate_key,
    is_sealed,
    public_key_of,
    sign_detached,
    verify_detached,
)
from package_storage.store.directory import Store
from package_storage.store.keyrecord import SIGNING, KeyRecord
from package_storage.store.keyring import PASSPHRASE_ENV, StoreKeyring
from package_storage.store.storage.keystore import CatalogKeyStore

DATA = b"artifact bytes" * 100


@pytest.fixture(scope="module")
def key() -> SecretKey:
    return generate_key("Store <store@example.com>")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.init(tmp_path / "data")
    yield opened
    opened.close()


def catalog_only(store: Store, passphrase: str | None = None) -> StoreKeyring:
    """The keyring a store without a directory (PostgreSQL) has: the catalog only."""
    env = {} if passphrase is None else {PASSPHRASE_ENV: passphrase}
    return StoreKeyring(None, keystore=CatalogKeyStore(store.catalog), environ=env)


def in_store(store: Store, passphrase: str | None = None) -> StoreKeyring:
    env = {} if passphrase is None else {PASSPHRASE_ENV: passphrase}
    return StoreKeyring(store.root, keystore=CatalogKeyStore(store.catalog), environ=env)


def test_a_key_without_passphrase_is_sealed_with_the_passphrase(
    store: Store, key: SecretKey
) -> None:
    keyring = catalog_only(store, "s3cret")
    keyring.set_signing_key(key.armored)
    (record,) = CatalogKeyStore(store.catalog).records()
    assert record.role == SIGNING and record.fingerprint == key.fingerprint
    assert record.secret is not None and is_sealed(record.secret)
    assert "PRIVATE KEY" not in record.secret
    assert "PRIVATE KEY" not in record.public
    assert "encrypted with" in keyring.signing_location()
    signer = keyring.signing_key()
    assert signer is not None
    assert verify_detached([public_key_of(key)], DATA, sign_detached(signer, DATA)).ok
    # the public part needs no passphrase; signing does, and the right one
    assert catalog_only(store).signing_public_key() == public_key_of(key)
    with pytest.raises(SignatureError, match=PASSPHRASE_ENV):
        catalog_only(store).signing_key()
    with pytest.raises(SignatureError, match="does not open"):
        catalog_only(store, "wrong").signing_key()


def test_a_store_without_directory_refuses_a_clear_key(store: Store, key: SecretKey) -> None:
    with pytest.raises(SignatureError, match="never holds a secret key in clear") as info:
        catalog_only(store).set_signing_key(key.armored)
    assert PASSPHRASE_ENV in str(info.value) and "--key-file" in str(info.value)
    assert CatalogKeyStore(store.catalog).records() == []


def test_the_catalog_refuses_a_clear_secret_whoever_writes_it(store: Store, key: SecretKey) -> None:
    record = KeyRecord(SIGNING, key.fingerprint, public_key_of(key).armored, secret=key.armored)
    with pytest.raises(StorageError, match="not protected"):
        CatalogKeyStore(store.catalog).put_key(record)
    assert CatalogKeyStore(store.catalog).records() == []


def test_a_key_file_is_kept_by_its_path(store: Store, key: SecretKey, tmp_path: Path) -> None:
    path = tmp_path / "operator" / "signing.asc"
    path.parent.mkdir()
    path.write_text(key.armored)
    keyring = catalog_only(store)
    keyring.set_signing_key(key.armored, path=path)
    (record,) = CatalogKeyStore(store.catalog).records()
    assert record.path == str(path.resolve()) and record.secret is None
    assert keyring.signing_key() is not None
    assert str(path.resolve()) in keyring.signing_location()
    path.unlink()  # a writer without the file cannot sign, and says which file it lacks
    with pytest.raises(StorageError, match=r"signing\.asc"):
        keyring.signing_key()
    assert keyring.signing_public_key() == public_key_of(key)  # verifying still works


def test_every_opener_of_the_store_sees_the_same_keys(
    store: Store, key: SecretKey, tmp_path: Path
) -> None:
    elastic = generate_key("Elastic stand-in")
    catalog_only(store, "pw").set_signing_key(key.armored)
    catalog_only(store).add_trusted(public_key_of(elastic).armored)
    with Store.open(store.root) as other:
        keyring = other.keyring()
        assert [k.fingerprint for k in keyring.trusted_keys()] == [elastic.fingerprint]
        public = keyring.signing_public_key()
        assert public is not None and public.fingerprint == key.fingerprint
        assert {k.fingerprint for k in keyring.verification_keys()} == {
            key.fingerprint,
            elastic.fingerprint,
        }
    assert catalog_only(store).remove_trusted(elastic.fingerprint[-16:])
    assert catalog_only(store).trusted_keys() == []


def test_a_protected_key_is_stored_as_it_is(
    store: Store,
    protected_key: str,  # noqa: F811
) -> None:
    keyring = catalog_only(store, "pw")
    secret = keyring.set_signing_key(protected_key)
    assert secret.protected
    (record,) = CatalogKeyStore(store.catalog).records()
    assert record.secret == secret.armored and not is_sealed(record.secret)
    assert "passphrase-protected" in keyring.signing_location()
    assert keyring.signing_key() is not None
    with pytest.raises(SignatureError, match="passphrase"):
        catalog_only(store).signing_key()


def test_directory_store_reads_its_old_key_files(store: Store, key: SecretKey) -> None:
    old = StoreKeyring(store.root)  # the files-only keyring of stores before the catalog kept keys
    old.set_signing_key(key.armored)
    trusted = generate_key("Old trusted")
    old.add_trusted(public_key_of(trusted).armored)
    keyring = store.keyring()
    assert keyring.signing_key() is not None
    assert keyring.signing_location() == str(store.root / "keys" / "signing.asc")
    assert [k.fingerprint for k in keyring.trusted_keys()] == [trusted.fingerprint]
    assert keyring.remove_trusted(trusted.fingerprint)
    assert keyring.trusted_keys() == []


def test_directory_store_keeps_a_clear_key_in_its_folder_and_a_sealed_one_in_the_catalog(
    store: Store, key: SecretKey
) -> None:
    in_store(store).set_signing_key(key.armored)
    assert (store.root / "keys" / "signing.asc").is_file()
    assert CatalogKeyStore(store.catalog).records() == []
    other = generate_key("Next")
    in_store(store, "pw").set_signing_key(other.armored)
    assert not (store.root / "keys" / "signing.asc").exists()  # no stale secret left beside
    (record,) = CatalogKeyStore(store.catalog).records()
    assert record.fingerprint == other.fingerprint and is_sealed(record.secret or "")
    # and back: a clear key replaces the catalog's
    in_store(store).set_signing_key(key.armored)
    assert CatalogKeyStore(store.catalog).records() == []
    public = in_store(store).signing_public_key()
    assert public is not None and public.fingerprint == key.fingerprint


def test_publish_signs_with_the_catalog_key(
    store: Store, key: SecretKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_service import make_package

    monkeypatch.setenv(PASSPHRASE_ENV, "pw")
    store.keyring().set_signing_key(key.armored)
    result = store.service("ci").publish(make_package(tmp_path / "pkgs", "1.0.0"))
    del result
    (entry,) = store.catalog.entries("snapshot")
    artifact = store.catalog.get_artifact(entry.artifact)
    assert artifact is not None and artifact.signature_digest is not None
    sig = store.blobs.get(artifact.signature_digest)
    assert verify_detached([public_key_of(key)], store.blobs.get(entry.artifact), sig).ok
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(SignatureError, match=PASSPHRASE_ENV):
        store.service("ci").publish(make_package(tmp_path / "pkgs", "1.1.0"))
    assert [e.version for e in store.catalog.entries("snapshot")] == ["1.0.0"]


def test_a_keyring_sent_to_a_worker_process_is_a_read_only_copy(store: Store) -> None:
    import pickle

    trusted = generate_key("Trusted")
    store.keyring().add_trusted(public_key_of(trusted).armored)
    copy = pickle.loads(pickle.dumps(store.keyring()))
    assert [k.fingerprint for k in copy.trusted_keys()] == [trusted.fingerprint]
    with pytest.raises(RuntimeError, match="read-only"):
        copy.add_trusted(public_key_of(generate_key("Other")).armored)
