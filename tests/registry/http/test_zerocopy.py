"""The server's ``http.response.zerocopysend``: sendfile on plain TCP, the read fallback on TLS,
keep-alive, HEAD, clients that leave mid-transfer (real servers on loopback, uvloop and asyncio)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from test_server import Running

from package_storage.registry.http import static, zerocopy
from package_storage.registry.http.server import Listener, bind_socket
from tls_helpers import self_signed

BIG = 9 << 20  # larger than any loopback socket buffer: the transfer has to wait


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zc") / "big.bin"
    path.write_bytes(os.urandom(BIG))
    return path


class FileApp:
    """Serves ``path``: ``/whole``, ``/range?a-b`` (one slice), ``/two`` (body + file + body +
    file), ``/rest`` (no offset/count: from the file's position to its end). Records what it
    saw; the file is opened per request and closed after the send returned."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.advertised: list[bool] = []
        self.errors: list[BaseException] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        has = zerocopy.EXTENSION in (scope.get("extensions") or {})
        self.advertised.append(has)
        size = self.path.stat().st_size
        route = scope["path"]
        with self.path.open("rb") as file:
            if route == "/range":
                first, last = (int(x) for x in scope["query_string"].decode().split("-"))
                pieces: list[bytes | tuple[int, int]] = [(first, last - first + 1)]
            elif route == "/two":
                pieces = [b"<", (0, 1000), b"|", (size - 5000, 5000), b">"]
            elif route == "/rest":
                file.seek(1234)
                pieces = [(-1, size - 1234)]
            else:
                pieces = [(0, size)]
            length = sum(len(p) if isinstance(p, bytes) else p[1] for p in pieces)
            headers = [(b"content-length", str(length).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                for i, piece in enumerate(pieces):
                    more = i < len(pieces) - 1
                    if isinstance(piece, bytes):
                        await send({"type": "http.response.body", "body": piece, "more_body": more})
                    elif piece[0] < 0:
                        message = {"type": zerocopy.EXTENSION, "file": file, "more_body": more}
                        await send(message)
                        assert file.tell() == size  # the position moved like a read
                    else:
                        await send(
                            {
                                "type": zerocopy.EXTENSION,
                                "file": file,
                                "offset": piece[0],
                                "count": piece[1],
                                "more_body": more,
                            }
                        )
            except BaseException as exc:
                self.errors.append(exc)
                raise


def _expected(data: bytes, route: str) -> bytes:
    if route == "/two":
        return b"<" + data[:1000] + b"|" + data[-5000:] + b">"
    if route == "/rest":
        return data[1234:]
    if route.startswith("/range?"):
        first, last = (int(x) for x in route.partition("?")[2].split("-"))
        return data[first : last + 1]
    return data


class Reader:
    """Responses (headers + Content-Length body) one by one from a keep-alive connection."""

    def __init__(self, conn: socket.socket | ssl.SSLSocket) -> None:
        self.conn = conn
        self.buf = b""

    def _more(self) -> None:
        chunk = self.conn.recv(1 << 20)
        assert chunk, len(self.buf)
        self.buf += chunk

    def response(self, head_only: bool = False) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if head_only:
            return head + b"\r\n\r\n"
        while len(self.buf) < length:
            self._more()
        body, self.buf = self.buf[:length], self.buf[length:]
        return head + b"\r\n\r\n" + body


def _read_response(conn: socket.socket | ssl.SSLSocket) -> bytes:
    return Reader(conn).response()


LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    return LOOPS[request.param]


@pytest.mark.parametrize("eager", [True, False])
def test_files_go_out_whole_and_by_range_on_one_keep_alive_connection(
    big_file: Path,
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    eager: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits = 0
    real_wait = zerocopy._Writable.wait

    async def counting_wait(self: Any) -> None:
        nonlocal waits
        waits += 1
        await real_wait(self)

    monkeypatch.setattr(zerocopy._Writable, "wait", counting_wait)
    app = FileApp(big_file)
    server = Running(Listener(app, bind_socket("127.0.0.1:0"), eager=eager), loop_factory)
    data = big_file.read_bytes()
    routes = ["/whole", "/range?0-99", f"/range?{BIG - 100}-{BIG - 1}", "/range?5-4000000"]
    routes += ["/two", "/rest", "/whole"]
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            reader = Reader(conn)
            for route in routes:
                conn.sendall(f"GET {route} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                time.sleep(0.05)  # lets the socket fill: the transfer must wait for it
                answer = reader.response()
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 OK\r\n"), route
                expected = _expected(data, route)
                assert hashlib.sha256(body).digest() == hashlib.sha256(expected).digest(), route
            # Pipelined: both answers, in order, on the same connection.
            conn.sendall(b"GET /range?0-9 HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
            for _ in range(2):
                assert reader.response().endswith(b"\r\n\r\n" + data[:10])
            conn.sendall(b"HEAD /whole HTTP/1.1\r\nHost: x\r\n\r\n")
            head = reader.response(head_only=True)
            assert f"content-length: {BIG}\r\n".encode() in head
            conn.sendall(b"GET /range?0-9 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert reader.response().endswith(b"\r\n\r\n" + data[:10])  # nothing after HEAD
            assert reader.buf == b""
    finally:
        server.stop()
    assert app.advertised and all(app.advertised)
    assert not app.errors
    assert waits > 0  # the full-socket path ran


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("reset", [True, False])
def test_a_client_leaving_mid_transfer_leaves_the_server_healthy(
    big_file: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop], reset: bool
) -> None:
    app = FileApp(big_file)
    server = Running(Listener(app, bind_socket("127.0.0.1:0"), eager=True), loop_factory)
    try:
        # A first complete answer: the server's own descriptors are open by now.
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
            conn.sendall(b"GET /range?0-9 HTTP/1.1\r\nHost: x\r\n\r\n")
            _read_response(conn)
        baseline = _fd_count()
        for _ in range(8):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
            conn.sendall(b"GET /whole HTTP/1.1\r\nHost: x\r\n\r\n")
            got = 0
            while got < 200_000:
                chunk = conn.recv(65536)
                assert chunk
                got += len(chunk)
            if reset:  # RST instead of FIN
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        # Still serving, every transfer's descriptors closed (the file, the duplicate socket).
        deadline = time.monotonic() + 30
        while _fd_count() > baseline + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _fd_count() <= baseline + 1
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
            conn.sendall(b"GET /whole HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            body = _read_response(conn).partition(b"\r\n\r\n")[2]
            assert body == big_file.read_bytes()
    finally:
        server.stop()
    assert all(not isinstance(exc, OSError) for exc in app.errors)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    crt, key = self_signed(tmp_path_factory.mktemp("tls"), "localhost")
    yield str(crt), str(key)


def test_tls_is_not_advertised_and_a_zerocopy_message_still_works(
    big_file: Path, cert: tuple[str, str]
) -> None:
    from package_storage.registry.http.server import build_ssl_context

    context = build_ssl_context(cert[0], cert[1], None)
    app = FileApp(big_file)
    server = Running(Listener(app, bind_socket("127.0.0.1:0"), context), uvloop.new_event_loop)
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    data = big_file.read_bytes()
    try:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        with client.wrap_socket(raw, server_hostname="localhost") as conn:
            reader = Reader(conn)
            for route in ("/whole", "/range?100-200000", "/two"):
                conn.sendall(f"GET {route} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                body = reader.response().partition(b"\r\n\r\n")[2]
                assert body == _expected(data, route), route
    finally:
        server.stop()
    assert app.advertised == [False, False, False]  # the app would take its own path
    assert not app.errors


def test_advertise_only_on_plain_connections() -> None:
    class Transport:
        def __init__(self, tls: bool) -> None:
            self.tls = tls

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return object() if (name == "sslcontext" and self.tls) else default

    scope: dict[str, Any] = {}
    zerocopy.advertise(scope, Transport(False))  # type: ignore[arg-type]
    assert scope == {"extensions": {zerocopy.EXTENSION: {}}}
    scope = {"extensions": {"tls": {}}}
    zerocopy.advertise(scope, Transport(False))  # type: ignore[arg-type]
    assert set(scope["extensions"]) == {"tls", zerocopy.EXTENSION}
    scope = {}
    zerocopy.advertise(scope, Transport(True))  # type: ignore[arg-type]
    assert scope == {}
    assert static.ZEROCOPY_EXTENSION == zerocopy.EXTENSION


def test_a_transfer_stuck_on_a_client_that_reads_nothing_ends_with_the_server(
    big_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from package_storage.registry.http import server as server_module

    monkeypatch.setattr(server_module, "GRACEFUL_SHUTDOWN_SECONDS", 1)
    app = FileApp(big_file)
    server = Running(Listener(app, bind_socket("127.0.0.1:0"), eager=True), uvloop.new_event_loop)
    baseline = _fd_count()
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
        conn.sendall(b"GET /whole HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.2)  # the transfer fills the socket and waits
        server.stop()  # the graceful wait runs out, the request's task is cancelled
        # The connection really closes (no duplicate of its descriptor left open): EOF.
        got = 0
        while chunk := conn.recv(1 << 20):
            got += len(chunk)
        assert got < BIG
    finally:
        conn.close()
    assert _fd_count() <= baseline + 1
