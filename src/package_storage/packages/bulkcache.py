"""Many derived documents (``derived.py``) in one file, keyed by content key.

A drop-in server's restart reads the derived documents of all its packages; one file read
(and one checksum) instead of one file per package. The file is a cache like
:class:`~package_storage.packages.doccache.DocCache`'s folder: whatever it holds is found by
the content key the caller computed, so an entry of a package that changed is simply never
asked for again; a missing, unreadable, foreign or corrupt file reads as empty.

Layout (bytes)::

    package-storage bulk documents 1\\n
    {"derived": FORMAT, "sha256": "<hex of the body>", "entries": [[key, length], ...]}\\n
    <body: the documents one after the other>

Writes are atomic (a temporary file in the same folder, then ``os.replace``); a failed write
is logged once and reported as False.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

import orjson

from package_storage.packages.derived import FORMAT
from package_storage.packages.doccache import write_atomically

__all__ = ["BulkCache"]

log = logging.getLogger("package_storage.bulkcache")

MAGIC = b"package-storage bulk documents 1\n"


class BulkCache:
    """The derived documents of one set of packages in the file ``path``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._write_failed = False

    def __repr__(self) -> str:
        return f"BulkCache({str(self.path)!r})"

    def read(self) -> dict[str, bytes]:
        """Every document in the file by key; empty when there is no usable file."""
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except OSError:
            return {}
        return _parse(data)

    def write(self, documents: Mapping[str, bytes]) -> bool:
        """Replace the file with ``documents``; False when it could not be written."""
        entries = [[key, len(doc)] for key, doc in documents.items()]
        body = b"".join(documents.values())
        head = orjson.dumps(
            {"derived": FORMAT, "sha256": hashlib.sha256(body).hexdigest(), "entries": entries}
        )
        try:
            write_atomically(self.path, [MAGIC, head, b"\n", body])
        except OSError as exc:
            if not self._write_failed:
                self._write_failed = True
                log.warning(f"cannot store derived documents in {self.path}: {exc}")
            return False
        return True


def _parse(data: bytes) -> dict[str, bytes]:
    if not data.startswith(MAGIC):
        return {}
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return {}
    try:
        head = orjson.loads(data[len(MAGIC) : end])
        if not isinstance(head, dict) or head.get("derived") != FORMAT:
            return {}
        entries = head["entries"]
        digest = head["sha256"]
    except (orjson.JSONDecodeError, KeyError):
        return {}
    body = memoryview(data)[end + 1 :]
    if not isinstance(digest, str) or hashlib.sha256(body).hexdigest() != digest:
        return {}
    out: dict[str, bytes] = {}
    offset = 0
    try:
        for key, length in entries:
            if not isinstance(key, str) or not isinstance(length, int) or length < 0:
                return {}
            out[key] = bytes(body[offset : offset + length])
            offset += length
    except (TypeError, ValueError):
        return {}
    if offset != len(body):
        return {}
    return out
