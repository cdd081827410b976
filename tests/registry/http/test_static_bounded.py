"""Static files of zip packages are served with bounded memory (entries.py), answers unchanged.

In process: every answer for a file of a zip package (small: in memory; medium: extracted to
the on-disk cache; large: streamed from the zip) is byte for byte the answer for the same file
served from a folder with the same modification time (status, every header but the multipart
boundary, body), for plain, ranged, multipart, conditional and HEAD requests; the cache
extracts once, evicts to stay within its bound, never extracts for bodiless answers, and
caches nothing for a corrupt entry.

Live (a real server process on loopback): a zip bomb (a 1 GiB file of zeros, about 1 MB of
zip) stored before the archive-safety gate existed (put into the store through the catalog and
the blob store directly) and one dropped into ``package_paths`` are requested whole, with a
range at the start, a range at the end and several ranges; the server's peak resident memory
(``VmHWM``) stays far below the file's size.
"""

from __future__ import annotations

import calendar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from http_driver import PrefixRegistry, Result, request

from package_storage.packages.manifest import read_package
from package_storage.packages.trees import FolderTree, ZipTree
from package_storage.registry.http.app import AppOptions, ASGIApp, create_app
from package_storage.registry.index import RegistryIndex
from package_storage.store.storage.base import ArtifactRecord
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.store.storage.sqlite import SQLiteCatalog
from zip_bombs import NAME, ROOT, VERSION, GiB, MiB, declare_crc, write_bomb

PEAK_BOUND = 300 * MiB  # the server's whole peak resident memory; the file is 1 GiB


def _text(size: int, seed: int) -> bytes:
    """Compressible but not trivial content of ``size`` bytes."""
    line = b"%08d the quick brown fox jumps over the lazy dog %d\n"
    out = bytearray()
    i = 0
    while len(out) < size:
        out += line % (i, (i * 7919 + seed) % 10007)
        i += 1
    return bytes(out[:size])


FILES = {
    "docs/small.md": _text(200 << 10, 1),
    "docs/medium.md": _text(3 * MiB, 2),  # above the in-memory size: extracted
    "docs/other.md": _text(3 * MiB + 17, 3),
    "img/large.bin": _text(9 * MiB, 4),  # above the extraction bound below: streamed
    "docs/empty.txt": b"",
}
OPTIONS = AppOptions(
    cache_time_index=1.0,
    cache_time_search=1.0,
    cache_time_categories=1.0,
    cache_time_catch_all=1.0,
    extract_cache_bytes=7 * MiB,
    extract_file_bytes=4 * MiB,
)
REQUESTS: list[tuple[str, dict[str, str]]] = [
    ("GET", {}),
    ("HEAD", {}),
    ("GET", {"range": "bytes=0-99"}),
    ("GET", {"range": "bytes=-100"}),
    ("GET", {"range": "bytes=1000000-"}),
    ("GET", {"range": "bytes=0-9,1048576-1049599,-5"}),
    ("GET", {"range": "bytes=-5,0-9"}),
    ("GET", {"range": "bytes=99999999-"}),
    ("GET", {"range": "bytes=x"}),
    ("GET", {"if-modified-since": "Wed, 01 Jan 2070 00:00:00 GMT"}),
    ("GET", {"if-modified-since": "Wed, 01 Jan 2003 00:00:00 GMT", "range": "bytes=5-9"}),
    ("GET", {"if-unmodified-since": "Wed, 01 Jan 2003 00:00:00 GMT"}),
    ("GET", {"if-range": "Wed, 01 Jan 2003 00:00:00 GMT", "range": "bytes=0-9"}),
    ("HEAD", {"range": "bytes=0-9,20-29"}),
]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(zip, folder) of the same package: the example plus FILES, folder mtimes = zip's."""
    root = tmp_path_factory.mktemp("bounded")
    zpath = write_bomb(root / f"{ROOT}.zip", {})
    with zipfile.ZipFile(zpath, "a") as zf:
        for rel, data in FILES.items():
            info = zipfile.ZipInfo(f"{ROOT}/{rel}", date_time=(2024, 5, 6, 7, 8, 10))
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    folder = root / "folder" / NAME / VERSION
    with zipfile.ZipFile(zpath) as zf:
        for info in zf.infolist():
            rel = info.filename[len(ROOT) + 1 :]
            if not rel or info.is_dir():
                continue
            dest = folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(zf.read(info))
            stamp = calendar.timegm((*info.date_time, 0, 0, 0))
            os.utime(dest, (stamp, stamp))
    return zpath, folder


def _app(tree: ZipTree | FolderTree, options: AppOptions = OPTIONS) -> ASGIApp:
    index = RegistryIndex([[read_package(tree, validate=False)]])
    return create_app(PrefixRegistry(index, {}), options)


def _normal(result: Result) -> tuple[int, list[tuple[str, str]], bytes]:
    boundary = None
    for key, value in result.headers:
        if key == "content-type" and value.startswith("multipart/byteranges; boundary="):
            boundary = value.partition("boundary=")[2]
    headers, body = result.headers, result.body
    if boundary:
        headers = [(k, v.replace(boundary, "B")) for k, v in headers]
        body = body.replace(boundary.encode(), b"B")
    return result.status, headers, body


def _cache_files(parent: Path) -> list[Path]:
    return sorted(p for p in parent.glob("package-storage-files-*/*") if p.is_file())


def test_zip_files_answer_exactly_like_the_same_files_on_disk(
    package: tuple[Path, Path], tmp_path: Path
) -> None:
    zpath, folder = package
    options = AppOptions(
        cache_time_catch_all=1.0,
        extract_cache_bytes=OPTIONS.extract_cache_bytes,
        extract_file_bytes=OPTIONS.extract_file_bytes,
        extract_dir=str(tmp_path),
    )
    zip_app = _app(ZipTree.open(zpath), options)
    disk_app = _app(FolderTree(folder), options)
    for rel, data in FILES.items():
        target = f"/package/{NAME}/{VERSION}/{rel}"
        for method, headers in REQUESTS:
            for attempt in range(2):  # second time: from the caches
                got = request(zip_app, target, method=method, headers=list(headers.items()))
                want = request(disk_app, target, method=method, headers=list(headers.items()))
                where = f"{rel} {method} {headers} #{attempt}"
                assert _normal(got) == _normal(want), where
                if method == "GET" and got.status == 200:
                    assert got.body == data, where
    # Only the two medium files were extracted, each once (the large one is streamed).
    extracted = _cache_files(tmp_path)
    assert sorted(p.stat().st_size for p in extracted) == [3 * MiB, 3 * MiB + 17]


def test_the_extract_cache_stays_within_its_bound(
    package: tuple[Path, Path], tmp_path: Path
) -> None:
    zpath, _ = package
    options = AppOptions(extract_cache_bytes=4 * MiB, extract_dir=str(tmp_path))
    app = _app(ZipTree.open(zpath), options)
    for _ in range(3):
        for rel in ("docs/medium.md", "docs/other.md"):
            r = request(app, f"/package/{NAME}/{VERSION}/{rel}")
            assert (r.status, r.body) == (200, FILES[rel])
            files = _cache_files(tmp_path)
            assert len(files) == 1 and files[0].stat().st_size == len(FILES[rel])


def test_answers_without_a_body_extract_nothing(package: tuple[Path, Path], tmp_path: Path) -> None:
    zpath, _ = package
    app = _app(ZipTree.open(zpath), AppOptions(extract_dir=str(tmp_path)))
    target = f"/package/{NAME}/{VERSION}/docs/medium.md"
    for method, headers in [
        ("HEAD", {}),
        ("GET", {"if-modified-since": "Wed, 01 Jan 2070 00:00:00 GMT"}),
        ("GET", {"range": "bytes=99999999-"}),
        ("GET", {"if-unmodified-since": "Wed, 01 Jan 2003 00:00:00 GMT"}),
    ]:
        r = request(app, target, method=method, headers=list(headers.items()))
        assert r.status in (200, 304, 412, 416)
    assert _cache_files(tmp_path) == []
    r = request(app, target, headers=[("range", "bytes=-3")])
    assert (r.status, r.body) == (206, FILES["docs/medium.md"][-3:])
    assert len(_cache_files(tmp_path)) == 1


def test_without_a_cache_large_files_are_streamed(package: tuple[Path, Path]) -> None:
    zpath, _ = package
    app = _app(ZipTree.open(zpath), AppOptions(extract_cache_bytes=0))
    data = FILES["docs/medium.md"]
    target = f"/package/{NAME}/{VERSION}/docs/medium.md"
    r = request(app, target)
    assert (r.status, r.body, r.messages > 2) == (200, data, True)  # sent in chunks
    r = request(app, target, headers=[("range", "bytes=-10,0-9,2000000-2000009")])
    assert r.status == 206
    assert data[-10:] in r.body and data[:10] in r.body and data[2000000:2000010] in r.body
    # A whole extracted file is handed to a server that can send files by path.
    app = _app(ZipTree.open(zpath), OPTIONS)
    r = request(app, target, extensions={"http.response.pathsend": {}})
    assert r.status == 200 and r.pathsend is not None and r.body == data


def test_a_corrupt_large_entry_is_a_500_and_is_not_cached(
    package: tuple[Path, Path], tmp_path: Path
) -> None:
    zpath, _ = package
    bad = tmp_path / "bad.zip"
    bad.write_bytes(declare_crc(zpath.read_bytes(), f"{ROOT}/docs/medium.md", 12345))
    cache = tmp_path / "cache"
    cache.mkdir()
    app = _app(ZipTree.open(bad), AppOptions(extract_dir=str(cache)))
    for _ in range(2):
        r = request(app, f"/package/{NAME}/{VERSION}/docs/medium.md")
        assert (r.status, r.text) == (500, "internal server error\n")
    assert _cache_files(cache) == []
    r = request(app, f"/package/{NAME}/{VERSION}/docs/small.md")
    assert (r.status, r.body) == (200, FILES["docs/small.md"])


# --- live: a real server over a 1 GiB-expanding archive ---------------------------------------

BIG = f"/package/{NAME}/{VERSION}/docs/big.md"
MEDIUM = f"/package/{NAME}/{VERSION}/docs/medium.md"
BIG_SIZE = 1 * GiB
MEDIUM_SIZE = 64 * MiB


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package plus docs/big.md (1 GiB of zeros: streamed from the zip) and
    docs/medium.md (64 MiB of zeros: extracted to the cache), about 1.1 MB of zip."""
    path = tmp_path_factory.mktemp("bomb") / f"{ROOT}.zip"
    write_bomb(path, {"docs/big.md": BIG_SIZE, "docs/medium.md": MEDIUM_SIZE})
    assert path.stat().st_size < 2 * MiB
    return path


def _start(args: list[str], cwd: Path, env: Mapping[str, str]) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    script = Path(sys.executable).parent / "package-storage"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EPR_", "PACKAGE_STORAGE_"))}
    proc = subprocess.Popen(
        [str(script), "serve", "--address", f"127.0.0.1:{port}", "-log-type", "dev", *args],
        env={**clean, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"server exited with {proc.returncode}: {out}")
        try:
            if httpx.get(base + "/health", timeout=5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out


def _peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


def _fetch(
    url: str, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], int, bytes]:
    """(status, headers, body length, first 64 KiB of the body); the body must be all zeros
    (or multipart text around zeros) and is never held whole here either."""
    length = 0
    head = b""
    with httpx.stream("GET", url, headers=dict(headers or {}), timeout=120) as r:
        for chunk in r.iter_raw(1 << 20):
            if len(head) < 65536:
                head += chunk[: 65536 - len(head)]
            if r.status_code == 200:
                assert chunk.count(0) == len(chunk)
            length += len(chunk)
        return r.status_code, dict(r.headers), length, head


def _exercise(base: str, prefix: str) -> None:
    for path, size in ((BIG, BIG_SIZE), (MEDIUM, MEDIUM_SIZE)):
        url = base + prefix + path
        status, headers, length, _ = _fetch(url)
        assert (status, length, headers["content-length"]) == (200, size, str(size))
        status, headers, length, head = _fetch(url, {"range": "bytes=0-99"})
        assert (status, headers["content-range"], head) == (206, f"bytes 0-99/{size}", bytes(100))
        status, headers, length, head = _fetch(url, {"range": "bytes=-100"})
        assert (status, headers["content-range"]) == (206, f"bytes {size - 100}-{size - 1}/{size}")
        assert head == bytes(100)
        ranges = f"bytes=0-9,{size // 2}-{size // 2 + 9},-10"
        status, headers, length, head = _fetch(url, {"range": ranges})
        assert status == 206 and headers["content-type"].startswith("multipart/byteranges")
        assert head.count(b"Content-Range: bytes") == 3
        assert f"bytes {size - 10}-{size - 1}/{size}".encode() in head
        r = httpx.head(url, timeout=60)
        assert (r.status_code, r.headers["content-length"]) == (200, str(size))


@pytest.fixture
def store(tmp_path: Path, bomb: Path) -> Iterator[Path]:
    """A store holding the bomb in snapshot, inserted below the service (no gate)."""
    root = tmp_path / "store"
    catalog = SQLiteCatalog(root / "catalog.db")
    blobs = LocalBlobStore(root / "blobs", fsync=False)
    data = bomb.read_bytes()
    digest = blobs.put(data)
    with catalog.transaction() as tx:
        tx.add_artifact(ArtifactRecord(digest, len(data), NAME, VERSION))
        tx.put_entry("snapshot", NAME, VERSION, digest, actor="test")
        for distribution in tx.stages().affected_distributions("snapshot"):
            tx.new_revision(distribution)
    catalog.close()
    yield root


@pytest.mark.slow
def test_a_stored_zip_bomb_costs_a_live_server_bounded_memory(store: Path, tmp_path: Path) -> None:
    cache = tmp_path / "tmp"
    cache.mkdir()
    proc, base = _start(["--store", str(store)], tmp_path, {"TMPDIR": str(cache)})
    try:
        _exercise(base, "/snapshot")
        peak = _peak_rss(proc.pid)
        print(f"store mode: server peak RSS {peak / MiB:.0f} MiB serving a 1 GiB file")
        assert peak < PEAK_BOUND
        # The 64 MiB file was extracted once into the private cache folder; the 1 GiB one
        # (above the 256 MiB extraction bound) was never written anywhere.
        assert [p.stat().st_size for p in _cache_files(cache)] == [MEDIUM_SIZE]
    finally:
        _stop(proc)
    assert list(cache.iterdir()) == []  # the cache folder goes with the server


@pytest.mark.slow
def test_a_dropped_in_zip_bomb_costs_a_live_server_bounded_memory(
    bomb: Path, tmp_path: Path
) -> None:
    packages = tmp_path / "packages"
    packages.mkdir()
    (packages / bomb.name).write_bytes(bomb.read_bytes())
    config = tmp_path / "config.yml"
    config.write_text("package_paths:\n  - ./packages\n")
    # The archive-safety gate refuses such a zip at startup: its limits are lifted here so
    # that the server serves it (what a server without the gate did).
    env = {
        "PACKAGE_STORAGE_MAX_RATIO": "100000",
        "PACKAGE_STORAGE_MAX_FILE_BYTES": str(2 * GiB),
        "PACKAGE_STORAGE_MAX_TOTAL_BYTES": str(4 * GiB),
    }
    args = ["--config", str(config), "-require-package-signatures=false"]
    proc, base = _start(args, tmp_path, env)
    try:
        _exercise(base, "")
        peak = _peak_rss(proc.pid)
        print(f"drop-in mode: server peak RSS {peak / MiB:.0f} MiB serving a 1 GiB file")
        assert peak < PEAK_BOUND
    finally:
        _stop(proc)
