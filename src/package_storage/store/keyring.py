"""The store's OpenPGP keys, and the two hooks publish/import call: :func:`sign_artifact` and
:func:`verify_artifact` / :func:`check_imported_signature`.

Layout inside the store directory ``DIR``::

    DIR/keys/                 mode 0700
    DIR/keys/signing.asc      the armored secret signing key, mode 0600 (as imported: still
                              passphrase-protected when it was; the passphrase comes from
                              PACKAGE_STORAGE_KEY_PASSPHRASE when the key is used)
    DIR/keys/trusted/FPR.asc  armored public keys trusted to verify imported signatures
                              (e.g. Elastic's package key), one file per primary fingerprint

Files are replaced atomically (temporary file + fsync + rename), so a reader never sees half a
key. Signatures are checked against the signing key's public part and every trusted key.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from package_storage.errors import ConflictError, NotFoundError, SignatureError, StorageError
from package_storage.packages.signing import (
    PublicKey,
    SecretKey,
    Verification,
    load_public_key,
    load_secret_key,
    sign_detached,
    verify_detached,
)

PASSPHRASE_ENV = "PACKAGE_STORAGE_KEY_PASSPHRASE"
KEYS_DIR = "keys"
SIGNING_FILE = "signing.asc"
TRUSTED_DIR = "trusted"

_MAX_KEY_FILE = 1 << 20


def _write_atomic(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` with permission ``mode`` (never wider, even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platform without directory fds
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > _MAX_KEY_FILE:
            raise SignatureError(f"key file {path} is {size} bytes: too large for an OpenPGP key")
        return path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise SignatureError(f"key file {path} is not ASCII-armored OpenPGP") from None
    except OSError as exc:
        raise StorageError(f"cannot read key file {path}: {exc.strerror or exc}") from exc


class StoreKeyring:
    """The signing key and trusted keys of the store in ``store_dir``.

    ``passphrase`` unlocks a protected signing key; when None it is read from
    ``PACKAGE_STORAGE_KEY_PASSPHRASE`` in ``environ`` (default ``os.environ``) each time the
    key is loaded.
    """

    def __init__(
        self,
        store_dir: str | Path,
        *,
        passphrase: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.store_dir = Path(store_dir)
        self._passphrase = passphrase
        self._environ = environ

    # --- paths ---------------------------------------------------------------------------

    @property
    def keys_dir(self) -> Path:
        return self.store_dir / KEYS_DIR

    @property
    def signing_path(self) -> Path:
        return self.keys_dir / SIGNING_FILE

    @property
    def trusted_dir(self) -> Path:
        return self.keys_dir / TRUSTED_DIR

    def _ensure_keys_dir(self) -> None:
        try:
            self.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.keys_dir, 0o700)
        except OSError as exc:
            raise StorageError(
                f"cannot create key folder {self.keys_dir}: {exc.strerror or exc}"
            ) from exc

    def passphrase(self) -> str | None:
        if self._passphrase is not None:
            return self._passphrase
        env = os.environ if self._environ is None else self._environ
        return env.get(PASSPHRASE_ENV) or None

    # --- signing key ---------------------------------------------------------------------

    def has_signing_key(self) -> bool:
        return self.signing_path.is_file()

    def signing_key_armored(self) -> str | None:
        """The stored secret key text (as imported, possibly protected), or None."""
        if not self.has_signing_key():
            return None
        return _read_text(self.signing_path)

    def signing_key(self) -> SecretKey | None:
        """The unlocked signing key, or None when none is configured.

        SignatureError when the stored key cannot be used (bad file, passphrase missing/wrong).
        """
        text = self.signing_key_armored()
        if text is None:
            return None
        try:
            return load_secret_key(text, self.passphrase())
        except SignatureError as exc:
            raise SignatureError(f"signing key {self.signing_path}: {exc.message}") from None

    def signing_public_key(self) -> PublicKey | None:
        """The public part of the signing key (no passphrase needed), or None."""
        text = self.signing_key_armored()
        if text is None:
            return None
        try:
            return load_public_key(text)
        except SignatureError as exc:
            raise SignatureError(f"signing key {self.signing_path}: {exc.message}") from None

    def set_signing_key(self, armored: str | bytes, *, replace: bool = True) -> SecretKey:
        """Make ``armored`` (a secret key) the signing key; returns it, unlocked.

        The key must be usable now (a protected key needs its passphrase), so that publish does
        not fail later. With ``replace=False`` an existing key is refused (ConflictError).
        """
        key = load_secret_key(armored, self.passphrase())
        if not replace and self.has_signing_key():
            current = self.signing_public_key()
            shown = current.fingerprint if current else str(self.signing_path)
            raise ConflictError(
                f"the store already has a signing key ({shown}); replacing it needs --force"
            )
        self._ensure_keys_dir()
        try:
            _write_atomic(self.signing_path, key.armored, 0o600)
        except OSError as exc:
            raise StorageError(
                f"cannot write signing key {self.signing_path}: {exc.strerror or exc}"
            ) from exc
        return key

    def export_public(self) -> str:
        """The armored public key of the signing key (give it to Kibana). NotFoundError if none."""
        public = self.signing_public_key()
        if public is None:
            raise NotFoundError(
                f"no signing key in {self.keys_dir}: run `package-storage keys generate` "
                "or `package-storage keys import FILE`"
            )
        return public.armored

    # --- trusted keys --------------------------------------------------------------------

    def trusted_keys(self) -> list[PublicKey]:
        """Trusted verification keys, by fingerprint. SignatureError naming a bad file."""
        if not self.trusted_dir.is_dir():
            return []
        keys: list[PublicKey] = []
        for path in sorted(self.trusted_dir.glob("*.asc")):
            try:
                keys.append(load_public_key(_read_text(path)))
            except SignatureError as exc:
                raise SignatureError(f"trusted key {path}: {exc.message}") from None
        return keys

    def add_trusted(self, armored: str | bytes) -> PublicKey:
        """Trust a public key (a secret key is reduced to its public part). Idempotent."""
        key = load_public_key(armored)
        self._ensure_keys_dir()
        path = self.trusted_dir / f"{key.fingerprint}.asc"
        try:
            self.trusted_dir.mkdir(mode=0o700, exist_ok=True)
            _write_atomic(path, key.armored, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot write trusted key {path}: {exc.strerror or exc}") from exc
        return key

    def remove_trusted(self, fingerprint: str) -> bool:
        """Stop trusting the key with this primary fingerprint; True when it was trusted."""
        wanted = fingerprint.replace(" ", "").upper()
        for key in self.trusted_keys():
            if key.fingerprint == wanted or (len(wanted) == 16 and key.key_id == wanted):
                (self.trusted_dir / f"{key.fingerprint}.asc").unlink(missing_ok=True)
                return True
        return False

    def verification_keys(self) -> list[PublicKey]:
        """The signing key's public part (when configured) and every trusted key."""
        keys: list[PublicKey] = []
        signing = self.signing_public_key()
        if signing is not None:
            keys.append(signing)
        seen = {k.fingerprint for k in keys}
        keys.extend(k for k in self.trusted_keys() if k.fingerprint not in seen)
        return keys


# --- hooks for publish / import --------------------------------------------------------------


def sign_artifact(keyring: StoreKeyring, data: bytes) -> bytes | None:
    """The armored detached signature of an artifact, or None when no signing key is set.

    SignatureError when a key is configured but cannot be used (publish must then fail rather
    than store an unsigned artifact).
    """
    key = keyring.signing_key()
    if key is None:
        return None
    return sign_detached(key, data)


def verify_artifact(keyring: StoreKeyring, data: bytes, sig: bytes | str) -> Verification:
    """Check a signature against the signing key's public part and the trusted keys.

    Never raises for a bad signature (``ok=False`` with a reason); SignatureError when ``sig``
    is not an armored signature or a stored key file is unusable.
    """
    return verify_detached(keyring.verification_keys(), data, sig)


def check_imported_signature(
    keyring: StoreKeyring, data: bytes, sig: bytes | str, *, label: str
) -> Verification | None:
    """The rule for a ``.sig`` that comes with a published/imported package.

    When trusted keys are configured, the signature must verify (against them or the signing
    key): otherwise SignatureError ``"<label>: signature refused: <reason>"``. Without trusted
    keys it is not checked (None), only required to be an armored signature.
    """
    if not keyring.trusted_keys():
        try:
            verify_detached([], data, sig)  # parses: unusable input raises
        except SignatureError as exc:
            raise SignatureError(f"{label}: {exc.message}") from None
        return None
    try:
        result = verify_artifact(keyring, data, sig)
    except SignatureError as exc:
        raise SignatureError(f"{label}: {exc.message}") from None
    if not result.ok:
        raise SignatureError(f"{label}: signature refused: {result.reason}")
    return result


__all__ = [
    "PASSPHRASE_ENV",
    "StoreKeyring",
    "check_imported_signature",
    "sign_artifact",
    "verify_artifact",
]
