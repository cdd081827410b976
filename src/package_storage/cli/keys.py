"""``package-storage keys generate|import|export|list|untrust`` and ``package-storage verify``.

The store keeps one OpenPGP signing key (in its catalog, never in clear: passphrase-protected,
sealed with ``PACKAGE_STORAGE_KEY_PASSPHRASE``, or the path of a key file named with
``--key-file``; a directory store without a passphrase keeps it in ``DIR/keys/signing.asc``,
mode 0600, as before; see ``store/keyring.py``): when it is set,
publish signs every artifact with an armored detached signature (``<name>-<version>.zip.sig``),
which Kibana verifies against the public key given to it
(``xpack.fleet.packageVerification.gpgKeyPath``: the output of ``keys export``). Trusted public
keys (in the catalog; ``DIR/keys/trusted/`` of older stores still read) verify the ``.sig`` files
that come with imported packages.

A passphrase-protected signing key is unlocked with ``PACKAGE_STORAGE_KEY_PASSPHRASE``.

Exit status: 0 when done, 1 when refused or when ``verify`` finds a missing or bad signature
(``error: <message>`` on stderr), 2 for usage errors.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from package_storage.cli.common import (
    StoreCommand,
    StoreURL,
    fail,
    open_operations,
    print_json,
    print_table,
    require_local,
    store_exists,
    store_option,
)
from package_storage.errors import NotFoundError

if TYPE_CHECKING:
    from package_storage.packages.signing import PublicKey
    from package_storage.store.keyring import StoreKeyring

_MAX_KEY_INPUT = 1 << 20

# signing.ALGORITHMS / DEFAULT_ALGORITHM, spelled out so that importing the CLI does not load the
# OpenPGP library (the other commands keep working without it); a test keeps them equal.
ALGORITHM_CHOICES = ("ed25519", "rsa3072", "rsa4096")
DEFAULT_ALGORITHM_CHOICE = "ed25519"


@contextmanager
def _keyring(store_dir: Path) -> Iterator[StoreKeyring]:
    require_local(store_dir, "keys")
    if not store_exists(store_dir):
        fail(
            f"no package store at {store_dir}: run `package-storage init --store {store_dir}` first"
        )
    try:
        import package_storage.packages.signing  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installation
        fail(f"OpenPGP support is not installed ({exc}): pip install pysequoia")
    from package_storage.store.locator import open_store

    with open_store(store_dir) as store:
        yield store.keyring()


def _write_secret_file(path: Path, text: str) -> None:
    """Write a secret key to a new file the operator named (mode 0600 from the start)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except FileExistsError:
        fail(f"key file {path} exists: name a new file (it is never overwritten)")
    except OSError as exc:
        fail(f"cannot write key file {path}: {exc.strerror or exc}")


def _default_user_id() -> str:
    return f"package-storage signing key <package-storage@{socket.gethostname() or 'localhost'}>"


def _key_json(key: PublicKey, role: str) -> dict[str, object]:
    return {
        "role": role,
        "fingerprint": key.fingerprint,
        "key_id": key.key_id,
        "algorithm": key.algorithm,
        "user_ids": list(key.user_ids),
    }


@click.group("keys")
def keys() -> None:
    """OpenPGP keys of the store: the signing key and trusted verification keys."""


@keys.command("generate", cls=StoreCommand)
@store_option
@click.option(
    "--user-id",
    default=None,
    metavar="'NAME <MAIL>'",
    help="User ID of the key (default: package-storage signing key <package-storage@HOST>).",
)
@click.option(
    "--algorithm",
    type=click.Choice(ALGORITHM_CHOICES, case_sensitive=False),
    default=DEFAULT_ALGORITHM_CHOICE,
    show_default=True,
    help="ed25519 (fast, verified by Kibana 8.x and gpg >= 2.1) or RSA (Elastic's own key is RSA 4096).",
)
@click.option("--force", is_flag=True, help="Replace the existing signing key.")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="PATH",
    help="Write the secret key to this new file (mode 0600) and keep only its path in the"
    " catalog: every writer then needs the file at this path.",
)
def generate(
    store_dir: Path, user_id: str | None, algorithm: str, force: bool, key_file: Path | None
) -> None:
    """Generate the store's signing key.

    It is stored encrypted with PACKAGE_STORAGE_KEY_PASSPHRASE when that is set, else in the
    file given by --key-file; a directory store without either keeps it in DIR/keys (mode
    0600); a database store refuses to keep it in clear.
    """
    with _keyring(store_dir) as keyring:
        from package_storage.packages.signing import generate_key

        if keyring.has_signing_key() and not force:
            current = keyring.signing_public_key()
            shown = current.fingerprint if current is not None else keyring.signing_location()
            fail(
                f"the store already has a signing key ({shown}); use --force to replace it "
                "(signatures made with it will no longer verify with the new public key)"
            )
        secret = generate_key(user_id or _default_user_id(), algorithm=algorithm)
        if key_file is not None:
            _write_secret_file(key_file, secret.armored)
        try:
            keyring.set_signing_key(secret.armored, replace=True, path=key_file)
        except BaseException:
            if key_file is not None:
                key_file.unlink(missing_ok=True)
            raise
        click.echo(f"generated {algorithm} signing key {secret.fingerprint}")
        click.echo(f"  user ID: {secret.user_ids[0] if secret.user_ids else ''}")
        click.echo(f"  stored in {keyring.signing_location()}")
    click.echo("give Kibana the public key: package-storage keys export -o package-storage.asc")


@keys.command("import", cls=StoreCommand)
@store_option
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--trusted",
    is_flag=True,
    help="Trust the key to verify imported signatures (a secret key: only its public part).",
)
@click.option("--force", is_flag=True, help="Replace the existing signing key.")
@click.option(
    "--key-file",
    "keep_file",
    is_flag=True,
    help="A secret key stays in FILE: the catalog keeps only FILE's absolute path (every"
    " writer needs the file there).",
)
def import_key(store_dir: Path, file: Path, trusted: bool, force: bool, keep_file: bool) -> None:
    """Import an armored key: a secret key becomes the signing key, a public key (or any key
    with --trusted) a trusted verification key. FILE may be - for standard input.

    A secret key is stored as it is when passphrase-protected, else encrypted with
    PACKAGE_STORAGE_KEY_PASSPHRASE, else (--key-file) by its path.
    """
    if keep_file and str(file) == "-":
        fail("--key-file keeps the key in FILE: standard input (-) has no path")
    with _keyring(store_dir) as keyring:
        _import_into(keyring, file, trusted=trusted, force=force, keep_file=keep_file)


def _import_into(
    keyring: StoreKeyring, file: Path, *, trusted: bool, force: bool, keep_file: bool
) -> None:
    if str(file) == "-":
        data = sys.stdin.buffer.read(_MAX_KEY_INPUT + 1)
    else:
        try:
            with file.open("rb") as handle:
                data = handle.read(_MAX_KEY_INPUT + 1)
        except OSError as exc:
            fail(f"cannot read key file {file}: {exc.strerror or exc}")
    if len(data) > _MAX_KEY_INPUT:
        fail(f"key file {file} is larger than {_MAX_KEY_INPUT} bytes: not an OpenPGP key")
    from package_storage.packages.signing import is_secret_key

    if is_secret_key(data) and not trusted:
        secret = keyring.set_signing_key(data, replace=force, path=file if keep_file else None)
        protected = " (passphrase-protected)" if secret.protected else ""
        click.echo(f"imported signing key {secret.fingerprint}{protected}")
        click.echo(f"  stored in {keyring.signing_location()}")
        return
    if keep_file:
        fail("--key-file is for a secret signing key; a public key is stored in the catalog")
    public = keyring.add_trusted(data)
    click.echo(f"trusted key {public.describe()}")


@keys.command("export", cls=StoreCommand)
@store_option
@click.option("--secret", is_flag=True, help="Export the secret signing key (handle with care).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to FILE instead of standard output (a secret key gets mode 0600).",
)
def export_key(store_dir: Path, secret: bool, output: Path | None) -> None:
    """Export the signing key: its public part (for Kibana, gpg --import) by default."""
    with _keyring(store_dir) as keyring:
        if secret:
            text = keyring.signing_key_armored()
            if text is None:
                raise NotFoundError("the store has no signing key")
        else:
            text = keyring.export_public()
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    mode = 0o600 if secret else 0o644
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
        if secret:
            os.chmod(output, 0o600)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    click.echo(f"wrote {'secret' if secret else 'public'} key to {output}", err=True)


@keys.command("list", cls=StoreCommand)
@store_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
def list_keys(store_dir: Path, as_json: bool) -> None:
    """Show the signing key and the trusted keys."""
    listed: list[tuple[str, PublicKey]] = []
    with _keyring(store_dir) as keyring:
        signing = keyring.signing_public_key()
        if signing is not None:
            listed.append(("signing", signing))
        listed.extend(("trusted", key) for key in keyring.trusted_keys())
    if as_json:
        print_json([_key_json(key, role) for role, key in listed])
        return
    if not listed:
        click.echo("no keys: run `package-storage keys generate` to sign published artifacts")
        return
    print_table(
        None,
        ("role", "fingerprint", "algorithm", "user IDs"),
        [(role, key.fingerprint, key.algorithm, ", ".join(key.user_ids)) for role, key in listed],
    )


@keys.command("untrust", cls=StoreCommand)
@store_option
@click.argument("fingerprint")
def untrust(store_dir: Path, fingerprint: str) -> None:
    """Stop trusting the key with FINGERPRINT (40 hex digits, or its 16-digit key ID)."""
    with _keyring(store_dir) as keyring:
        if not keyring.remove_trusted(fingerprint):
            raise NotFoundError(f"no trusted key {fingerprint} in the store")
    click.echo(f"no longer trusted: {fingerprint}")


@click.command("verify", cls=StoreCommand)
@store_option
@click.argument("name")
@click.argument("version")
@click.option(
    "--stage", default=None, metavar="STAGE", help="Only the copy in STAGE (default: every stage)."
)
def verify(store_dir: Path, name: str, version: str, stage: str | None) -> None:
    """Verify the stored signature of NAME VERSION against the store's keys.

    Exit 1 when the version is missing, has no signature, or a signature does not verify.
    """
    if not isinstance(store_dir, StoreURL):
        with _keyring(store_dir):  # a store, and OpenPGP support installed
            pass
    with open_operations(store_dir) as store:
        checks = store.service.verify(name, version, stage=stage)
    failures = 0
    for check in checks:
        label = f"{name}-{version} [{check.stage}]"
        if check.state == "missing":
            click.echo(f"{label}: MISSING signature (the artifact is not signed)")
        elif check.state == "bad":
            click.echo(f"{label}: BAD signature file: {check.reason}")
        else:
            click.echo(f"{label}: {'OK' if check.ok else 'FAILED'}: {check.reason}")
        failures += not check.ok
    if failures:
        fail(f"{failures} of {len(checks)} signature(s) of {name} {version} did not verify")


__all__ = ["keys", "verify"]
