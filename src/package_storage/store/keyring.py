"""The store's OpenPGP keys, and the two hooks publish/import call: :func:`sign_artifact` and
:func:`verify_artifact` / :func:`check_imported_signature`.

Where the keys live (every writer and replica of a store must see the same ones):

* **In the catalog** (``keystore``: ``storage/keystore.py``, table ``store_keys``): every
  store opened through ``store/directory.py``. A secret key is never stored in clear there:
  a passphrase-protected key is kept as it is; a key without a passphrase is sealed (an
  OpenPGP message encrypted with ``PACKAGE_STORAGE_KEY_PASSPHRASE``) or, instead, the catalog
  keeps the path of a key file the operator names (``keys generate|import --key-file``),
  which every writer then needs at that path. Public parts are stored beside, so verifying
  and ``keys export`` need no passphrase.
* **As files in the store directory** (``store_dir``; the layout of stores made before keys
  moved into the catalog, still read)::

    DIR/keys/                 mode 0700
    DIR/keys/signing.asc      the armored secret signing key, mode 0600 (as imported: still
                              passphrase-protected when it was)
    DIR/keys/trusted/FPR.asc  armored public keys trusted to verify imported signatures

  A directory store reads both (the catalog's signing key wins; trusted keys are the union).
  It keeps writing a key without passphrase, when no passphrase is set, to
  ``DIR/keys/signing.asc`` as before (a file of the store's own directory, mode 0600); every
  other key it writes goes to the catalog. A store without a directory (PostgreSQL) refuses
  a key it would have to store in clear, with the two ways to store it.

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
    is_sealed,
    load_public_key,
    load_secret_key,
    seal,
    sign_detached,
    unseal,
    verify_detached,
)
from package_storage.store.keyrecord import SIGNING, TRUSTED, KeyRecord, KeyStore

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
    """The signing key and trusted keys of a store: in ``keystore`` (the catalog) and/or as
    files under ``store_dir`` (see the module docstring). At least one of the two is given.

    ``passphrase`` unlocks a protected or sealed signing key; when None it is read from
    ``PACKAGE_STORAGE_KEY_PASSPHRASE`` in ``environ`` (default ``os.environ``) each time the
    key is loaded. ``actor`` is recorded with the keys written to the catalog.
    """

    def __init__(
        self,
        store_dir: str | Path | None,
        *,
        keystore: KeyStore | None = None,
        passphrase: str | None = None,
        environ: Mapping[str, str] | None = None,
        actor: str = "",
    ) -> None:
        if store_dir is None and keystore is None:
            raise ValueError("a keyring needs a store directory or a key store")
        self.store_dir = None if store_dir is None else Path(store_dir)
        self.keystore = keystore
        self._passphrase = passphrase
        self._environ = environ
        self._actor = actor

    # --- paths (the files of a directory store) ------------------------------------------

    @property
    def keys_dir(self) -> Path:
        if self.store_dir is None:
            raise StorageError("this store keeps its keys in its catalog, not in a folder")
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

    # --- records -------------------------------------------------------------------------

    def _records(self) -> list[KeyRecord]:
        return [] if self.keystore is None else self.keystore.records()

    def _signing_record(self) -> KeyRecord | None:
        return next((r for r in self._records() if r.role == SIGNING), None)

    def _legacy_signing(self) -> Path | None:
        if self.store_dir is None:
            return None
        path = self.signing_path
        return path if path.is_file() else None

    def signing_location(self) -> str:
        """Where the signing key is kept, for people (``catalog (sealed)``, a path, ...)."""
        record = self._signing_record()
        if record is not None:
            if record.path is not None:
                return f"key file {record.path} (its path in the catalog)"
            assert record.secret is not None
            if is_sealed(record.secret):
                return f"the catalog, encrypted with {PASSPHRASE_ENV}"
            return "the catalog, passphrase-protected"
        legacy = self._legacy_signing()
        return str(legacy) if legacy is not None else "nowhere (no signing key)"

    # --- signing key ---------------------------------------------------------------------

    def has_signing_key(self) -> bool:
        return self._signing_record() is not None or self._legacy_signing() is not None

    def signing_key_armored(self) -> str | None:
        """The secret key text (a sealed key opened with the passphrase; a protected key as
        it was imported), or None."""
        record = self._signing_record()
        if record is not None:
            if record.path is not None:
                return _read_text(Path(record.path))
            assert record.secret is not None
            if is_sealed(record.secret):
                return unseal(record.secret, self.passphrase(), what="the store's signing key")
            return record.secret
        legacy = self._legacy_signing()
        return None if legacy is None else _read_text(legacy)

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
            raise SignatureError(
                f"signing key in {self.signing_location()}: {exc.message}"
            ) from None

    def signing_public_key(self) -> PublicKey | None:
        """The public part of the signing key (no passphrase needed), or None."""
        record = self._signing_record()
        if record is not None:
            return load_public_key(record.public)
        legacy = self._legacy_signing()
        if legacy is None:
            return None
        try:
            return load_public_key(_read_text(legacy))
        except SignatureError as exc:
            raise SignatureError(f"signing key {legacy}: {exc.message}") from None

    def set_signing_key(
        self, armored: str | bytes, *, replace: bool = True, path: Path | None = None
    ) -> SecretKey:
        """Make ``armored`` (a secret key) the signing key; returns it, unlocked.

        ``path``: the key stays in that file (which holds ``armored``) and the catalog keeps
        only its path. The key must be usable now (a protected key needs its passphrase), so
        that publish does not fail later. With ``replace=False`` an existing key is refused
        (ConflictError). A key without passphrase is sealed with the passphrase when one is
        set, else written to ``DIR/keys/signing.asc`` in a directory store, else refused.
        """
        key = load_secret_key(armored, self.passphrase())
        if not replace and self.has_signing_key():
            current = self.signing_public_key()
            shown = current.fingerprint if current else self.signing_location()
            raise ConflictError(
                f"the store already has a signing key ({shown}); replacing it needs --force"
            )
        public = load_public_key(key.armored).armored
        if self.keystore is None:
            self._write_legacy_signing(key)
            return key
        record: KeyRecord | None = None
        if path is not None:
            record = KeyRecord(SIGNING, key.fingerprint, public, path=str(path.resolve()))
        elif key.protected:
            record = KeyRecord(SIGNING, key.fingerprint, public, secret=key.armored)
        elif self.passphrase() is not None:
            sealed = seal(key.armored, self.passphrase() or "")
            record = KeyRecord(SIGNING, key.fingerprint, public, secret=sealed)
        elif self.store_dir is None:
            raise SignatureError(
                f"signing key {key.fingerprint} has no passphrase and this store keeps its keys"
                f" in its catalog, which never holds a secret key in clear: set {PASSPHRASE_ENV}"
                " (the key is stored encrypted with it) or keep the key in a file every writer"
                " has (--key-file PATH)"
            )
        if record is None:
            stored = self._signing_record()
            if stored is not None:
                self.keystore.delete_key(SIGNING, stored.fingerprint)
            self._write_legacy_signing(key)
            return key
        self.keystore.put_key(
            KeyRecord(
                record.role,
                record.fingerprint,
                record.public,
                secret=record.secret,
                path=record.path,
                created_by=self._actor,
            )
        )
        legacy = self._legacy_signing()
        if legacy is not None:  # the catalog's key wins from now on: no stale secret beside it
            legacy.unlink(missing_ok=True)
        return key

    def _write_legacy_signing(self, key: SecretKey) -> None:
        self._ensure_keys_dir()
        try:
            _write_atomic(self.signing_path, key.armored, 0o600)
        except OSError as exc:
            raise StorageError(
                f"cannot write signing key {self.signing_path}: {exc.strerror or exc}"
            ) from exc

    def export_public(self) -> str:
        """The armored public key of the signing key (give it to Kibana). NotFoundError if none."""
        public = self.signing_public_key()
        if public is None:
            raise NotFoundError(
                "the store has no signing key: run `package-storage keys generate` "
                "or `package-storage keys import FILE`"
            )
        return public.armored

    # --- trusted keys --------------------------------------------------------------------

    def _legacy_trusted(self) -> list[tuple[Path, PublicKey]]:
        if self.store_dir is None or not self.trusted_dir.is_dir():
            return []
        keys: list[tuple[Path, PublicKey]] = []
        for path in sorted(self.trusted_dir.glob("*.asc")):
            try:
                keys.append((path, load_public_key(_read_text(path))))
            except SignatureError as exc:
                raise SignatureError(f"trusted key {path}: {exc.message}") from None
        return keys

    def trusted_keys(self) -> list[PublicKey]:
        """Trusted verification keys, by fingerprint. SignatureError naming a bad one."""
        found: dict[str, PublicKey] = {}
        for record in self._records():
            if record.role == TRUSTED:
                try:
                    found[record.fingerprint] = load_public_key(record.public)
                except SignatureError as exc:
                    raise SignatureError(
                        f"trusted key {record.fingerprint} in the catalog: {exc.message}"
                    ) from None
        for _, key in self._legacy_trusted():
            found.setdefault(key.fingerprint, key)
        return [found[f] for f in sorted(found)]

    def add_trusted(self, armored: str | bytes) -> PublicKey:
        """Trust a public key (a secret key is reduced to its public part). Idempotent."""
        key = load_public_key(armored)
        if self.keystore is not None:
            self.keystore.put_key(
                KeyRecord(TRUSTED, key.fingerprint, key.armored, created_by=self._actor)
            )
            return key
        self._ensure_keys_dir()
        path = self.trusted_dir / f"{key.fingerprint}.asc"
        try:
            self.trusted_dir.mkdir(mode=0o700, exist_ok=True)
            _write_atomic(path, key.armored, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot write trusted key {path}: {exc.strerror or exc}") from exc
        return key

    def remove_trusted(self, fingerprint: str) -> bool:
        """Stop trusting the key with this primary fingerprint (or 16-digit key ID); True when
        it was trusted."""
        wanted = fingerprint.replace(" ", "").upper()
        for key in self.trusted_keys():
            if key.fingerprint == wanted or (len(wanted) == 16 and key.key_id == wanted):
                if self.keystore is not None:
                    self.keystore.delete_key(TRUSTED, key.fingerprint)
                if self.store_dir is not None:
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

    def legacy_files(self) -> list[Path]:
        """The key files of the store directory (``DIR/keys``) this keyring reads."""
        files: list[Path] = []
        legacy = self._legacy_signing()
        if legacy is not None:
            files.append(legacy)
        files.extend(path for path, _ in self._legacy_trusted())
        return files


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
