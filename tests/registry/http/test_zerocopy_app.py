"""The read app's files over a real server: with zero-copy (plain TCP) every answer is the one
of the ordinary path (in process, no extension), byte for byte; ``send_response`` hands files
on disk from the size threshold to the server as ``http.response.zerocopysend`` slices."""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import os
import shutil
import socket
import zipfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import uvloop
from http_driver import FIXTURES, PrefixRegistry, Result, request
from test_zerocopy import Reader, Running

from package_storage.packages.manifest import read_package
from package_storage.packages.trees import FolderTree, ZipTree
from package_storage.registry.http import zerocopy
from package_storage.registry.http.app import AppOptions, ASGIApp, create_app
from package_storage.registry.http.server import Listener, bind_socket
from package_storage.registry.http.static import (
    ZEROCOPY_BODY,
    ZEROCOPY_EXTENSION,
    BytesContent,
    FileContent,
    Planned,
    send_response,
)
from package_storage.registry.index import RegistryIndex

NAME, VERSION = "example", "1.0.0"
STAMP = calendar.timegm((2024, 5, 6, 7, 8, 10, 0, 0, 0))
FILES = {
    "img/screenshot.png": b"\x89PNG\r\n\x1a\n" + os.urandom(1_080_000 - 8),  # 1.08 MB
    "docs/big.md": os.urandom(3 << 20),
    "docs/threshold.md": os.urandom(ZEROCOPY_BODY),
    "docs/below.md": os.urandom(ZEROCOPY_BODY - 1),
}
REQUESTS: list[tuple[str, dict[str, str]]] = [
    ("GET", {}),
    ("HEAD", {}),
    ("GET", {"range": "bytes=0-99"}),
    ("GET", {"range": "bytes=-100"}),
    ("GET", {"range": "bytes=60000-"}),
    ("GET", {"range": "bytes=0-9,65536-200000,-5"}),
    ("GET", {"range": "bytes=99999999-"}),
    ("GET", {"if-modified-since": "Wed, 01 Jan 2070 00:00:00 GMT"}),
    ("GET", {"if-range": "Wed, 01 Jan 2003 00:00:00 GMT", "range": "bytes=0-9"}),
    ("HEAD", {"range": "bytes=0-9,20-29"}),
]


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder, zip) of the example package plus FILES (same modification times)."""
    root = tmp_path_factory.mktemp("zc-app")
    folder = root / "folder" / NAME / VERSION
    shutil.copytree(FIXTURES / "package" / NAME / VERSION, folder)
    zpath = root / f"{NAME}-{VERSION}.zip"
    for rel, data in FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                os.utime(path, (STAMP, STAMP))
                info = zipfile.ZipInfo(f"{NAME}-{VERSION}/{path.relative_to(folder).as_posix()}")
                info.date_time = (2024, 5, 6, 7, 8, 10)
                zf.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
    return folder, zpath


def _app(tree: FolderTree | ZipTree, extract_dir: Path) -> ASGIApp:
    index = RegistryIndex([[read_package(tree, validate=False)]])
    options = AppOptions(
        cache_time_catch_all=1.0, extract_cache_bytes=64 << 20, extract_dir=str(extract_dir)
    )
    return create_app(PrefixRegistry(index, {}), options)


def _normal(status: int, headers: list[tuple[str, str]], body: bytes) -> tuple[Any, ...]:
    boundary = None
    for key, value in headers:
        if key == "content-type" and value.startswith("multipart/byteranges; boundary="):
            boundary = value.partition("boundary=")[2]
    kept = [(k, v) for k, v in headers if k != "date"]
    if boundary:
        kept = [(k, v.replace(boundary, "B")) for k, v in kept]
        body = body.replace(boundary.encode(), b"B")
    return status, kept, hashlib.sha256(body).hexdigest(), len(body)


def _parse(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.lower(), value.strip()))
    return status, headers, body


@pytest.fixture(params=["folder", "zip"])
def kind_app(
    request: pytest.FixtureRequest, trees: tuple[Path, Path], tmp_path: Path
) -> Iterator[tuple[str, ASGIApp]]:
    folder, zpath = trees
    tree = FolderTree(folder) if request.param == "folder" else ZipTree.open(zpath)
    yield request.param, _app(tree, tmp_path)


def test_answers_over_zero_copy_are_those_of_the_ordinary_path(
    kind_app: tuple[str, ASGIApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, app = kind_app
    calls: list[tuple[int, int]] = []
    real = zerocopy.send_file

    async def counting(cycle: Any, message: Any, send_body: Any) -> None:
        calls.append((message["offset"], message["count"]))
        await real(cycle, message, send_body)

    monkeypatch.setattr(zerocopy, "send_file", counting)
    server = Running(Listener(app, bind_socket("127.0.0.1:0"), eager=True), uvloop.new_event_loop)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
            reader = Reader(conn)
            for rel in FILES:
                target = f"/package/{NAME}/{VERSION}/{rel}"
                for method, headers in REQUESTS:
                    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                    conn.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode())
                    got = _parse(reader.response(head_only=method == "HEAD"))
                    want: Result = request(
                        app, target, method=method, headers=list(headers.items())
                    )
                    assert want.pathsend is None
                    assert _normal(*got) == _normal(want.status, want.headers, want.body), (
                        rel,
                        method,
                        headers,
                    )
    finally:
        server.stop()
    # Whole files from the threshold and the multipart answers' slices; files of zips up to
    # 1 MiB are served from memory.
    assert (0, len(FILES["img/screenshot.png"])) in calls
    assert ((0, ZEROCOPY_BODY) in calls) is (kind == "folder")
    assert (65536, 200000 - 65536 + 1) in calls
    assert (0, ZEROCOPY_BODY - 1) not in calls


def _zc_send(planned: Planned, content: Any) -> list[MutableMapping[str, Any]]:
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == ZEROCOPY_EXTENSION:
            assert message["file"].fileno() >= 0  # still open while the server sends
        sent.append(dict(message))

    asyncio.run(send_response(send, planned, content, head=False, zerocopy=True))
    return sent


def test_files_from_the_threshold_go_out_as_zerocopy_slices(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(ZEROCOPY_BODY + 10))
    size = ZEROCOPY_BODY + 10
    content = FileContent.open(str(path))
    try:
        sent = _zc_send(Planned(200, [], [(0, size)], size), content)
        assert [m["type"] for m in sent] == ["http.response.start", ZEROCOPY_EXTENSION]
        assert (sent[1]["offset"], sent[1]["count"], sent[1]["more_body"]) == (0, size, False)
        parts: list[bytes | tuple[int, int]] = [b"--a\r\n", (5, 100), b"--b\r\n", (size - 7, 7)]
        sent = _zc_send(Planned(206, [], parts, ZEROCOPY_BODY), content)
        assert [m["type"] for m in sent[1:]] == [
            "http.response.body",
            ZEROCOPY_EXTENSION,
            "http.response.body",
            ZEROCOPY_EXTENSION,
        ]
        assert [m.get("more_body") for m in sent[1:]] == [True, True, True, False]
        assert (sent[2]["offset"], sent[2]["count"]) == (5, 100)
        # Below the threshold, and content not on disk: the ordinary body.
        sent = _zc_send(Planned(206, [], [(0, 100)], 100), content)
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    finally:
        content.close()
    assert content.fileno() == -1
    data = os.urandom(ZEROCOPY_BODY * 2)
    sent = _zc_send(Planned(200, [], [(0, len(data))], len(data)), BytesContent(data))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
