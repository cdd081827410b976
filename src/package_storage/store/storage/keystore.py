"""The store's keys in its catalog: :class:`CatalogKeyStore`, the
:class:`~package_storage.store.keyrecord.KeyStore` over the ``store_keys`` table.

Every writer and replica of a store reads the same table, so they all sign with the same key
and trust the same keys. Writes take the catalog's write lock (one writer at a time, as for
every other change); what the rows may hold (never a secret key in clear) is the keyring's
rule (``store/keyring.py``), checked again here for the one thing that matters most.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from package_storage.errors import SignatureError, StorageError
from package_storage.packages.signing import is_sealed, load_secret_key
from package_storage.store.keyrecord import SIGNING, KeyRecord, StaticKeyStore
from package_storage.store.storage import schema as s
from package_storage.store.storage.sqlite import SQLCatalog


def _clear_secret(text: str) -> bool:
    """True when ``text`` is a secret key usable without a passphrase (not sealed, not
    protected): such a key never goes into the catalog."""
    if is_sealed(text):
        return False
    try:
        load_secret_key(text, None)
    except SignatureError:
        return False
    return True


class CatalogKeyStore:
    """:class:`~package_storage.store.keyrecord.KeyStore` over a SQL catalog's ``store_keys``."""

    def __init__(self, catalog: SQLCatalog) -> None:
        self._catalog = catalog

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (sent to a worker process, e.g. the importer's pool) as a read-only copy of
        the keys: a catalog connection cannot cross processes."""
        return (StaticKeyStore, (tuple(self.records()),))

    def records(self) -> list[KeyRecord]:
        k = s.store_keys
        with self._catalog.engine.connect() as conn:
            rows = conn.execute(select(k).order_by(k.c.role, k.c.fingerprint)).all()
        records = [
            KeyRecord(
                role=r.role,
                fingerprint=r.fingerprint,
                public=r.public,
                secret=r.secret,
                path=r.path,
                created=r.created,
                created_by=r.created_by,
            )
            for r in rows
        ]
        return sorted(records, key=lambda r: (r.role != SIGNING, r.fingerprint))

    def put_key(self, record: KeyRecord) -> None:
        if record.secret is not None and _clear_secret(record.secret):
            raise StorageError("refusing to store a secret key that is not protected")
        k = s.store_keys
        with self._catalog.write_connection() as conn:
            if record.role == SIGNING:
                conn.execute(delete(k).where(k.c.role == SIGNING))
            else:
                conn.execute(
                    delete(k).where(k.c.role == record.role, k.c.fingerprint == record.fingerprint)
                )
            conn.execute(
                k.insert().values(
                    role=record.role,
                    fingerprint=record.fingerprint,
                    public=record.public,
                    secret=record.secret,
                    path=record.path,
                    created=record.created or datetime.now(UTC),
                    created_by=record.created_by,
                )
            )

    def delete_key(self, role: str, fingerprint: str) -> bool:
        k = s.store_keys
        with self._catalog.write_connection() as conn:
            result = conn.execute(delete(k).where(k.c.role == role, k.c.fingerprint == fingerprint))
        return bool(result.rowcount)


__all__ = ["CatalogKeyStore"]
