"""OpenPGP keys and detached signatures (``signing.py``): round trips, refusals, and
interoperability with the system GnuPG (``gpg``), which stands in for Kibana's openpgp.js as an
independent implementation (skipped with a reason when ``gpg`` is not installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pysequoia
import pytest
from pysequoia.packet import HashAlgorithm, SignatureType

from package_storage.errors import SignatureError
from package_storage.packages.signing import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    KeyAlgorithm,
    SecretKey,
    generate_key,
    is_secret_key,
    load_public_key,
    load_secret_key,
    parse_algorithm,
    parse_signature,
    public_key_of,
    sign_detached,
    verify_detached,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / ".." / "shared" / "fixtures" / "epr"
DATA = b"PK\x03\x04 pretend this is a package zip \x00\xff" * 100

GPG = shutil.which("gpg")
needs_gpg = pytest.mark.skipif(GPG is None, reason="the system gpg binary is not installed")


@pytest.fixture(scope="module")
def key() -> SecretKey:
    return generate_key("Test Signer <signer@example.com>")


@pytest.fixture(scope="module")
def other_key() -> SecretKey:
    return generate_key("Someone Else <else@example.com>")


# --- keys ------------------------------------------------------------------------------------


def test_generate_default_is_v4_ed25519(key: SecretKey) -> None:
    assert DEFAULT_ALGORITHM is KeyAlgorithm.ED25519
    assert key.armored.startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert len(key.fingerprint) == 40  # v4 fingerprint (v6 keys have 64 hex digits)
    assert key.fingerprint == key.fingerprint.upper()
    assert key.user_ids == ("Test Signer <signer@example.com>",)
    assert key.algorithm == "EdDSA"  # the v4 (RFC 4880bis) encoding openpgp.js 5 reads
    assert not key.protected


def test_secret_key_repr_hides_the_secret(key: SecretKey) -> None:
    assert "PRIVATE KEY" not in repr(key)
    assert key.fingerprint in repr(key)


def test_public_key_of_has_no_secret(key: SecretKey) -> None:
    public = public_key_of(key)
    assert public.fingerprint == key.fingerprint
    assert public.armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert "PRIVATE" not in public.armored
    assert not is_secret_key(public.armored)
    assert is_secret_key(key.armored)
    # the primary key and both subkeys are known by fingerprint and key ID
    assert key.fingerprint.lower() in public.key_ids
    assert len(public.key_ids) == 6
    assert public.key_id == key.fingerprint[-16:]


def test_load_public_key_reduces_a_secret_key(key: SecretKey) -> None:
    public = load_public_key(key.armored)
    assert public.armored == public_key_of(key).armored


def test_load_secret_key_round_trip(key: SecretKey) -> None:
    again = load_secret_key(key.armored)
    assert again.fingerprint == key.fingerprint
    signature = sign_detached(again, DATA)
    assert verify_detached([public_key_of(key)], DATA, signature).ok


def test_rsa_key() -> None:
    rsa = generate_key("RSA Signer", algorithm="rsa3072")
    assert rsa.algorithm == "RSA"
    signature = sign_detached(rsa, DATA)
    assert parse_signature(signature).hash_algorithm == HashAlgorithm.SHA512
    assert verify_detached([public_key_of(rsa)], DATA, signature).ok


def test_algorithms() -> None:
    assert ALGORITHMS == ("ed25519", "rsa3072", "rsa4096")
    assert parse_algorithm("RSA4096") is KeyAlgorithm.RSA4096
    with pytest.raises(SignatureError, match=r"unknown key algorithm 'dsa'.*ed25519, rsa3072"):
        parse_algorithm("dsa")
    with pytest.raises(SignatureError, match="unknown key algorithm"):
        generate_key("x", algorithm="rsa1024")


@pytest.mark.parametrize("user_id", ["", "   ", "two\nlines", "nul\0"])
def test_generate_refuses_bad_user_ids(user_id: str) -> None:
    with pytest.raises(SignatureError, match="user ID"):
        generate_key(user_id)


# --- signatures ------------------------------------------------------------------------------


def test_signature_shape(key: SecretKey) -> None:
    signature = sign_detached(key, DATA)
    text = signature.decode("ascii")
    assert text.startswith("-----BEGIN PGP SIGNATURE-----\n")
    assert text.rstrip().endswith("-----END PGP SIGNATURE-----")
    sig = parse_signature(signature)
    assert sig.version == 4
    assert sig.signature_type == SignatureType.Binary
    assert sig.hash_algorithm == HashAlgorithm.SHA512


def test_sign_and_verify(key: SecretKey) -> None:
    signature = sign_detached(key, DATA)
    result = verify_detached([public_key_of(key)], DATA, signature)
    assert result.ok
    assert result.fingerprint == key.fingerprint  # the primary key, not the signing subkey
    assert (
        result.reason == f"good signature from Test Signer <signer@example.com> ({key.fingerprint})"
    )
    assert result.issuer is not None and result.issuer != key.fingerprint  # signed by the subkey


def test_verify_accepts_text_and_finds_the_right_key(key: SecretKey, other_key: SecretKey) -> None:
    signature = sign_detached(other_key, DATA).decode("ascii")
    keys = [public_key_of(key), public_key_of(other_key)]
    result = verify_detached(keys, DATA, signature)
    assert result.ok and result.fingerprint == other_key.fingerprint


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d + b"\n",
        lambda d: d[:-1],
        lambda d: bytes([d[0] ^ 1]) + d[1:],
        lambda d: b"",
    ],
    ids=["appended", "truncated", "bit-flip", "empty"],
)
def test_tampered_data_does_not_verify(key: SecretKey, tamper: object) -> None:
    signature = sign_detached(key, DATA)
    changed = tamper(DATA)  # type: ignore[operator]
    result = verify_detached([public_key_of(key)], changed, signature)
    assert not result.ok
    assert result.fingerprint == key.fingerprint
    assert result.reason.startswith("BAD signature from Test Signer")
    assert "data does not match" in result.reason


def test_wrong_key_does_not_verify(key: SecretKey, other_key: SecretKey) -> None:
    signature = sign_detached(key, DATA)
    result = verify_detached([public_key_of(other_key)], DATA, signature)
    assert not result.ok
    assert "unknown key" in result.reason
    assert other_key.fingerprint in result.reason
    assert result.fingerprint == result.issuer


def test_no_keys_does_not_verify(key: SecretKey) -> None:
    result = verify_detached([], DATA, sign_detached(key, DATA))
    assert not result.ok
    assert "no verification key" in result.reason


def test_tampered_signature_does_not_verify(key: SecretKey) -> None:
    """A signature whose packet was altered (but still parses) is a bad result, not an error."""
    sig = parse_signature(sign_detached(key, DATA))
    raw = bytearray(bytes(sig))
    raw[-5] ^= 0x55  # inside the EdDSA signature value
    altered = pysequoia.armor(bytes(raw), pysequoia.ArmorKind.Signature)
    result = verify_detached([public_key_of(key)], DATA, altered)
    assert not result.ok
    assert "BAD signature" in result.reason


def test_only_the_first_signature_counts(key: SecretKey, other_key: SecretKey) -> None:
    """Like Kibana (``signatures[0]``): a second signature in the file is not looked at."""
    first = bytes(parse_signature(sign_detached(other_key, DATA)))
    second = bytes(parse_signature(sign_detached(key, DATA)))
    both = pysequoia.armor(first + second, pysequoia.ArmorKind.Signature)
    assert not verify_detached([public_key_of(key)], DATA, both).ok
    assert verify_detached([public_key_of(other_key)], DATA, both).ok


# --- unusable input --------------------------------------------------------------------------


BAD_SIGNATURES = {
    "garbage": b"garbage",
    "empty": b"",
    "binary": b"\x89\x00\xff\xfe",
    "armor-without-body": b"-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n",
    "bad-base64": b"-----BEGIN PGP SIGNATURE-----\n\n!!!!\n-----END PGP SIGNATURE-----\n",
}


@pytest.mark.parametrize("signature", BAD_SIGNATURES.values(), ids=BAD_SIGNATURES.keys())
def test_unusable_signatures_raise(key: SecretKey, signature: bytes) -> None:
    with pytest.raises(SignatureError, match="signature"):
        verify_detached([public_key_of(key)], DATA, signature)


def test_binary_signature_is_refused(key: SecretKey) -> None:
    """Kibana reads only armored signatures, so a binary one is unusable here too."""
    binary = bytes(parse_signature(sign_detached(key, DATA)))
    with pytest.raises(SignatureError, match="not ASCII-armored"):
        verify_detached([public_key_of(key)], DATA, binary)


def test_a_key_is_not_a_signature(key: SecretKey) -> None:
    with pytest.raises(SignatureError, match="found an OpenPGP key"):
        verify_detached([public_key_of(key)], DATA, public_key_of(key).armored)


def test_too_large_input_is_refused(key: SecretKey) -> None:
    with pytest.raises(SignatureError, match="too large"):
        verify_detached([public_key_of(key)], DATA, b"-" * (2 << 20))


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n",
    ],
    ids=["garbage", "empty", "corrupt-armor"],
)
def test_unusable_keys_raise(text: str) -> None:
    with pytest.raises(SignatureError, match="key"):
        load_public_key(text)
    with pytest.raises(SignatureError, match="key"):
        load_secret_key(text)


def test_a_signature_is_not_a_key(key: SecretKey) -> None:
    with pytest.raises(SignatureError, match="is a signature, not an OpenPGP key"):
        load_public_key(sign_detached(key, DATA))


def test_public_key_cannot_sign(key: SecretKey) -> None:
    with pytest.raises(SignatureError, match="public key; a secret key is needed"):
        load_secret_key(public_key_of(key).armored)


def test_two_keys_in_one_block_are_refused(key: SecretKey, other_key: SecretKey) -> None:
    two = public_key_of(key).armored + public_key_of(other_key).armored
    with pytest.raises(SignatureError, match="holds 2 keys"):
        load_public_key(two)


# --- the recorded fixture --------------------------------------------------------------------


def test_reference_fixture_sig_is_not_an_openpgp_signature(key: SecretKey) -> None:
    """``local-storage/example-1.0.1.zip.sig`` of the reference registry's test data is a
    placeholder (32 hex digits), not a real Elastic signature: the reference serves any bytes,
    this module refuses them as unusable input rather than calling them a bad signature."""
    path = FIXTURES / "local-storage" / "example-1.0.1.zip.sig"
    if not path.is_file():
        pytest.skip(f"fixture {path} not available")
    data = (FIXTURES / "local-storage" / "example-1.0.1.zip").read_bytes()
    with pytest.raises(SignatureError, match="not an ASCII-armored OpenPGP signature"):
        verify_detached([public_key_of(key)], data, path.read_bytes())


# --- interoperability with GnuPG -------------------------------------------------------------


class Gpg:
    """``gpg`` with its own home directory; its agent is stopped at the end."""

    def __init__(self, home: Path) -> None:
        assert GPG is not None
        self.home = home
        home.mkdir(mode=0o700)
        self.env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}

    def run(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(GPG), "--batch", "--no-tty", "--pinentry-mode", "loopback", *args],
            input=input,
            env=self.env,
            capture_output=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str, input: bytes | None = None) -> bytes:
        done = self.run(*args, input=input)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout

    def stop(self) -> None:
        gpgconf = shutil.which("gpgconf")
        if gpgconf:
            subprocess.run(
                [gpgconf, "--kill", "gpg-agent"], env=self.env, capture_output=True, check=False
            )


@pytest.fixture
def gpg(tmp_path: Path) -> Iterator[Gpg]:
    if GPG is None:
        pytest.skip("the system gpg binary is not installed")
    # a short home: the agent's socket path must fit in 108 bytes
    home = Path(f"/tmp/ps-gpg-{os.getpid()}-{tmp_path.name[-20:]}")
    shutil.rmtree(home, ignore_errors=True)
    runner = Gpg(home)
    yield runner
    runner.stop()
    shutil.rmtree(home, ignore_errors=True)


@needs_gpg
@pytest.mark.parametrize("algorithm", ["ed25519", "rsa3072"])
def test_gpg_verifies_our_signature(gpg: Gpg, tmp_path: Path, algorithm: str) -> None:
    secret = generate_key("Store Key <store@example.com>", algorithm=algorithm)
    gpg.ok("--import", input=public_key_of(secret).armored.encode())
    data_file = tmp_path / "pkg-1.0.0.zip"
    data_file.write_bytes(DATA)
    sig_file = tmp_path / "pkg-1.0.0.zip.sig"
    sig_file.write_bytes(sign_detached(secret, DATA))
    done = gpg.run("--status-fd", "1", "--verify", str(sig_file), str(data_file))
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"[GNUPG:] GOODSIG" in done.stdout
    assert f" {secret.fingerprint}".encode() in done.stdout  # VALIDSIG ends with the primary
    # and gpg notices tampering: the check is real
    data_file.write_bytes(DATA + b"x")
    bad = gpg.run("--status-fd", "1", "--verify", str(sig_file), str(data_file))
    assert bad.returncode != 0
    assert b"[GNUPG:] BADSIG" in bad.stdout


@needs_gpg
@pytest.mark.parametrize("algo", ["ed25519", "rsa3072"])
def test_our_code_verifies_a_gpg_signature(gpg: Gpg, tmp_path: Path, algo: str) -> None:
    gpg.ok("--passphrase", "", "--quick-gen-key", "GPG Signer <gpg@example.com>", algo, "sign")
    public = load_public_key(gpg.ok("--armor", "--export"))
    data_file = tmp_path / "data.zip"
    data_file.write_bytes(DATA)
    signature = gpg.ok("--passphrase", "", "--armor", "--detach-sign", "-o", "-", str(data_file))
    result = verify_detached([public], DATA, signature)
    assert result.ok, result.reason
    assert result.fingerprint == public.fingerprint
    assert not verify_detached([public], DATA[1:], signature).ok


@needs_gpg
def test_passphrase_protected_gpg_key(gpg: Gpg, tmp_path: Path) -> None:
    gpg.ok("--passphrase", "s3cret", "--quick-gen-key", "Locked <l@example.com>", "ed25519", "sign")
    armored = gpg.ok("--passphrase", "s3cret", "--armor", "--export-secret-keys").decode()
    with pytest.raises(SignatureError, match="protected by a passphrase and none was given"):
        load_secret_key(armored)
    with pytest.raises(SignatureError, match="passphrase does not unlock"):
        load_secret_key(armored, "wrong")
    secret = load_secret_key(armored, "s3cret")
    assert secret.protected
    with pytest.raises(SignatureError, match="protected"):  # kept as imported: still locked
        load_secret_key(secret.armored)
    data_file = tmp_path / "data"
    data_file.write_bytes(DATA)
    sig_file = tmp_path / "data.sig"
    sig_file.write_bytes(sign_detached(secret, DATA))
    gpg.ok("--verify", str(sig_file), str(data_file))
