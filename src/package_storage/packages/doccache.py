"""A folder of derived documents (``derived.py``) keyed by a hex digest.

Layout: ``ROOT/v<FORMAT>/<first two hex digits>/<key>.json``: a new format starts an empty
subfolder (old ones are left for ``rm -r``). Writes are atomic (temporary file in the same
folder, then ``os.replace``), so a reader never sees half a document and two writers of the
same key (the same content) are harmless. Nothing here is authoritative: a missing, unreadable
or corrupt document is derived again from the package's files, so the folder may be deleted at
any time.

A write that fails (read-only folder, disk full) is logged once and the cache carries on
without storing; reads keep working.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from package_storage.packages.derived import FORMAT

__all__ = ["DocCache", "write_atomically"]

log = logging.getLogger("package_storage.doccache")

_KEY_RE = re.compile(r"[0-9a-f]{16,128}")


def write_atomically(target: Path, parts: Iterable[bytes]) -> None:
    """Replace ``target`` with ``parts`` written one after another: a temporary file in the same
    folder (created with its parents), then ``os.replace``; the temporary file is removed when
    anything fails. Raises OSError."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for part in parts:
                fh.write(part)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class DocCache:
    """Derived documents under ``root`` (created on first write)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._folder = self.root / f"v{FORMAT}"
        self._prefix = os.path.join(self._folder, "")
        self._write_failed = False
        self.reads = 0
        self.writes = 0

    def __repr__(self) -> str:
        return f"DocCache({str(self.root)!r})"

    def path(self, key: str) -> Path:
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"derived document key must be 16-128 lowercase hex digits: {key!r}")
        return self._folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> bytes | None:
        """The document stored under ``key``, or None."""
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"derived document key must be 16-128 lowercase hex digits: {key!r}")
        try:
            with open(f"{self._prefix}{key[:2]}/{key}.json", "rb") as fh:
                data = fh.read()
        except OSError:
            return None
        self.reads += 1
        return data

    def put(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key``; False when it could not be written (logged once)."""
        target = self.path(key)
        try:
            write_atomically(target, [data])
        except OSError as exc:
            if not self._write_failed:
                self._write_failed = True
                log.warning(f"cannot store derived documents in {self.root}: {exc}")
            return False
        self.writes += 1
        return True

    def delete(self, key: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path(key))
