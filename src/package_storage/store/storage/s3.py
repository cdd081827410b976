"""Content-addressed blob store in an S3-compatible bucket: :class:`S3BlobStore`.

Location ``s3://BUCKET/PREFIX`` (``PREFIX`` may be empty). Layout under the prefix::

    PREFIX/<sha256 hex>        one object per blob

Any S3-compatible server works (AWS, MinIO, SeaweedFS). The endpoint and credentials come from
the standard variables: ``AWS_ENDPOINT_URL`` (absent: AWS itself), ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (absent: boto3's usual chain, e.g. an instance role) and
``AWS_REGION`` (or ``AWS_DEFAULT_REGION``; default ``us-east-1``). A custom endpoint is
addressed path-style (``http://host:port/BUCKET/KEY``), as MinIO and SeaweedFS expect.

Atomicity: a blob is written with one ``PutObject`` that carries the blob's sha256 as
``x-amz-checksum-sha256``; the server rejects a body that does not hash to it, and an object
appears only once its PUT completed, so ``exists``/``iter_digests`` never see a partial blob
and a writer killed mid-upload leaves nothing. ``put`` is idempotent: an object already
present with the right size is not uploaded again. ``put_file`` reads a regular file twice
(hash, then upload; the server-side checksum catches a file changed in between); anything else
(a pipe) is spooled to a temporary file first.

Failures of the server (unreachable, timeouts, 5xx after the retries) raise
:class:`~package_storage.errors.UnavailableError` naming the location, so a caller can tell
"absent" (NotFoundError) from "cannot be asked right now".
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
import botocore.exceptions
from botocore.config import Config

from package_storage.errors import NotFoundError, StorageError, UnavailableError
from package_storage.store.storage.base import check_digest, verify_by_reading

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

_HEX = frozenset("0123456789abcdef")
_CHUNK = 1 << 20
DEFAULT_REGION = "us-east-1"
MAX_SINGLE_PUT = 5 << 30
"""S3's limit for one PutObject (5 GiB); packages are far smaller."""

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_NO_BUCKET = frozenset({"NoSuchBucket"})
_DENIED = frozenset({"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"})


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _BodyReader(io.RawIOBase):
    """A botocore streaming body as a raw binary stream (``io.BufferedReader`` on top)."""

    def __init__(self, body: Any, location: str) -> None:
        self._body = body
        self._location = location

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._body.read(len(view))
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise UnavailableError(f"blob store {self._location}: read failed: {exc}") from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()
        super().close()


class S3BlobStore:
    """:class:`~package_storage.store.storage.base.BlobStore` over an S3 bucket and prefix.

    The arguments are plain values (the object can be rebuilt in another process from them);
    :meth:`from_environment` reads them from the standard ``AWS_*`` variables. The boto3 client
    is thread-safe and shared by every call.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            # Uploads carry our own sha256 checksum; no extra CRC trailer on the others.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=32,
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            region_name=region or DEFAULT_REGION,
        )
        self._client: S3Client = session.client("s3", endpoint_url=self.endpoint_url, config=config)

    @classmethod
    def from_environment(
        cls, bucket: str, prefix: str = "", environ: Mapping[str, str] | None = None
    ) -> S3BlobStore:
        """The store at ``bucket``/``prefix`` with endpoint, credentials and region from
        ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``
        (or ``AWS_DEFAULT_REGION``)."""
        env = os.environ if environ is None else environ
        return cls(
            bucket,
            prefix,
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )

    @property
    def client(self) -> S3Client:
        """The boto3 client (pre-signed URLs, tests)."""
        return self._client

    # --- keys and errors -------------------------------------------------------------------

    def _key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.prefix}/{digest}" if self.prefix else digest

    def _failure(self, what: str, exc: Exception) -> StorageError:
        """The error to raise for a failed request (``what``: the operation, for the message)."""
        where = f"blob store {self.location}"
        if self.endpoint_url:
            where += f" at {self.endpoint_url}"
        if isinstance(exc, botocore.exceptions.ClientError):
            code = _error_code(exc)
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in _NO_BUCKET:
                return StorageError(f"{where}: bucket {self.bucket} does not exist")
            if code in _DENIED:
                return StorageError(
                    f"{where}: {what}: access denied ({code}): check the credentials"
                )
            if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
                return UnavailableError(f"{where}: {what}: the server answered {status} {code}")
            return StorageError(f"{where}: {what}: {code or status}: {exc}")
        if isinstance(
            exc,
            botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectTimeoutError,
        ):
            return UnavailableError(f"{where}: {what}: cannot connect to the server")
        return UnavailableError(f"{where}: {what}: {exc}")

    def _head(self, digest: str) -> int | None:
        """Size of the object of ``digest``, or None when absent."""
        key = self._key(digest)
        try:
            answer = self._client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return None
            raise self._failure(f"cannot look up blob {digest}", exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._failure(f"cannot look up blob {digest}", exc) from exc
        return int(answer["ContentLength"])

    def _upload(self, digest: str, body: bytes | BinaryIO, size: int) -> None:
        if size > MAX_SINGLE_PUT:
            raise StorageError(
                f"blob store {self.location}: blob {digest} is {size} bytes, above the"
                f" {MAX_SINGLE_PUT} bytes of one S3 PUT"
            )
        checksum = base64.b64encode(bytes.fromhex(digest)).decode("ascii")
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self._key(digest),
                Body=body,
                ContentLength=size,
                ChecksumSHA256=checksum,
                ContentType="application/octet-stream",
            )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._failure(f"cannot write blob {digest}", exc) from exc

    # --- BlobStore -------------------------------------------------------------------------

    def check(self) -> None:
        """Raise a clear StorageError/UnavailableError unless the bucket answers."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _NOT_FOUND | _NO_BUCKET:
                raise StorageError(
                    f"blob store {self.location}: bucket {self.bucket} does not exist"
                    + (f" at {self.endpoint_url}" if self.endpoint_url else "")
                ) from exc
            raise self._failure("cannot reach the bucket", exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._failure("cannot reach the bucket", exc) from exc

    def create_bucket(self) -> bool:
        """Create the bucket when it does not exist; True when it was created."""
        try:
            self.check()
            return False
        except UnavailableError:
            raise
        except StorageError:
            pass
        try:
            self._client.create_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return False
            raise self._failure(f"cannot create bucket {self.bucket}", exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._failure(f"cannot create bucket {self.bucket}", exc) from exc
        return True

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if self._head(digest) == len(data):
            return digest  # idempotent (a damaged copy of another size is replaced)
        self._upload(digest, data, len(data))
        return digest

    def put_file(self, path: Path) -> tuple[str, int]:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError as exc:
            raise NotFoundError(f"file {path} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"blob store {self.location}: cannot read {path}: {exc}") from exc
        try:
            if stat.S_ISREG(mode):
                digest, size = _hash_file(path)
                if self._head(digest) != size:
                    with open(path, "rb") as fh:
                        self._upload(digest, fh, size)
                return digest, size
            with tempfile.TemporaryFile(prefix="package-storage-upload-") as spool:
                hasher = hashlib.sha256()
                size = 0
                with open(path, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        hasher.update(chunk)
                        spool.write(chunk)
                        size += len(chunk)
                digest = hasher.hexdigest()
                if self._head(digest) != size:
                    spool.seek(0)
                    self._upload(digest, spool, size)
                return digest, size
        except FileNotFoundError as exc:
            raise NotFoundError(f"file {path} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"blob store {self.location}: cannot store {path}: {exc}") from exc

    def get(self, digest: str) -> bytes:
        with self.open(digest) as fh:
            return fh.read()

    def open(self, digest: str) -> BinaryIO:
        return self.open_timed(digest)[0]

    def open_timed(self, digest: str) -> tuple[BinaryIO, float | None]:
        """:meth:`open`, and the object's modification time (epoch seconds) when known."""
        key = self._key(digest)
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                raise NotFoundError(f"blob {digest} does not exist") from None
            raise self._failure(f"cannot read blob {digest}", exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._failure(f"cannot read blob {digest}", exc) from exc
        reader = io.BufferedReader(_BodyReader(answer["Body"], self.location), _CHUNK)
        modified = answer.get("LastModified")
        mtime = modified.timestamp() if modified is not None else None
        return reader, mtime

    def path_for(self, digest: str) -> Path | None:
        check_digest(digest)
        return None  # never local (a BlobCache in front gives local files)

    def exists(self, digest: str) -> bool:
        return self._head(digest) is not None

    def size(self, digest: str) -> int:
        size = self._head(digest)
        if size is None:
            raise NotFoundError(f"blob {digest} does not exist")
        return size

    def delete(self, digest: str) -> bool:
        if self._head(digest) is None:
            return False
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(digest))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._failure(f"cannot delete blob {digest}", exc) from exc
        return True

    def iter_digests(self) -> Iterator[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for item in page.get("Contents", []):
                    name = item.get("Key", "")[len(start) :]
                    if len(name) == 64 and set(name) <= _HEX:
                        yield name
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._failure("cannot list blobs", exc) from exc

    def verify(self, digest: str) -> bool:
        return verify_by_reading(self, digest)

    def presigned_url(self, digest: str, expires: int = 300) -> str:
        """A time-limited GET URL of ``digest`` (``serve --artifact-redirect``); signing is
        local, the object is not looked up."""
        try:
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(digest)},
                ExpiresIn=expires,
            )
        except botocore.exceptions.BotoCoreError as exc:
            raise self._failure(f"cannot sign a URL for blob {digest}", exc) from exc

    def __repr__(self) -> str:
        return f"S3BlobStore({self.location!r}, endpoint_url={self.endpoint_url!r})"


def _hash_file(path: Path) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


__all__ = ["DEFAULT_REGION", "S3BlobStore"]
