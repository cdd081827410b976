"""The store keyring (``keyring.py``): files and modes, passphrases, trusted keys, and the
publish/import hooks ``sign_artifact`` / ``verify_artifact`` / ``check_imported_signature``."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from package_storage.errors import ConflictError, NotFoundError, SignatureError
from package_storage.packages.signing import SecretKey, generate_key, public_key_of, sign_detached
from package_storage.store.keyring import (
    PASSPHRASE_ENV,
    StoreKeyring,
    check_imported_signature,
    sign_artifact,
    verify_artifact,
)

DATA = b"zip bytes of a package" * 50


@pytest.fixture(scope="module")
def key() -> SecretKey:
    return generate_key("Store <store@example.com>")


@pytest.fixture(scope="module")
def elastic() -> SecretKey:
    """Stands in for Elastic's package key (a foreign key whose public part is trusted)."""
    return generate_key("Elastic stand-in <packages@example.com>")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_empty_keyring(tmp_path: Path) -> None:
    keyring = StoreKeyring(tmp_path)
    assert not keyring.has_signing_key()
    assert keyring.signing_key() is None
    assert keyring.signing_public_key() is None
    assert keyring.trusted_keys() == []
    assert keyring.verification_keys() == []
    assert sign_artifact(keyring, DATA) is None
    with pytest.raises(NotFoundError, match="no signing key"):
        keyring.export_public()
    assert not (tmp_path / "keys").exists()  # reading creates nothing


def test_signing_key_file_and_modes(tmp_path: Path, key: SecretKey) -> None:
    keyring = StoreKeyring(tmp_path)
    stored = keyring.set_signing_key(key.armored)
    assert stored.fingerprint == key.fingerprint
    assert keyring.signing_path == tmp_path / "keys" / "signing.asc"
    assert _mode(keyring.signing_path) == 0o600
    assert _mode(tmp_path / "keys") == 0o700
    assert keyring.signing_path.read_text() == key.armored
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["signing.asc"]  # no temp left
    loaded = keyring.signing_key()
    assert loaded is not None and loaded.fingerprint == key.fingerprint
    assert keyring.export_public() == public_key_of(key).armored


def test_replace_needs_replace_flag(tmp_path: Path, key: SecretKey, elastic: SecretKey) -> None:
    keyring = StoreKeyring(tmp_path)
    keyring.set_signing_key(key.armored)
    with pytest.raises(ConflictError, match=f"already has a signing key \\({key.fingerprint}\\)"):
        keyring.set_signing_key(elastic.armored, replace=False)
    assert keyring.signing_public_key().fingerprint == key.fingerprint  # type: ignore[union-attr]
    keyring.set_signing_key(elastic.armored)
    assert keyring.signing_public_key().fingerprint == elastic.fingerprint  # type: ignore[union-attr]


def test_set_signing_key_refuses_a_public_key(tmp_path: Path, key: SecretKey) -> None:
    keyring = StoreKeyring(tmp_path)
    with pytest.raises(SignatureError, match="a secret key is needed"):
        keyring.set_signing_key(public_key_of(key).armored)
    assert not keyring.has_signing_key()


def test_corrupt_signing_key_file_names_the_file(tmp_path: Path) -> None:
    keyring = StoreKeyring(tmp_path)
    keyring.keys_dir.mkdir()
    keyring.signing_path.write_text("not a key")
    with pytest.raises(SignatureError, match=r"signing key .*signing\.asc: .*not an ASCII-armored"):
        keyring.signing_key()
    with pytest.raises(SignatureError, match=r"signing\.asc"):
        sign_artifact(keyring, DATA)


def test_sign_and_verify_artifact(tmp_path: Path, key: SecretKey) -> None:
    keyring = StoreKeyring(tmp_path)
    keyring.set_signing_key(key.armored)
    signature = sign_artifact(keyring, DATA)
    assert signature is not None and signature.startswith(b"-----BEGIN PGP SIGNATURE-----")
    good = verify_artifact(keyring, DATA, signature)
    assert good.ok and good.fingerprint == key.fingerprint
    bad = verify_artifact(keyring, DATA + b"!", signature)
    assert not bad.ok and "BAD signature" in bad.reason


def test_trusted_keys(tmp_path: Path, key: SecretKey, elastic: SecretKey) -> None:
    keyring = StoreKeyring(tmp_path)
    added = keyring.add_trusted(elastic.armored)  # a secret key: only the public part is kept
    path = tmp_path / "keys" / "trusted" / f"{elastic.fingerprint}.asc"
    assert path.is_file()
    assert "PRIVATE" not in path.read_text()
    assert added.fingerprint == elastic.fingerprint
    keyring.add_trusted(public_key_of(elastic).armored)  # idempotent
    assert [k.fingerprint for k in keyring.trusted_keys()] == [elastic.fingerprint]
    keyring.set_signing_key(key.armored)
    assert [k.fingerprint for k in keyring.verification_keys()] == [
        key.fingerprint,
        elastic.fingerprint,
    ]
    assert verify_artifact(keyring, DATA, sign_detached(elastic, DATA)).ok
    assert keyring.remove_trusted(elastic.fingerprint[-16:].lower())
    assert not keyring.remove_trusted(elastic.fingerprint)
    assert keyring.trusted_keys() == []


def test_corrupt_trusted_file_names_the_file(tmp_path: Path) -> None:
    keyring = StoreKeyring(tmp_path)
    keyring.trusted_dir.mkdir(parents=True)
    (keyring.trusted_dir / "bad.asc").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n")
    with pytest.raises(SignatureError, match=r"trusted key .*bad\.asc"):
        keyring.trusted_keys()


def test_check_imported_signature(tmp_path: Path, key: SecretKey, elastic: SecretKey) -> None:
    keyring = StoreKeyring(tmp_path)
    keyring.set_signing_key(key.armored)
    foreign = sign_detached(elastic, DATA)
    # no trusted keys: not checked (an Elastic-signed mirror imports as is), only parsed
    assert check_imported_signature(keyring, DATA, foreign, label="apache-1.0.0") is None
    with pytest.raises(SignatureError, match=r"apache-1\.0\.0: signature is not an ASCII-armored"):
        check_imported_signature(keyring, DATA, b"e16ddaf4f91df524", label="apache-1.0.0")
    # trusted keys: must verify against them (or the signing key)
    keyring.add_trusted(public_key_of(elastic).armored)
    result = check_imported_signature(keyring, DATA, foreign, label="apache-1.0.0")
    assert result is not None and result.ok
    own = sign_detached(key, DATA)
    assert check_imported_signature(keyring, DATA, own, label="apache-1.0.0") is not None
    with pytest.raises(SignatureError, match=r"apache-1\.0\.0: signature refused: BAD signature"):
        check_imported_signature(keyring, DATA + b"x", foreign, label="apache-1.0.0")
    stranger = generate_key("Stranger")
    with pytest.raises(SignatureError, match=r"signature refused: .*unknown key"):
        check_imported_signature(keyring, DATA, sign_detached(stranger, DATA), label="apache-1.0.0")


# --- passphrase-protected keys (made with gpg: pysequoia cannot encrypt a key) -----------------

GPG = shutil.which("gpg")


@pytest.fixture(scope="module")
def protected_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    if GPG is None:
        pytest.skip("the system gpg binary is not installed")
    home = Path(f"/tmp/ps-kr-{os.getpid()}")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    base = [GPG, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "pw"]
    try:
        subprocess.run(
            [*base, "--quick-gen-key", "Locked <l@example.com>", "ed25519", "sign"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        out = subprocess.run(
            [*base, "--armor", "--export-secret-keys"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        ).stdout.decode()
    finally:
        if gpgconf := shutil.which("gpgconf"):
            subprocess.run([gpgconf, "--kill", "gpg-agent"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    return out


def test_passphrase_from_environment(tmp_path: Path, protected_key: str) -> None:
    with pytest.raises(SignatureError, match=f"none was given \\(set {PASSPHRASE_ENV}\\)"):
        StoreKeyring(tmp_path, environ={}).set_signing_key(protected_key)
    with pytest.raises(SignatureError, match="passphrase does not unlock"):
        StoreKeyring(tmp_path, environ={PASSPHRASE_ENV: "nope"}).set_signing_key(protected_key)
    keyring = StoreKeyring(tmp_path, environ={PASSPHRASE_ENV: "pw"})
    assert keyring.set_signing_key(protected_key).protected
    assert "PRIVATE KEY" in keyring.signing_path.read_text()  # stored as given: still encrypted
    signature = sign_artifact(keyring, DATA)
    assert signature is not None and verify_artifact(keyring, DATA, signature).ok
    # the public part needs no passphrase; signing does
    locked = StoreKeyring(tmp_path, environ={})
    assert locked.export_public().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert verify_artifact(locked, DATA, signature).ok
    with pytest.raises(SignatureError, match=r"signing\.asc: .*protected by a passphrase"):
        sign_artifact(locked, DATA)
    # an explicit passphrase wins over the environment
    assert StoreKeyring(tmp_path, passphrase="pw", environ={}).signing_key() is not None
