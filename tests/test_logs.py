from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from package_storage.logs import (
    FATAL,
    LineWriter,
    Message,
    RequestLogMiddleware,
    Scope,
    flush_logs,
    get_logger,
    setup_logging,
    zap_level_name,
)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    yield out
    root = logging.getLogger("package_storage")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.propagate = True
    root.setLevel(logging.NOTSET)


def test_ecs_line(stream: io.StringIO) -> None:
    setup_logging("info", "ecs", stream=stream, service_name="svc")
    get_logger().info("hello %s", "world", extra={"fields": {"file.path": "/x"}})
    get_logger("sources").debug("not shown at info")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["message"] == "hello world"
    assert doc["log.level"] == "info"
    assert doc["ecs.version"] == "1.6.0"
    assert doc["service.name"] == "svc"
    assert doc["log.logger"] == "main"
    assert doc["file.path"] == "/x"
    assert doc["@timestamp"].endswith("Z")
    assert list(doc)[:2] == ["log.level", "@timestamp"]


def test_levels(stream: io.StringIO) -> None:
    setup_logging("warn", "ecs", stream=stream)
    log = get_logger("x")
    log.info("no")
    log.warning("w")
    log.log(FATAL, "f")
    levels = [json.loads(line)["log.level"] for line in stream.getvalue().splitlines()]
    assert levels == ["warn", "fatal"]
    assert zap_level_name(logging.ERROR) == "error"
    assert zap_level_name(logging.DEBUG) == "debug"


def test_dev_format(stream: io.StringIO) -> None:
    setup_logging("debug", "dev", stream=stream)
    get_logger("http").debug("msg", extra={"fields": {"a": 1}})
    parts = stream.getvalue().rstrip("\n").split("\t")
    assert parts[1:] == ["DEBUG", "http", "msg", '{"a": 1}']


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match='invalid logger type "json"'):
        setup_logging("info", "json")
    with pytest.raises(ValueError, match='unrecognized level: "trace"'):
        setup_logging("trace", "ecs")


async def _app(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"abc", "more_body": True})
    await send({"type": "http.response.body", "body": b"de"})


def _request(path: str, query: bytes = b"", host: bytes = b"example.com:8080") -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "http_version": "1.1",
        "client": ("127.0.0.1", 5555),
        "headers": [(b"host", host), (b"user-agent", b"ua/1"), (b"referer", b"http://r/")],
    }


def _run(app: RequestLogMiddleware, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_request_log_fields(stream: io.StringIO) -> None:
    setup_logging("info", "ecs", stream=stream)
    sent = _run(RequestLogMiddleware(_app), _request("/search", b"package=x"))
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
    ]
    doc = json.loads(stream.getvalue())
    assert doc["message"] == "GET /search HTTP/1.1"
    assert doc["log.logger"] == "http"
    assert doc["http.response.code"] == 404
    assert doc["http.response.body.bytes"] == 5
    assert doc["url.path"] == "/search"
    assert doc["url.query"] == "package=x"
    assert doc["url.domain"] == "example.com"
    assert doc["url.port"] == 8080
    assert doc["source.address"] == doc["source.ip"] == "127.0.0.1"
    assert doc["user_agent.original"] == "ua/1"
    assert doc["http.request.referer"] == "http://r/"
    assert isinstance(doc["event.duration"], int)


def test_health_not_logged_but_health_with_query_is(stream: io.StringIO) -> None:
    setup_logging("info", "ecs", stream=stream)
    app = RequestLogMiddleware(_app)
    _run(app, _request("/health"))
    assert stream.getvalue() == ""
    _run(app, _request("/health", b"ready=true"))
    assert json.loads(stream.getvalue())["url.path"] == "/health"


def test_ipv6_host(stream: io.StringIO) -> None:
    setup_logging("info", "ecs", stream=stream)
    _run(RequestLogMiddleware(_app), _request("/", host=b"[::1]:9000"))
    doc = json.loads(stream.getvalue())
    assert doc["url.domain"] == "[::1]"
    assert doc["url.port"] == 9000


# --- the fast access line and the buffered writer -----------------------------------------------


def _slow_and_fast(scope: Scope, service: str = "svc") -> tuple[dict[str, Any], dict[str, Any]]:
    """The access line of ``scope`` written through ``logger.info`` + ECSFormatter (an explicit
    logger) and through the fast path, both parsed."""
    slow_out, fast_out = io.StringIO(), io.StringIO()
    setup_logging("info", "ecs", stream=slow_out, service_name=service)
    _run(RequestLogMiddleware(_app, logger=get_logger("http")), scope)
    setup_logging("info", "ecs", stream=fast_out, service_name=service)
    _run(RequestLogMiddleware(_app), scope)
    slow_line, fast_line = slow_out.getvalue(), fast_out.getvalue()
    assert slow_line.endswith("\n") and fast_line.endswith("\n")
    assert slow_line.count("\n") == fast_line.count("\n") == 1
    return json.loads(slow_line), json.loads(fast_line)


def _without_clock(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("@timestamp", "event.duration")}


def test_fast_access_line_is_the_formatters_line(stream: io.StringIO) -> None:
    slow, fast = _slow_and_fast(_request("/search", b"package=x"))
    assert list(slow) == list(fast)  # same keys in the same order
    assert _without_clock(slow) == _without_clock(fast)
    assert fast["@timestamp"].endswith("Z") and len(fast["@timestamp"]) == 24


@given(
    path=st.text(max_size=30),
    query=st.binary(max_size=20),
    host=st.binary(max_size=20),
    agent=st.binary(max_size=20),
    client=st.sampled_from(["127.0.0.1", "::1", "example.com", ""]),
    service=st.text(max_size=10),
)
def test_fast_access_line_property(
    path: str, query: bytes, host: bytes, agent: bytes, client: str, service: str
) -> None:
    scope = _request(path, query, host=host)
    scope["headers"] = [(b"Host", host), (b"user-agent", agent)]
    scope["client"] = (client, 1) if client else None
    try:
        slow, fast = _slow_and_fast(scope, service)
    finally:
        logging.getLogger("package_storage").handlers.clear()
    assert list(slow) == list(fast)
    assert _without_clock(slow) == _without_clock(fast)


def test_buffered_writer_writes_on_flush_and_close(tmp_path: Any) -> None:
    path = tmp_path / "log"
    with path.open("w") as out:
        writer = LineWriter(out, interval=3600)  # the thread never wakes during the test
        writer.write("one")
        writer.write("two")
        assert path.read_text() == ""
        writer.flush()
        assert path.read_text() == "one\ntwo\n"
        writer.write("three")
        writer.close()
        assert path.read_text() == "one\ntwo\nthree\n"
        writer.write("after close")  # synchronous from now on
        assert path.read_text().endswith("three\nafter close\n")


def test_buffered_logging_errors_are_written_at_once(tmp_path: Any) -> None:
    path = tmp_path / "log"
    with path.open("w") as out:
        setup_logging("info", "ecs", stream=out, buffered=True)
        try:
            get_logger().info("pending")
            get_logger().error("broken")
            messages = [json.loads(line)["message"] for line in path.read_text().splitlines()]
            assert messages == ["pending", "broken"]
            get_logger().info("last")
            flush_logs()
            assert json.loads(path.read_text().splitlines()[-1])["message"] == "last"
        finally:
            root = logging.getLogger("package_storage")
            for handler in list(root.handlers):
                root.removeHandler(handler)
                handler.close()


def test_buffered_writer_thread_writes_without_flush(tmp_path: Any) -> None:
    path = tmp_path / "log"
    with path.open("w") as out:
        writer = LineWriter(out, interval=0.01)
        try:
            writer.write("by the thread")
            for _ in range(500):  # bounded: at most ~5 s
                if path.read_text():
                    break
                time.sleep(0.01)
            assert path.read_text() == "by the thread\n"
        finally:
            writer.close()
