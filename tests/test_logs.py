from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from package_storage.logs import (
    FATAL,
    Message,
    RequestLogMiddleware,
    Scope,
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
