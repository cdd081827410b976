from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from package_storage.errors import ConfigError
from package_storage.registry.http.server import (
    Listener,
    bind_socket,
    build_ssl_context,
    parse_address,
    serve_listeners,
)
from tls_helpers import self_signed


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("localhost:8080", ("localhost", 8080)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        (":8080", ("", 8080)),
        ("[::1]:9000", ("::1", 9000)),
        ("0.0.0.0:", ("0.0.0.0", 0)),
    ],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("localhost", "address localhost: missing port in address"),
        ("::1:80", "address ::1:80: too many colons in address"),
        ("[::1]", "address [::1]: missing port in address"),
        ("h:99999", "address h:99999: invalid port '99999'"),
        ("h:http", "address h:http: invalid port 'http'"),
    ],
)
def test_parse_address_errors(address: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_address(address)
    assert info.value.message == message


def test_bind_busy_port() -> None:
    first = bind_socket("127.0.0.1:0")
    try:
        port = first.getsockname()[1]
        with pytest.raises(ConfigError, match=f"listen tcp 127.0.0.1:{port}: bind: "):
            bind_socket(f"127.0.0.1:{port}")
    finally:
        first.close()


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"hello"})


class Running:
    """``serve_listeners`` on its own event loop (asyncio by default, or uvloop) in a thread."""

    def __init__(
        self,
        listener: Listener,
        new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    ) -> None:
        self.port = int(listener.sock.getsockname()[1])
        self._loop = new_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(listener,), daemon=True)
        self._thread.start()
        assert self._ready.wait(30)

    def _run(self, listener: Listener) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await serve_listeners([listener], self._stop)

        self._loop.run_until_complete(main())
        self._loop.close()

    def stop(self) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive()


def _raw_get(port: int, context: ssl.SSLContext | None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        conn: socket.socket = (
            context.wrap_socket(raw, server_hostname="localhost") if context else raw
        )
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_plain_listener_and_stop() -> None:
    server = Running(Listener(_hello, bind_socket("127.0.0.1:0")))
    try:
        answer = _raw_get(server.port, None)
        assert answer.startswith(b"HTTP/1.1 200")
        assert answer.endswith(b"hello")
        assert b"server: uvicorn" not in answer.lower()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    crt, key = self_signed(tmp_path_factory.mktemp("tls"), "localhost")
    yield str(crt), str(key)


def _client(max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        context.maximum_version = max_version
    return context


def test_tls_min_version(cert: tuple[str, str]) -> None:
    context = build_ssl_context(cert[0], cert[1], ssl.TLSVersion.TLSv1_3)
    server = Running(Listener(_hello, bind_socket("127.0.0.1:0"), context))
    try:
        assert _raw_get(server.port, _client()).endswith(b"hello")
        with pytest.raises(ssl.SSLError):
            _raw_get(server.port, _client(ssl.TLSVersion.TLSv1_2))
    finally:
        server.stop()


def test_tls_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loading TLS certificate"):
        build_ssl_context(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"), None)


# --- one write per response ----------------------------------------------------------------------


class _RecordingTransport:
    """Records what Uvicorn's cycle writes (the real cycle class, a recording transport)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, parts: Any) -> None:
        self.calls.append(("writelines", b"".join(parts)))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _cycle(method: str = "GET", keep_alive: bool = True) -> tuple[Any, _RecordingTransport]:
    import logging

    from uvicorn.protocols.http.flow_control import FlowControl

    from package_storage.registry.http.server import OneWriteCycle

    transport = _RecordingTransport()
    scope = {"type": "http", "method": method, "http_version": "1.1", "headers": []}
    cycle = OneWriteCycle(
        scope=scope,  # type: ignore[arg-type]
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )
    return cycle, transport


def _respond(cycle: Any, bodies: list[bytes], length: int) -> None:
    async def run() -> None:
        headers = [(b"content-length", str(length).encode())]
        await cycle.send({"type": "http.response.start", "status": 200, "headers": headers})
        for k, body in enumerate(bodies):
            more = k < len(bodies) - 1
            await cycle.send({"type": "http.response.body", "body": body, "more_body": more})

    asyncio.run(run())


def test_head_and_small_body_go_out_in_one_write() -> None:
    cycle, transport = _cycle()
    _respond(cycle, [b"hello"], 5)
    assert len(transport.calls) == 1
    kind, data = transport.calls[0]
    assert kind == "write"
    assert data == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
    assert cycle.response_complete


def test_large_body_is_one_writelines_and_later_parts_follow() -> None:
    big = b"x" * (200 << 10)
    cycle, transport = _cycle()
    _respond(cycle, [big, b"tail"], len(big) + 4)
    assert [kind for kind, _ in transport.calls] == ["writelines", "write"]
    assert transport.calls[0][1].endswith(b"\r\n\r\n" + big)
    assert transport.calls[1][1] == b"tail"


def test_head_request_writes_the_head_alone() -> None:
    for keep_alive in (True, False):
        cycle, transport = _cycle("HEAD", keep_alive=keep_alive)
        _respond(cycle, [b""], 5)
        assert len(transport.calls) == 1
        assert transport.calls[0][1].startswith(b"HTTP/1.1 200 OK\r\n")
        assert transport.calls[0][1].endswith(b"\r\n\r\n")
        assert transport.closed is not keep_alive


def test_real_server_answers_keep_alive_and_head() -> None:
    server = Running(Listener(_hello, bind_socket("127.0.0.1:0"), eager=True))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
            conn.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        answer = b"".join(chunks)
        assert answer.count(b"HTTP/1.1 200 OK\r\n") == 3
        assert answer.count(b"hello") == 2
        assert answer.endswith(b"\r\n\r\n")  # the HEAD answer: no body
    finally:
        server.stop()


# --- requests start without a task --------------------------------------------------------------


async def _waits_then_answers(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:  # reads the request body (suspends until it has arrived)
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await asyncio.sleep(0.01)  # and waits on the loop before answering
    answer = b"got " + body
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


async def _fails(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("broken app")


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_request_that_waits_continues_in_a_task() -> None:
    server = Running(Listener(_waits_then_answers, bind_socket("127.0.0.1:0"), eager=True))
    try:
        post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(post)  # headers first: the app starts and must wait for the body
            conn.sendall(b"hello")
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        answer = b"".join(chunks)
        assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2
        assert b"got hello" in answer
        assert answer.endswith(b"\r\n\r\ngot ")
    finally:
        server.stop()


def test_a_failing_app_gets_the_500() -> None:
    server = Running(Listener(_fails, bind_socket("127.0.0.1:0"), eager=True))
    try:
        answer = _exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert answer.endswith(b"Internal Server Error")
    finally:
        server.stop()


def test_pipelined_requests_are_answered_in_order() -> None:
    server = Running(Listener(_hello, bind_socket("127.0.0.1:0"), eager=True))
    try:
        raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50
        answer = _exchange(
            server.port, raw + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert answer.count(b"HTTP/1.1 200 OK\r\n") == 51
        assert answer.count(b"hello") == 51
    finally:
        server.stop()


def test_resumed_coroutine_passes_values_and_exceptions() -> None:
    from package_storage.registry.http.server import _resume

    async def inner() -> str:
        await asyncio.sleep(0)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "cancelled inside"
        return "not reached"

    async def main() -> str:
        coro = inner()
        pending = coro.send(None)  # started outside a task, suspended on sleep(0)
        task = asyncio.get_running_loop().create_task(_resume(coro, pending))
        await asyncio.sleep(0.01)
        task.cancel()
        return await task

    assert asyncio.run(main()) == "cancelled inside"


async def _reports_its_task(scope: Any, receive: Any, send: Any) -> None:
    answer = b"task" if asyncio.current_task() is not None else b"none"
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.mark.parametrize(("eager", "expected"), [(False, b"task"), (True, b"none")])
def test_only_eager_listeners_run_requests_without_a_task(eager: bool, expected: bytes) -> None:
    # Frameworks (Starlette/anyio with sniffio installed) need a current task: a listener
    # that is not explicitly eager (the management API, the web UI, metrics) gives them one.
    server = Running(Listener(_reports_its_task, bind_socket("127.0.0.1:0"), eager=eager))
    try:
        answer = _exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200")
        assert answer.endswith(b"\r\n\r\n" + expected)
    finally:
        server.stop()
