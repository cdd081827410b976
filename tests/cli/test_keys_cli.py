"""``package-storage keys ...`` and ``package-storage verify`` through click's CliRunner.

Signed artifacts are put into the store directly through the catalog and blob store (a local
stand-in for publish, which calls ``keyring.sign_artifact`` once integrated).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from package_storage.cli.main import main
from package_storage.packages.signing import (
    SecretKey,
    generate_key,
    load_public_key,
    public_key_of,
    sign_detached,
    verify_detached,
)
from package_storage.store.directory import STORE_ENV, Store
from package_storage.store.keyring import PASSPHRASE_ENV, StoreKeyring
from package_storage.store.storage.base import ArtifactRecord
from package_storage.store.storage.keystore import CatalogKeyStore

ZIP = b"PK\x03\x04 the zip of hello-1.0.0" * 40


def run(store: Path, *args: str, input: str | bytes | None = None) -> Result:
    runner = CliRunner()
    env = {STORE_ENV: str(store), PASSPHRASE_ENV: ""}
    return runner.invoke(main, list(args), input=input, env=env, catch_exceptions=False)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    Store.init(directory).close()
    return directory


@pytest.fixture(scope="module")
def foreign() -> SecretKey:
    return generate_key("Elastic stand-in <packages@example.com>")


def put_artifact(
    store: Path, name: str, version: str, data: bytes, sig: bytes | None, stage: str = "snapshot"
) -> None:
    with Store.open(store) as opened:
        digest = opened.blobs.put(data)
        sig_digest = opened.blobs.put(sig) if sig is not None else None
        with opened.catalog.transaction() as tx:
            tx.add_artifact(
                ArtifactRecord(digest, len(data), name, version, signature_digest=sig_digest)
            )
            tx.put_entry(stage, name, version, digest, actor="test")


# --- keys ------------------------------------------------------------------------------------


def test_commands_need_a_store(tmp_path: Path) -> None:
    result = run(tmp_path / "nowhere", "keys", "list")
    assert result.exit_code == 1
    assert "no package store at" in result.stderr and "package-storage init" in result.stderr
    assert not (tmp_path / "nowhere").exists()


def test_generate_list_export(store: Path) -> None:
    result = run(store, "keys", "generate", "--user-id", "Ops <ops@example.com>")
    assert result.exit_code == 0, result.output
    assert "generated ed25519 signing key" in result.stdout
    keyring = StoreKeyring(store)
    public = keyring.signing_public_key()
    assert public is not None and public.user_ids == ("Ops <ops@example.com>",)
    assert stat.S_IMODE(keyring.signing_path.stat().st_mode) == 0o600

    listed = run(store, "keys", "list", "--json")
    assert listed.exit_code == 0
    assert json.loads(listed.stdout) == [
        {
            "role": "signing",
            "fingerprint": public.fingerprint,
            "key_id": public.fingerprint[-16:],
            "algorithm": "EdDSA",
            "user_ids": ["Ops <ops@example.com>"],
        }
    ]
    table = run(store, "keys", "list")
    assert public.fingerprint in table.stdout and "signing" in table.stdout

    exported = run(store, "keys", "export")
    assert exported.exit_code == 0
    assert exported.stdout == public.armored
    assert "PRIVATE" not in exported.stdout


def test_generate_refuses_to_replace_without_force(store: Path) -> None:
    assert run(store, "keys", "generate").exit_code == 0
    first = StoreKeyring(store).signing_public_key()
    assert first is not None
    again = run(store, "keys", "generate")
    assert again.exit_code == 1
    assert f"already has a signing key ({first.fingerprint})" in again.stderr
    assert "--force" in again.stderr
    assert StoreKeyring(store).signing_public_key() == first
    forced = run(store, "keys", "generate", "--force", "--algorithm", "rsa3072")
    assert forced.exit_code == 0, forced.output
    second = StoreKeyring(store).signing_public_key()
    assert second is not None and second.fingerprint != first.fingerprint
    assert second.algorithm == "RSA"


def test_generate_rejects_unknown_algorithm(store: Path) -> None:
    result = run(store, "keys", "generate", "--algorithm", "dsa")
    assert result.exit_code == 2
    assert "ed25519" in result.stderr


def test_export_secret_to_file(store: Path, tmp_path: Path) -> None:
    run(store, "keys", "generate")
    out = tmp_path / "secret.asc"
    result = run(store, "keys", "export", "--secret", "-o", str(out))
    assert result.exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text() == StoreKeyring(store).signing_key_armored()
    public_out = tmp_path / "public.asc"
    assert run(store, "keys", "export", "-o", str(public_out)).exit_code == 0
    assert load_public_key(public_out.read_text()).fingerprint == (
        StoreKeyring(store).signing_public_key().fingerprint  # type: ignore[union-attr]
    )


def test_export_without_key_fails(store: Path) -> None:
    result = run(store, "keys", "export")
    assert result.exit_code == 1
    assert "no signing key" in result.stderr and "keys generate" in result.stderr


def test_import_secret_public_and_trusted(store: Path, tmp_path: Path, foreign: SecretKey) -> None:
    mine = generate_key("Mine <mine@example.com>")
    secret_file = tmp_path / "mine.asc"
    secret_file.write_text(mine.armored)
    result = run(store, "keys", "import", str(secret_file))
    assert result.exit_code == 0, result.output
    assert f"imported signing key {mine.fingerprint}" in result.stdout
    # a second secret key does not replace it silently
    other = tmp_path / "other.asc"
    other.write_text(foreign.armored)
    refused = run(store, "keys", "import", str(other))
    assert refused.exit_code == 1 and "--force" in refused.stderr
    # with --trusted a secret key contributes only its public part
    trusted = run(store, "keys", "import", str(other), "--trusted")
    assert trusted.exit_code == 0
    assert f"trusted key Elastic stand-in <packages@example.com> ({foreign.fingerprint})" in (
        trusted.stdout
    )
    with Store.open(store) as opened:  # trusted keys live in the catalog now
        records = {r.fingerprint: r for r in CatalogKeyStore(opened.catalog).records()}
    assert records[foreign.fingerprint].role == "trusted"
    assert "PRIVATE" not in records[foreign.fingerprint].public
    assert not (store / "keys" / "trusted").exists()
    # a public key from standard input is trusted without --trusted
    third = generate_key("Third")
    via_stdin = run(store, "keys", "import", "-", input=public_key_of(third).armored)
    assert via_stdin.exit_code == 0, via_stdin.output
    listed = json.loads(run(store, "keys", "list", "--json").stdout)
    assert [(k["role"], k["fingerprint"]) for k in listed] == [
        ("signing", mine.fingerprint),
        *sorted([("trusted", foreign.fingerprint), ("trusted", third.fingerprint)]),
    ]
    assert StoreKeyring(store).signing_public_key().fingerprint == mine.fingerprint  # type: ignore[union-attr]
    # untrust
    assert run(store, "keys", "untrust", third.fingerprint).exit_code == 0
    missing = run(store, "keys", "untrust", third.fingerprint)
    assert missing.exit_code == 1 and "no trusted key" in missing.stderr


@pytest.mark.parametrize("content", [b"garbage", b"", b"\xff\xfe binary"])
def test_import_garbage_fails(store: Path, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key.asc"
    path.write_bytes(content)
    result = run(store, "keys", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "OpenPGP" in result.stderr
    assert not (store / "keys" / "signing.asc").exists()


def test_import_missing_file_fails(store: Path, tmp_path: Path) -> None:
    result = run(store, "keys", "import", str(tmp_path / "absent.asc"))
    assert result.exit_code == 1
    assert "cannot read key file" in result.stderr


# --- verify ----------------------------------------------------------------------------------


def test_verify_good_missing_and_bad(store: Path, foreign: SecretKey) -> None:
    assert run(store, "keys", "generate").exit_code == 0
    keyring = StoreKeyring(store)
    signer = keyring.signing_key()
    assert signer is not None
    put_artifact(store, "hello", "1.0.0", ZIP, sign_detached(signer, ZIP))
    put_artifact(store, "unsigned", "1.0.0", ZIP + b"u", None)
    put_artifact(store, "tampered", "1.0.0", ZIP + b"t", sign_detached(signer, ZIP))
    put_artifact(store, "foreign", "1.0.0", ZIP + b"f", sign_detached(foreign, ZIP + b"f"))

    good = run(store, "verify", "hello", "1.0.0")
    assert good.exit_code == 0, good.output
    assert good.stdout.startswith("hello-1.0.0 [snapshot]: OK: good signature from")
    assert signer.fingerprint in good.stdout
    assert run(store, "verify", "hello", "1.0.0", "--stage", "snapshot").exit_code == 0

    unsigned = run(store, "verify", "unsigned", "1.0.0")
    assert unsigned.exit_code == 1
    assert "MISSING signature" in unsigned.stdout

    tampered = run(store, "verify", "tampered", "1.0.0")
    assert tampered.exit_code == 1
    assert "FAILED: BAD signature" in tampered.stdout
    assert "did not verify" in tampered.stderr

    unknown = run(store, "verify", "foreign", "1.0.0")
    assert unknown.exit_code == 1
    assert "unknown key" in unknown.stdout
    # trusting the foreign key makes it verify
    path = store.parent / "foreign.asc"
    path.write_text(public_key_of(foreign).armored)
    assert run(store, "keys", "import", str(path)).exit_code == 0
    assert run(store, "verify", "foreign", "1.0.0").exit_code == 0


def test_verify_not_found(store: Path) -> None:
    assert run(store, "keys", "generate").exit_code == 0
    missing = run(store, "verify", "nope", "1.0.0")
    assert missing.exit_code == 1
    assert "nope 1.0.0 is not in the store" in missing.stderr
    wrong_stage = run(store, "verify", "nope", "1.0.0", "--stage", "nowhere")
    assert wrong_stage.exit_code == 1
    assert "stage nowhere does not exist" in wrong_stage.stderr


def test_verify_without_keys_fails(store: Path) -> None:
    put_artifact(store, "hello", "1.0.0", ZIP, None)
    result = run(store, "verify", "hello", "1.0.0")
    assert result.exit_code == 1
    assert "no keys to verify with" in result.stderr


def test_verify_reports_an_unusable_sig_file(store: Path) -> None:
    assert run(store, "keys", "generate").exit_code == 0
    put_artifact(store, "hello", "1.0.0", ZIP, b"e16ddaf4f91df524b27bf4f2e4b1ac09\n")
    result = run(store, "verify", "hello", "1.0.0")
    assert result.exit_code == 1
    assert "BAD signature file: signature is not an ASCII-armored" in result.stdout


def test_verify_every_stage(store: Path) -> None:
    assert run(store, "keys", "generate").exit_code == 0
    signer = StoreKeyring(store).signing_key()
    assert signer is not None
    put_artifact(store, "hello", "1.0.0", ZIP, sign_detached(signer, ZIP), stage="snapshot")
    put_artifact(store, "hello", "1.0.0", ZIP + b"2", None, stage="staging")
    result = run(store, "verify", "hello", "1.0.0")
    assert result.exit_code == 1
    assert "hello-1.0.0 [snapshot]: OK" in result.stdout
    assert "hello-1.0.0 [staging]: MISSING" in result.stdout
    assert "1 of 2 signature(s)" in result.stderr
    assert run(store, "verify", "hello", "1.0.0", "--stage", "snapshot").exit_code == 0


def test_signature_verifies_after_export_round_trip(store: Path, tmp_path: Path) -> None:
    """What Kibana does: read the exported public key file, verify the zip's .sig with it."""
    assert run(store, "keys", "generate").exit_code == 0
    key_file = tmp_path / "kibana-key.asc"
    assert run(store, "keys", "export", "-o", str(key_file)).exit_code == 0
    signer = StoreKeyring(store).signing_key()
    assert signer is not None
    signature = sign_detached(signer, ZIP)
    assert verify_detached([load_public_key(key_file.read_text())], ZIP, signature).ok


def test_cli_algorithm_choices_match_signing() -> None:
    """cli/keys.py spells the choices out (the CLI loads without the OpenPGP library)."""
    from package_storage.cli.keys import ALGORITHM_CHOICES, DEFAULT_ALGORITHM_CHOICE
    from package_storage.packages.signing import ALGORITHMS, DEFAULT_ALGORITHM

    assert ALGORITHM_CHOICES == ALGORITHMS
    assert DEFAULT_ALGORITHM.value == DEFAULT_ALGORITHM_CHOICE
