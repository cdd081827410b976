"""Where a store's blobs live, as one string: :func:`open_blob_store`.

Accepted locations::

    /srv/store/blobs, ./blobs, file:///srv/store/blobs   a local folder (LocalBlobStore)
    s3://BUCKET, s3://BUCKET/PREFIX                       an S3 bucket (S3BlobStore)

S3 endpoint and credentials come from ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_REGION`` (see :mod:`.s3`). Anything else is refused with
one line naming the location and the accepted forms. ``cache_dir`` puts a bounded local disk
cache in front (:mod:`.blobcache`, for read replicas serving from S3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from package_storage.errors import ConfigError, NotFoundError
from package_storage.store.storage.base import BlobStore

FORMS = "a folder path, file:///PATH or s3://BUCKET/PREFIX"
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_SEGMENT_RE = re.compile(r"[A-Za-z0-9!_.*'()-]+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """A parsed location: ``kind`` ``folder`` (``path``) or ``s3`` (``bucket``, ``prefix``)."""

    kind: str
    path: Path | None = None
    bucket: str = ""
    prefix: str = ""

    def __str__(self) -> str:
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return str(self.path)


def _bad(location: str, rule: str) -> ConfigError:
    return ConfigError(f"blob location {location!r}: {rule} (expected {FORMS})")


def parse_blob_location(location: str) -> BlobLocation:
    """Parse ``location``; ConfigError (one line naming it and the rule) when malformed."""
    if not isinstance(location, str) or not location.strip():
        raise _bad(str(location), "is empty")
    if location != location.strip() or any(ord(c) < 32 for c in location):
        raise _bad(location, "has surrounding spaces or control characters")
    if location.startswith("s3://"):
        parts = urlsplit(location)
        if parts.query or parts.fragment:
            raise _bad(location, "has a query or fragment")
        bucket = parts.netloc
        if not bucket:
            raise _bad(location, "names no bucket")
        if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            raise _bad(
                location,
                f"bucket {bucket!r} is not a valid S3 bucket name (3-63 lowercase letters,"
                " digits, dots and hyphens, starting and ending with a letter or digit)",
            )
        prefix = parts.path.strip("/")
        if prefix:
            for segment in prefix.split("/"):
                if segment in ("", ".", "..") or not _PREFIX_SEGMENT_RE.fullmatch(segment):
                    raise _bad(
                        location,
                        f"prefix segment {segment!r} is not allowed (letters, digits and"
                        " !_.*'()- only; no empty, . or .. segments)",
                    )
        return BlobLocation("s3", bucket=bucket, prefix=prefix)
    if location.startswith("file://"):
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise _bad(location, "a file: URL must be file:///ABSOLUTE/PATH")
        return BlobLocation("folder", path=Path(unquote(parts.path)))
    if _SCHEME_RE.match(location):
        scheme = location.split("://", 1)[0]
        raise _bad(location, f"unknown scheme {scheme}://")
    return BlobLocation("folder", path=Path(location))


def open_blob_store(
    location: str,
    *,
    cache_dir: str | Path | None = None,
    cache_size: int | None = None,
    create: bool = False,
    environ: Mapping[str, str] | None = None,
    check: bool = True,
) -> BlobStore:
    """The blob store at ``location`` (see the module docstring).

    ``create``: make the folder (or the S3 bucket) when it does not exist (``init``);
    otherwise a missing folder is NotFoundError and a missing bucket StorageError, so a typo
    never creates an empty store. ``check`` (S3): ask the bucket once now, so a wrong endpoint,
    bucket or credential fails here with one line instead of at the first request.
    ``cache_dir``/``cache_size``: a bounded local disk cache in front (reads download each blob
    once; ``path_for`` then gives the cached file). ``environ``: where the ``AWS_*`` settings
    are read (default ``os.environ``).
    """
    parsed = parse_blob_location(location)
    store: BlobStore
    if parsed.kind == "s3":
        from package_storage.store.storage.s3 import S3BlobStore

        s3 = S3BlobStore.from_environment(parsed.bucket, parsed.prefix, environ)
        if create:
            s3.create_bucket()
        elif check:
            s3.check()
        store = s3
    else:
        from package_storage.store.storage.localfs import LocalBlobStore

        assert parsed.path is not None
        path = parsed.path
        if path.exists() and not path.is_dir():
            raise ConfigError(f"blob location {location!r}: {path} is not a folder")
        if not path.exists() and not create:
            raise NotFoundError(f"blob folder {path} does not exist")
        store = LocalBlobStore(path)
    if cache_dir is not None:
        from package_storage.store.storage.blobcache import DEFAULT_CACHE_SIZE, BlobCache

        store = BlobCache(
            store, Path(cache_dir), DEFAULT_CACHE_SIZE if cache_size is None else cache_size
        )
    return store


__all__ = ["FORMS", "BlobLocation", "open_blob_store", "parse_blob_location"]
