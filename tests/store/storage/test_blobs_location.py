"""open_blob_store / parse_blob_location: folders, file: URLs, s3:// (against real SeaweedFS)."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from package_storage.errors import ConfigError, NotFoundError, StorageError, UnavailableError
from package_storage.store.storage.blobcache import BlobCache
from package_storage.store.storage.blobs_location import (
    BlobLocation,
    open_blob_store,
    parse_blob_location,
)
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.store.storage.s3 import S3BlobStore
from process_helpers import free_port
from s3_server import S3Server


def test_folder_paths(tmp_path: Path) -> None:
    assert parse_blob_location(str(tmp_path)) == BlobLocation("folder", path=tmp_path)
    assert parse_blob_location("relative/blobs") == BlobLocation(
        "folder", path=Path("relative/blobs")
    )
    assert parse_blob_location(f"file://{tmp_path}/a%20b") == BlobLocation(
        "folder", path=tmp_path / "a b"
    )
    store = open_blob_store(str(tmp_path))
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path


def test_missing_folder_is_refused_unless_created(tmp_path: Path) -> None:
    target = tmp_path / "typo" / "blobs"
    with pytest.raises(NotFoundError, match=r"blob folder .*typo/blobs does not exist"):
        open_blob_store(str(target))
    assert not target.exists()
    store = open_blob_store(str(target), create=True)
    assert isinstance(store, LocalBlobStore) and target.is_dir()


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        open_blob_store(str(tmp_path / "file"))


def test_s3_locations() -> None:
    assert parse_blob_location("s3://bucket") == BlobLocation("s3", bucket="bucket")
    assert parse_blob_location("s3://my.bucket-1/a/b/") == BlobLocation(
        "s3", bucket="my.bucket-1", prefix="a/b"
    )
    assert str(parse_blob_location("s3://bucket/prefix/")) == "s3://bucket/prefix"
    store = open_blob_store("s3://bucket/pre", check=False, environ={"AWS_REGION": "eu-west-1"})
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix, store.location) == ("bucket", "pre", "s3://bucket/pre")


@pytest.mark.parametrize(
    ("location", "rule"),
    [
        ("", "is empty"),
        (" /srv/blobs", "surrounding spaces"),
        ("s3://", "names no bucket"),
        ("s3:///prefix", "names no bucket"),
        ("s3://ab", "not a valid S3 bucket name"),
        ("s3://Upper", "not a valid S3 bucket name"),
        ("s3://under_score", "not a valid S3 bucket name"),
        ("s3://bucket/a//b", "prefix segment ''"),
        ("s3://bucket/a/../b", "prefix segment '..'"),
        ("s3://bucket/a b", "prefix segment 'a b'"),
        ("s3://bucket/p?versionId=1", "query or fragment"),
        ("file://host/srv", "file:///ABSOLUTE/PATH"),
        ("ftp://host/blobs", "unknown scheme ftp://"),
        ("gs://bucket/x", "unknown scheme gs://"),
    ],
)
def test_bad_locations_one_clear_line(location: str, rule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_blob_store(location)
    message = str(caught.value)
    assert "\n" not in message
    assert rule in message
    assert repr(location) in message
    assert "s3://BUCKET/PREFIX" in message


@given(st.text(max_size=80))
def test_parser_never_fails_otherwise(text: str) -> None:
    try:
        parsed = parse_blob_location(text)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert parsed.kind in ("folder", "s3")


_BUCKETS = st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True)
_SEGMENTS = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=10)


@given(_BUCKETS, st.lists(_SEGMENTS, max_size=4))
def test_s3_round_trip(bucket: str, segments: list[str]) -> None:
    location = f"s3://{bucket}/{'/'.join(segments)}" if segments else f"s3://{bucket}"
    parsed = parse_blob_location(location)
    assert (parsed.bucket, parsed.prefix) == (bucket, "/".join(segments))
    assert str(parsed) == location


def test_cache_dir_wraps_the_store(tmp_path: Path) -> None:
    store = open_blob_store(
        str(tmp_path / "blobs"), create=True, cache_dir=tmp_path / "cache", cache_size=1000
    )
    assert isinstance(store, BlobCache)
    assert isinstance(store.inner, LocalBlobStore)
    assert store.max_bytes == 1000


# --- against a real S3 server --------------------------------------------------------------


def test_s3_bucket_checked_at_open(s3_server: S3Server) -> None:
    store = open_blob_store(s3_server.location(), environ=s3_server.env())
    assert isinstance(store, S3BlobStore)
    digest = store.put(b"hello")
    assert store.get(digest) == b"hello"
    with pytest.raises(StorageError, match="bucket no-such-bucket-here does not exist"):
        open_blob_store("s3://no-such-bucket-here/x", environ=s3_server.env())


def test_s3_create_makes_the_bucket(s3_server: S3Server) -> None:
    location = "s3://created-by-init/blobs"
    store = open_blob_store(location, create=True, environ=s3_server.env())
    assert isinstance(store, S3BlobStore)
    open_blob_store(location, environ=s3_server.env())  # exists now
    assert open_blob_store(location, create=True, environ=s3_server.env()) is not None


def test_s3_wrong_credentials(s3_server: S3Server) -> None:
    env = s3_server.env({"AWS_SECRET_ACCESS_KEY": "wrong"})
    with pytest.raises(StorageError, match="access denied") as caught:
        open_blob_store(s3_server.location(), environ=env)
    assert "\n" not in str(caught.value)


def test_s3_unreachable_endpoint() -> None:
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    with pytest.raises(
        UnavailableError, match=r"blob store s3://bucket/x at http://127\.0\.0\.1"
    ) as e:
        open_blob_store("s3://bucket/x", environ=env)
    assert "\n" not in str(e.value)
