"""The store's keys as the catalog keeps them: :class:`KeyRecord` and the :class:`KeyStore`
protocol the keyring reads and writes them through (pure: no I/O).

The keyring (``keyring.py``) and the catalog (``storage/``) may not import each other; both
import this module. ``storage/keystore.py`` implements :class:`KeyStore` over the catalog's
``store_keys`` table, so every writer and replica of a store sees the same keys.

A secret key is never kept in clear here. A signing key record holds either

* ``secret``: the key as an armored OpenPGP text that needs the passphrase
  (``PACKAGE_STORAGE_KEY_PASSPHRASE``) to be used: a passphrase-protected secret key (as
  ``gpg --export-secret-keys --armor`` writes it), or a key without one sealed in an
  armored OpenPGP message encrypted with the passphrase (``signing.seal``); or
* ``path``: the absolute path of a file the operator named, holding the armored key (every
  writer needs that file at that path; the catalog holds only the path).

Every record also holds the armored public key (``public``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

SIGNING = "signing"
TRUSTED = "trusted"
ROLES = (SIGNING, TRUSTED)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key of the store. ``fingerprint``: the primary key's, 40 upper-case hex digits;
    ``public``: the armored public key (for every record: verifying and exporting the public
    key never need the passphrase). A signing key also has exactly one of ``secret`` (the
    protected or sealed armored key) and ``path`` (the key file the operator named)."""

    role: str
    fingerprint: str
    public: str
    secret: str | None = None
    path: str | None = None
    created: datetime | None = None
    created_by: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"key role {self.role!r} is not one of {', '.join(ROLES)}")
        if self.role == SIGNING and (self.secret is None) == (self.path is None):
            raise ValueError("a signing key record holds either the secret key or a path")
        if self.role == TRUSTED and (self.secret is not None or self.path is not None):
            raise ValueError("a trusted key record holds only the public key")

    def __repr__(self) -> str:  # never the key text
        where = f", path={self.path!r}" if self.path is not None else ""
        return f"KeyRecord({self.role}, {self.fingerprint}{where})"


class KeyStore(Protocol):
    """Where a store keeps its :class:`KeyRecord` s (the catalog)."""

    def records(self) -> list[KeyRecord]:
        """Every key: the signing key first (at most one), then trusted keys by fingerprint."""
        ...

    def put_key(self, record: KeyRecord) -> None:
        """Store ``record``: a signing key replaces the signing key; a trusted key replaces the
        trusted key with its fingerprint."""
        ...

    def delete_key(self, role: str, fingerprint: str) -> bool:
        """Remove the key; True when it was there."""
        ...


class StaticKeyStore:
    """A read-only :class:`KeyStore` holding fixed records: what a catalog key store becomes
    when it is sent to a worker process (the keys as they were when sent; workers only read)."""

    def __init__(self, records: tuple[KeyRecord, ...]) -> None:
        self._records = records

    def records(self) -> list[KeyRecord]:
        return list(self._records)

    def put_key(self, record: KeyRecord) -> None:
        raise RuntimeError("the keys of a worker process are a read-only copy")

    def delete_key(self, role: str, fingerprint: str) -> bool:
        raise RuntimeError("the keys of a worker process are a read-only copy")


__all__ = ["ROLES", "SIGNING", "TRUSTED", "KeyRecord", "KeyStore", "StaticKeyStore"]
