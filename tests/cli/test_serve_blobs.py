"""``serve --cache-dir/--cache-size/--artifact-redirect``: flag checks (real processes) and how
they wrap the store's blobs (``serving_blobs``; S3 is real SeaweedFS)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from package_storage.cli.serve import BlobOptions, serving_blobs
from package_storage.errors import ConfigError
from package_storage.store.storage.blobcache import BlobCache
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.store.storage.s3 import S3BlobStore
from process_helpers import clean_env, command
from s3_server import BUCKET, S3Server


def run_serve(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), "serve", "-log-type", "dev", *args],
        env=clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    init = subprocess.run(
        [*command(), "init", "--store", str(tmp_path / "store")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    return tmp_path / "store"


def test_flag_errors_are_one_line(store_dir: Path, tmp_path: Path) -> None:
    bad_size = run_serve(
        ["--store", str(store_dir), "--cache-dir", str(tmp_path / "c"), "--cache-size", "lots"],
        tmp_path,
    )
    assert bad_size.returncode == 2
    assert "--cache-size: size 'lots' is not valid" in bad_size.stderr
    alone = run_serve(["--store", str(store_dir), "--cache-size", "1GiB"], tmp_path)
    assert alone.returncode == 2
    assert "--cache-size needs --cache-dir DIR" in alone.stderr
    redirect = run_serve(["--store", str(store_dir), "--artifact-redirect", "-dry-run"], tmp_path)
    assert redirect.returncode == 1
    lines = [ln for ln in (redirect.stdout + redirect.stderr).splitlines() if "redirect" in ln]
    assert len(lines) == 1 and "needs a store whose blobs are in S3" in lines[0]


def test_cache_on_a_local_folder_is_ignored(store_dir: Path, tmp_path: Path) -> None:
    dry = run_serve(
        ["--store", str(store_dir), "--cache-dir", str(tmp_path / "cache"), "-dry-run"], tmp_path
    )
    assert dry.returncode == 0, dry.stderr
    assert "--cache-dir is not needed, ignored" in dry.stdout + dry.stderr


def test_serving_blobs_wraps_s3(s3_server: S3Server, tmp_path: Path) -> None:
    s3 = S3BlobStore.from_environment(BUCKET, s3_server.new_prefix("cli"), s3_server.env())
    served, url = serving_blobs(s3, BlobOptions(tmp_path / "cache", 1 << 20))
    assert isinstance(served, BlobCache) and served.inner is s3 and served.max_bytes == 1 << 20
    assert url is None
    served, url = serving_blobs(s3, BlobOptions(artifact_redirect=True))
    assert served is s3 and url is not None
    digest = s3.put(b"redirected")
    assert url(digest).startswith(f"{s3_server.endpoint}/{BUCKET}/{s3.prefix}/{digest}?")
    local = LocalBlobStore(tmp_path / "blobs")
    assert serving_blobs(local, BlobOptions(tmp_path / "cache2"))[0] is local
    with pytest.raises(ConfigError, match="needs a store whose blobs are in S3"):
        serving_blobs(local, BlobOptions(artifact_redirect=True))
