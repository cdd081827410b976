"""S3BlobStore specifics (the BlobStore contract itself runs in contract/): layout, settings
from the environment, pre-signed URLs, checksum refusal, an unreachable server."""

from __future__ import annotations

import base64
import hashlib

import botocore.exceptions
import httpx
import pytest

from package_storage.errors import NotFoundError, UnavailableError
from package_storage.store.storage.s3 import S3BlobStore
from process_helpers import free_port
from s3_server import BUCKET, S3Server


def _store(server: S3Server, prefix: str | None = None) -> S3BlobStore:
    return S3BlobStore.from_environment(BUCKET, prefix or server.new_prefix("s3"), server.env())


def test_layout_is_prefix_slash_digest(s3_server: S3Server) -> None:
    store = _store(s3_server)
    digest = store.put(b"layout")
    client = s3_server.client()
    body = client.get_object(Bucket=BUCKET, Key=f"{store.prefix}/{digest}")["Body"].read()
    assert body == b"layout"
    # Other objects under the prefix are not blobs.
    client.put_object(Bucket=BUCKET, Key=f"{store.prefix}/README", Body=b"x")
    client.put_object(Bucket=BUCKET, Key=f"{store.prefix}/tmp/{'a' * 64}", Body=b"x")
    assert list(store.iter_digests()) == [digest]
    assert store.size(digest) == len(b"layout")
    with pytest.raises(NotFoundError):
        store.size(hashlib.sha256(b"none").hexdigest())


def test_settings_from_the_environment(s3_server: S3Server) -> None:
    store = S3BlobStore.from_environment(
        BUCKET, "x", {**s3_server.env(), "AWS_REGION": "eu-central-1"}
    )
    assert store.endpoint_url == s3_server.endpoint
    assert store.client.meta.region_name == "eu-central-1"
    fallback = S3BlobStore.from_environment(BUCKET, "x", {"AWS_DEFAULT_REGION": "ap-south-1"})
    assert fallback.client.meta.region_name == "ap-south-1"
    assert S3BlobStore.from_environment(BUCKET, "x", {}).client.meta.region_name == "us-east-1"


def test_presigned_url_downloads_without_credentials(s3_server: S3Server) -> None:
    store = _store(s3_server)
    digest = store.put(b"signed download")
    url = store.presigned_url(digest, expires=60)
    assert url.startswith(f"{s3_server.endpoint}/{BUCKET}/{store.prefix}/{digest}?")
    answer = httpx.get(url)
    assert answer.status_code == 200 and answer.content == b"signed download"
    assert httpx.get(f"{s3_server.endpoint}/{BUCKET}/{store.prefix}/{digest}").status_code == 403


def test_server_refuses_bytes_that_do_not_match_the_checksum(s3_server: S3Server) -> None:
    """What makes put atomic and safe: a body that does not hash to its name is refused."""
    store = _store(s3_server)
    digest = hashlib.sha256(b"expected").hexdigest()
    with pytest.raises(botocore.exceptions.ClientError):
        store.client.put_object(
            Bucket=BUCKET,
            Key=f"{store.prefix}/{digest}",
            Body=b"tampered",
            ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode(),
        )
    assert not store.exists(digest)


def test_unreachable_server_is_unavailable_not_missing() -> None:
    store = S3BlobStore(
        "bucket",
        "p",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key="k",
        secret_key="s",
        max_attempts=1,
        connect_timeout=1,
    )
    digest = hashlib.sha256(b"x").hexdigest()
    for call in (store.get, store.exists, store.verify, store.delete):
        with pytest.raises(UnavailableError, match="blob store s3://bucket/p at http://127"):
            call(digest)
    with pytest.raises(UnavailableError, match=r"cannot look up blob .*: cannot connect"):
        store.put(b"x")
    with pytest.raises(UnavailableError, match="cannot list blobs"):
        list(store.iter_digests())
    # Signing needs no server.
    assert "Signature" in store.presigned_url(digest) or "X-Amz-Signature" in (
        store.presigned_url(digest)
    )
