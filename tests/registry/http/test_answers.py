"""Answers sent again (registry/http/answers.py) through a real server on loopback.

The second identical request on a connection is answered from the rendered bytes of the
first, without the app: these tests check that it is the same answer byte for byte (but the
``date`` line), that it is logged and reported like the first, that a revision switch (a new
index) is never answered from the old one's bytes, and that requests the cache cannot answer
as a whole (HTTP/1.0, ``Connection: close``, a body, pipelined behind a slow one) still go to
the app.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from http_driver import FIXTURES, ONE_SECOND, load_index
from test_server import Running

from package_storage.logs import RequestLogMiddleware
from package_storage.registry.http.answers import Answer, AnswerCache, Reuse
from package_storage.registry.http.app import RequestRecord, SingleIndexRegistry, create_app
from package_storage.registry.http.server import Listener, bind_socket
from package_storage.registry.index import RegistryIndex

DATE = re.compile(rb"\r\ndate: [^\r]*\r\n")


class Served:
    """A read app on a real listener with its answer cache, request records and log lines."""

    def __init__(self, index: RegistryIndex) -> None:
        self.registry = SingleIndexRegistry(index)
        self.records: list[RequestRecord] = []
        self.lines: list[logging.LogRecord] = []
        options = replace(ONE_SECOND, request_logger=self.records.append)
        logger = logging.getLogger("test_answers.access")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.handlers = [_ListHandler(self.lines)]
        app = RequestLogMiddleware(create_app(self.registry, options), logger=logger)
        self.answers = AnswerCache()
        self.running = Running(
            Listener(app, bind_socket("127.0.0.1:0"), eager=True, answers=self.answers)
        )

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.running.port), timeout=10)


class _ListHandler(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@pytest.fixture
def served(setup_d_index: RegistryIndex) -> Iterator[Served]:
    server = Served(setup_d_index)
    try:
        yield server
    finally:
        server.running.stop()


def _request(target: str, method: str = "GET", *extra: str, version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: registry.test", *extra, "", ""]
    return "\r\n".join(lines).encode()


class Reader:
    """Reads whole responses (head + Content-Length body) from one connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        self.buffer += chunk
        return bool(chunk)

    def response(self, head_only: bool = False) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed; got {self.buffer!r}"
        end = self.buffer.index(b"\r\n\r\n") + 4
        head = self.buffer[:end]
        match = re.search(rb"\r\ncontent-length: (\d+)\r\n", head)
        length = 0 if head_only or match is None else int(match.group(1))
        while len(self.buffer) < end + length:
            assert self._fill(), "connection closed inside a body"
        whole, self.buffer = self.buffer[: end + length], self.buffer[end + length :]
        return whole

    def closed(self) -> bool:
        while self._fill():
            pass
        return self.buffer == b""


def _exchange(sock: socket.socket, reader: Reader, request: bytes, head: bool = False) -> bytes:
    sock.sendall(request)
    return reader.response(head_only=head)


def _undated(response: bytes) -> bytes:
    assert len(DATE.findall(response)) == 1, response[:300]
    return DATE.sub(b"\r\ndate: -\r\n", response)


def test_second_answer_is_the_first_again_and_logged(served: Served) -> None:
    with served.connect() as sock:
        reader = Reader(sock)
        first = _exchange(sock, reader, _request("/search?package=example"))
        second = _exchange(sock, reader, _request("/search?package=example"))
        third = _exchange(sock, reader, _request("/search?package=example"))
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert _undated(second) == _undated(first) == _undated(third)
    assert served.answers.hits == 2
    # the server reports a request after its answer went out: wait for the third (bounded)
    deadline = time.monotonic() + 10
    while (len(served.records) < 3 or len(served.lines) < 3) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(r.url, r.route, r.status, r.body_bytes) for r in served.records] == [
        ("/search?package=example", "/search", 200, len(first) - first.index(b"\r\n\r\n") - 4)
    ] * 3
    fields = [line.__dict__["fields"] for line in served.lines]
    assert len(fields) == 3
    for one in fields:
        one.pop("event.duration")
    assert fields[0] == fields[1] == fields[2]
    assert fields[0]["url.query"] == "package=example"
    assert fields[0]["http.response.code"] == 200


def test_each_negotiation_is_its_own_answer(served: Served) -> None:
    with served.connect() as sock:
        reader = Reader(sock)
        plain = _exchange(sock, reader, _request("/categories"))
        gzip = _exchange(sock, reader, _request("/categories", "GET", "Accept-Encoding: gzip"))
        etag = re.search(rb"\r\netag: ([^\r]*)\r\n", plain)
        assert etag is not None
        unchanged = _exchange(
            sock, reader, _request("/categories", "GET", "If-None-Match: " + etag.group(1).decode())
        )
        rounds = [
            (_request("/categories"), plain),
            (_request("/categories", "GET", "Accept-Encoding: gzip"), gzip),
            (
                _request("/categories", "GET", "If-None-Match: " + etag.group(1).decode()),
                unchanged,
            ),
        ]
        for request, expected in rounds * 2:
            assert _undated(_exchange(sock, reader, request)) == _undated(expected)
    assert b"content-encoding: gzip" in gzip and b"content-encoding" not in plain
    assert unchanged.startswith(b"HTTP/1.1 304 ")
    assert served.answers.hits == 6


def test_head_and_get_are_kept_apart(served: Served) -> None:
    with served.connect() as sock:
        reader = Reader(sock)
        answers = []
        for _ in range(2):
            answers.append(_exchange(sock, reader, _request("/", "HEAD"), head=True))
            answers.append(_exchange(sock, reader, _request("/")))
    head, get = answers[0], answers[1]
    assert head.endswith(b"\r\n\r\n")
    assert _undated(get[: get.index(b"\r\n\r\n") + 4]) == _undated(head)
    assert _undated(answers[2]) == _undated(head)
    assert _undated(answers[3]) == _undated(get)
    assert served.answers.hits == 2
    # the next request on the connection is still read right after a replayed HEAD
    assert get.endswith(b"}\n")


def test_a_new_index_is_never_answered_from_the_old(served: Served) -> None:
    other = load_index(FIXTURES / "package")
    with served.connect() as sock:
        reader = Reader(sock)
        before = _exchange(sock, reader, _request("/search?all=true"))
        assert _undated(_exchange(sock, reader, _request("/search?all=true"))) == _undated(before)
        served.registry.swap(other)
        after = _exchange(sock, reader, _request("/search?all=true"))
        again = _exchange(sock, reader, _request("/search?all=true"))
    assert _undated(after) != _undated(before)
    assert _undated(again) == _undated(after)
    assert served.answers.hits == 2  # one before the switch, one after


def test_pipelined_requests_come_back_in_order(served: Served) -> None:
    targets = ["/search?package=example", "/categories", "/search?package=example", "/"]
    with served.connect() as sock:
        reader = Reader(sock)
        expected = [_undated(_exchange(sock, reader, _request(t))) for t in targets]
        sock.sendall(b"".join(_request(t) for t in targets))
        got = [_undated(reader.response()) for _ in targets]
    assert got == expected
    assert served.answers.hits >= 2


def test_requests_that_cannot_be_replayed_go_to_the_app(served: Served) -> None:
    with served.connect() as sock:
        reader = Reader(sock)
        warm = _exchange(sock, reader, _request("/categories"))
    hits = served.answers.hits
    # HTTP/1.0 and Connection: close: the answer says it closes, and the connection is closed
    for request in (
        _request("/categories", version="1.0"),
        _request("/categories", "GET", "Connection: close"),
    ):
        with served.connect() as sock:
            reader = Reader(sock)
            sock.sendall(request)
            answer = reader.response()
            assert b"\r\nconnection: close\r\n" in answer
            assert answer.split(b"\r\n\r\n", 1)[1] == warm.split(b"\r\n\r\n", 1)[1]
            assert reader.closed()
    # a request with a body, and an unknown method
    with served.connect() as sock:
        reader = Reader(sock)
        with_body = _exchange(
            sock, reader, _request("/categories", "GET", "Content-Length: 2") + b"{}"
        )
        posted = _exchange(sock, reader, _request("/categories", "POST", "Content-Length: 0"))
    assert with_body.split(b"\r\n\r\n", 1)[1] == warm.split(b"\r\n\r\n", 1)[1]
    assert posted.startswith(b"HTTP/1.1 ")
    # conditions the key does not hold (ranges, dates): to the app, every time
    with served.connect() as sock:
        reader = Reader(sock)
        for header in (
            "Range: bytes=0-9",
            "If-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT",
            "If-Range: x",
            "If-Match: *",
            "If-Unmodified-Since: Mon, 01 Jan 2024 00:00:00 GMT",
        ):
            for _ in range(2):
                _exchange(sock, reader, _request("/categories", "GET", header))
    assert served.answers.hits == hits


def test_answers_of_changing_content_are_not_kept(served: Served) -> None:
    with served.connect() as sock:
        reader = Reader(sock)
        for _ in range(2):
            _exchange(sock, reader, _request("/health"))
            _exchange(sock, reader, _request("/search?kibana.version=not-a-version"))
            _exchange(sock, reader, _request("/package/example/1.0.0"))  # strict-slash redirect
    assert served.answers.hits == 0
    assert len(served.answers) == 0


# --- the cache itself -------------------------------------------------------------------------


def _answer(body: bytes, valid: list[bool] | None = None) -> Answer:
    state = valid if valid is not None else [True]
    return Answer(
        status=200,
        status_line=b"HTTP/1.1 200 OK\r\n",
        tail=b"content-length: %d\r\n\r\n" % len(body),
        body=body,
        reuse=Reuse(lambda: state[0]),
        scope={"type": "http", "method": "GET", "path": "/", "headers": [], "client": None},
    )


def test_cache_bounds_entries_and_bytes_first_in_first_out() -> None:
    cache = AnswerCache(max_entries=3, max_bytes=10_000)
    for n in range(5):
        cache.put(n, _answer(b"x" * 100))
    assert len(cache) == 3
    assert cache.get(0) is None and cache.get(1) is None and cache.get(4) is not None
    cache.put("big", _answer(b"y" * 9_000))
    assert cache.bytes <= 10_000
    assert cache.get("big") is not None
    cache.put("huge", _answer(b"z" * 20_000))  # above the bound: not kept
    assert cache.get("huge") is None
    assert cache.bytes <= 10_000


def test_cache_drops_an_answer_that_no_longer_holds() -> None:
    valid = [True]
    cache = AnswerCache()
    cache.put("k", _answer(b"body", valid))
    assert cache.get("k") is not None
    valid[0] = False
    assert cache.get("k") is None
    assert len(cache) == 0 and cache.bytes == 0


def test_replay_tells_every_observer_with_its_own_headers_and_client() -> None:
    seen: list[tuple[Any, ...]] = []
    reuse = Reuse(lambda: True)
    reuse.observe(
        lambda scope, status, size, ns: seen.append(
            (scope["headers"], scope["client"], scope["path"], status, size)
        )
    )
    answer = Answer(
        status=200,
        status_line=b"HTTP/1.1 200 OK\r\n",
        tail=b"\r\n",
        body=b"abc",
        reuse=reuse,
        scope={"type": "http", "path": "/x", "headers": [(b"a", b"1")], "client": ("1.2.3.4", 1)},
    )
    answer.replayed([(b"b", b"2")], ("5.6.7.8", 2), 10)
    assert seen == [([(b"b", b"2")], ("5.6.7.8", 2), "/x", 200, 3)]


@pytest.fixture
def everything_big(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every body counts as big: replays go out with sendfile from the answer's memory file."""
    from package_storage.registry.http import answers, server

    monkeypatch.setattr(answers, "SENDFILE_MIN_BYTES", 1)
    monkeypatch.setattr(server, "JOIN_BODY_BYTES", 0)


@pytest.mark.usefixtures("everything_big")
def test_big_answers_go_out_with_sendfile_unchanged(served: Served) -> None:
    with served.connect() as sock:
        reader = Reader(sock)
        first = _exchange(sock, reader, _request("/search?all=true"))
        again = [_exchange(sock, reader, _request("/search?all=true")) for _ in range(3)]
        head = _exchange(sock, reader, _request("/search?all=true", "HEAD"), head=True)
        head_again = _exchange(sock, reader, _request("/search?all=true", "HEAD"), head=True)
    assert all(_undated(one) == _undated(first) for one in again)
    assert _undated(head_again) == _undated(head)
    assert served.answers.hits == 4
    kept = [a for a in served.answers._items.values() if a.body]
    assert kept and all(a._fd >= 0 for a in kept)  # the memory file was made and used


@pytest.mark.usefixtures("everything_big")
def test_big_answers_to_a_slow_reader_arrive_whole_and_in_order(served: Served) -> None:
    with served.connect() as sock:
        reader = Reader(sock)
        expected = [
            _undated(_exchange(sock, reader, _request(t)))
            for t in ("/search?all=true", "/categories")
        ]
    with socket.socket() as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(10)
        slow.connect(("127.0.0.1", served.running.port))
        slow.sendall(b"".join(_request(t) for t in ("/search?all=true", "/categories") * 10))
        time.sleep(0.2)  # let the server fill the socket before anything is read
        reader = Reader(slow)
        got = [_undated(reader.response()) for _ in range(20)]
    assert got == expected * 10
    assert served.answers.hits >= 2


def test_dropped_answers_close_their_memory_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from package_storage.registry.http import answers

    monkeypatch.setattr(answers, "SENDFILE_MIN_BYTES", 1)
    cache = AnswerCache(max_entries=2)
    kept = [_answer(b"x" * 1000) for _ in range(3)]
    fds = []
    for n, one in enumerate(kept):
        cache.put(n, one)
        fd = one.file()
        assert fd is not None and os.pread(fd, 4, 0) == b"xxxx"
        fds.append(fd)
    assert kept[0]._fd == -1  # pushed out: closed
    cache.clear()
    assert all(one._fd == -1 for one in kept)
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_files_of_zip_packages_are_sent_again_not_those_of_folders(served: Served) -> None:
    zipped = "/package/example/1.0.1/manifest.yml"  # local-storage/example-1.0.1.zip
    folder = "/package/example/1.0.0/manifest.yml"  # package/example/1.0.0/ on disk
    with served.connect() as sock:
        reader = Reader(sock)
        first = _exchange(sock, reader, _request(zipped))
        again = _exchange(sock, reader, _request(zipped))
        head = _exchange(sock, reader, _request(zipped, "HEAD"), head=True)
        head_again = _exchange(sock, reader, _request(zipped, "HEAD"), head=True)
        hits = served.answers.hits
        on_disk = [_exchange(sock, reader, _request(folder)) for _ in range(3)]
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"last-modified: " in first
    assert _undated(again) == _undated(first)
    assert _undated(head_again) == _undated(head)
    assert hits == 2
    assert all(one.startswith(b"HTTP/1.1 200 OK\r\n") for one in on_disk)
    assert served.answers.hits == hits  # a folder's file may change on disk: never replayed


def test_keep_alive_time_out_still_closes_idle_connections_only(
    monkeypatch: pytest.MonkeyPatch, setup_d_index: RegistryIndex
) -> None:
    from package_storage.registry.http import server as server_module

    timeout = 1
    monkeypatch.setattr(server_module, "KEEP_ALIVE_SECONDS", timeout)
    served = Served(setup_d_index)
    try:
        with served.connect() as sock:
            reader = Reader(sock)
            last = time.monotonic()
            for n in range(40):  # busy for several time-outs, mostly replays
                target = "/categories" if n % 10 else "/search?package=example"
                sock.sendall(_request(target))
                try:
                    answer = reader.response()
                except AssertionError:
                    # closed: only right when this machine left the connection idle that long
                    assert time.monotonic() - last >= timeout, f"closed while busy (request {n})"
                    return
                assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
                last = time.monotonic()
                time.sleep(timeout / 10)
            assert served.answers.hits > 30
            sock.settimeout(30)
            assert sock.recv(1) == b""  # idle now: the server closes it
            assert time.monotonic() - last >= timeout * 0.9
    finally:
        served.running.stop()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.usefixtures("everything_big")
def test_connections_that_sent_big_answers_leave_no_descriptor_behind(served: Served) -> None:
    with served.connect() as sock:  # warm: the answer and its memory file exist
        reader = Reader(sock)
        for _ in range(2):
            _exchange(sock, reader, _request("/search?all=true"))
    baseline = _open_fds()
    for _ in range(5):
        with served.connect() as sock:
            reader = Reader(sock)
            for _ in range(2):
                _exchange(sock, reader, _request("/search?all=true"))
            # the server's close reaches the client although a duplicate descriptor was open
            sock.sendall(_request("/categories", "GET", "Connection: close"))
            assert b"\r\nconnection: close\r\n" in reader.response()
            assert reader.closed()
    deadline = time.monotonic() + 10
    while _open_fds() > baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _open_fds() <= baseline
    assert served.answers.hits >= 11
