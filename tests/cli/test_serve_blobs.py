"""``serve --cache-dir/--cache-size/--artifact-redirect``: flag checks (real processes) and how
they wrap the store's blobs (``serving_blobs``; S3 is real SeaweedFS)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from test_serve import run_cli, run_serve
from test_service import make_package

from package_storage.cli.serve import BlobOptions, serving_blobs
from package_storage.errors import ConfigError
from package_storage.store.storage.blobcache import BlobCache
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.store.storage.s3 import S3BlobStore
from process_helpers import clean_env, command, free_port
from s3_server import BUCKET, S3Server


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
    assert served.root == tmp_path / "cache" / "blobs"
    assert url is None
    served, url = serving_blobs(s3, BlobOptions(artifact_redirect=True))
    assert served is s3 and url is not None
    digest = s3.put(b"redirected")
    assert url(digest).startswith(f"{s3_server.endpoint}/{BUCKET}/{s3.prefix}/{digest}?")
    local = LocalBlobStore(tmp_path / "blobs")
    assert serving_blobs(local, BlobOptions(tmp_path / "cache2"))[0] is local
    with pytest.raises(ConfigError, match="needs a store whose blobs are in S3"):
        serving_blobs(local, BlobOptions(artifact_redirect=True))


# --- end to end through the CLI: init --blobs s3://..., publish, serve ----------------------


def _serve(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [*command(), "serve", "--address", f"127.0.0.1:{port}", "-log-type", "dev", *args],
        env=clean_env(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("serve did not start")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out


def _init_takes_blobs() -> bool:
    answer = subprocess.run(
        [*command(), "init", "--help"], env=clean_env(), capture_output=True, text=True, timeout=120
    )
    return "--blobs" in answer.stdout


def test_store_with_s3_blobs_end_to_end(s3_server: S3Server, tmp_path: Path) -> None:
    if not _init_takes_blobs():
        pytest.skip("init --blobs (the store-URL opener of issue 11) is not in this build yet")
    env = s3_server.env()
    location = s3_server.location(s3_server.new_prefix("e2e"))
    store = tmp_path / "store"
    init = run_cli(["init", "--store", str(store), "--blobs", location], env, tmp_path)
    assert init.returncode == 0, init.stderr
    folder = make_package(tmp_path / "packages", "1.0.0")
    published = run_cli(["publish", "--store", str(store), str(folder)], env, tmp_path)
    assert published.returncode == 0, published.stderr
    assert not any(p.is_file() for p in store.rglob("*") if len(p.name) == 64)
    s3 = S3BlobStore.from_environment(BUCKET, location.split("/", 3)[3], env)
    digests = list(s3.iter_digests())
    assert len(digests) == 1
    data = s3.get(digests[0])
    zip_path = "/snapshot/epr/hello_nginx/hello_nginx-1.0.0.zip"

    cache = tmp_path / "cache"
    proc, base = _serve(["--store", str(store), "--cache-dir", str(cache)], env, tmp_path)
    try:
        answer = httpx.get(base + zip_path, timeout=30)
        assert answer.status_code == 200 and answer.content == data
        assert (cache / "blobs" / digests[0][:2] / digests[0]).read_bytes() == data
    finally:
        _stop(proc)

    proc, base = _serve(["--store", str(store), "--artifact-redirect"], env, tmp_path)
    try:
        answer = httpx.get(base + zip_path, timeout=30)
        assert answer.status_code == 302
        followed = httpx.get(answer.headers["location"], timeout=30)
        assert followed.status_code == 200 and followed.content == data
    finally:
        _stop(proc)

    check = run_cli(["fsck", "--store", str(store)], env, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
