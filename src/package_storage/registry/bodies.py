"""Response bodies served many times: the bytes with their strong ETag and gzip form.

A :class:`Body` is a ``bytes`` (so it goes anywhere the plain body went, and answers stay
byte-identical) that also carries a strong entity tag computed from its content and, on
first use, its gzip form (deterministic: no name, no timestamp), kept for as long as the body
is. The index caches bodies per revision, so each is hashed once and compressed at most once.
"""

from __future__ import annotations

import gzip
import hashlib

GZIP_LEVEL = 6


class Body(bytes):
    """An immutable response body with ``etag`` (a quoted strong ETag, as header bytes) and
    :meth:`gzipped` (its gzip form, or None when compressing does not make it smaller)."""

    _gzip: bytes | None
    _gzip_done: bool
    _etag: bytes | None
    # What the index keeps to patch this body at a revision switch (registry/index.py): the
    # layout of a /search body, the category counts of a /categories body.
    layout: object = None
    counts: object = None

    def __new__(cls, data: bytes) -> Body:
        self = super().__new__(cls, data)
        self._etag = None  # hashed on first use: a revision switch builds bodies, not tags
        self._gzip = None
        self._gzip_done = False
        return self

    @property
    def etag(self) -> bytes:
        """The quoted strong entity tag of these bytes (header bytes)."""
        tag = self._etag
        if tag is None:
            digest = hashlib.blake2b(self, digest_size=12).hexdigest().encode("ascii")
            tag = self._etag = b'"' + digest + b'"'
        return tag

    @property
    def gzip_etag(self) -> bytes:
        """The entity tag of the gzip form (another representation, another tag)."""
        return self.etag[:-1] + b'-gzip"'

    def gzipped(self) -> bytes | None:
        """The gzip form (computed on first call, then kept); None when it is not smaller."""
        if not self._gzip_done:
            packed = gzip.compress(bytes(self), GZIP_LEVEL, mtime=0)
            self._gzip = packed if len(packed) < len(self) else None
            self._gzip_done = True
        return self._gzip

    def __reduce__(self) -> tuple[type[bytes], tuple[bytes]]:
        return bytes, (bytes(self),)
