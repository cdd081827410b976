"""Logging like the reference registry: ECS JSON lines (default) or a human ``dev`` format.

Both write to stderr. ECS lines carry ``@timestamp``, ``log.level``, ``message``, ``ecs.version``,
``service.name``, ``log.logger`` and any structured fields passed with ``extra={"fields": {...}}``.
Level names are zap's (``debug``, ``info``, ``warn``, ``error``, ``dpanic``, ``panic``,
``fatal``). :class:`RequestLogMiddleware` logs one line per HTTP request with the reference's ECS
http fields, except requests whose raw target is exactly ``/health``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

ECS_VERSION = "1.6.0"
SERVICE_NAME = "package-registry"
ROOT_LOGGER = "package_storage"

DPANIC = 45
PANIC = 48
FATAL = 50

_LEVEL_NUMBERS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "dpanic": DPANIC,
    "panic": PANIC,
    "fatal": FATAL,
}
_LEVEL_NAMES: Mapping[int, str] = {v: k for k, v in _LEVEL_NUMBERS.items()}


def zap_level_name(levelno: int) -> str:
    """The zap name of a Python level number (rounded down to the nearest known level)."""
    best = "debug"
    for number, name in sorted(_LEVEL_NAMES.items()):
        if levelno >= number:
            best = name
    return best


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, Mapping) else {}


class ECSFormatter(logging.Formatter):
    """One ECS JSON object per line (keys in the order the reference's ecszap writes them)."""

    def __init__(self, service_name: str = SERVICE_NAME) -> None:
        super().__init__()
        self.service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, tz=UTC)
        doc: dict[str, Any] = {
            "log.level": zap_level_name(record.levelno),
            "@timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "log.logger": _logger_name(record.name),
            "log.origin": {"file.name": record.filename, "file.line": record.lineno},
            "message": record.getMessage(),
            "ecs.version": ECS_VERSION,
            "service.name": self.service_name,
        }
        doc.update(_fields(record))
        if record.exc_info and record.exc_info[1] is not None:
            doc["error.message"] = str(record.exc_info[1])
            doc["error.type"] = type(record.exc_info[1]).__name__
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)


class DevFormatter(logging.Formatter):
    """``<time>\\t<LEVEL>\\t<logger>\\t<message>\\t{fields}`` like zap's development console."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).astimezone()
        parts = [
            ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}" + ts.strftime("%z"),
            zap_level_name(record.levelno).upper(),
            _logger_name(record.name),
            record.getMessage(),
        ]
        fields = dict(_fields(record))
        if record.exc_info and record.exc_info[1] is not None:
            fields["error"] = str(record.exc_info[1])
        if fields:
            parts.append(json.dumps(fields, ensure_ascii=False, default=str))
        return "\t".join(parts)


def _logger_name(name: str) -> str:
    if name == ROOT_LOGGER:
        return "main"
    prefix = ROOT_LOGGER + "."
    return name[len(prefix) :] if name.startswith(prefix) else name


def setup_logging(
    level: str = "info",
    log_type: str = "ecs",
    *,
    stream: TextIO | None = None,
    service_name: str = SERVICE_NAME,
) -> logging.Logger:
    """Configure the ``package_storage`` logger tree and return its root.

    ``level`` is a zap level name, ``log_type`` ``ecs`` or ``dev`` (anything else raises
    ``ValueError`` with the reference's text). Idempotent: replaces earlier handlers.
    """
    if log_type == "ecs":
        formatter: logging.Formatter = ECSFormatter(service_name)
    elif log_type == "dev":
        formatter = DevFormatter()
    else:
        raise ValueError(f'invalid logger type "{log_type}"')
    if level not in _LEVEL_NUMBERS:
        raise ValueError(f'unrecognized level: "{level}"')
    root = logging.getLogger(ROOT_LOGGER)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(_LEVEL_NUMBERS[level])
    root.propagate = False
    return root


def get_logger(name: str = "") -> logging.Logger:
    """A logger below the package root (``get_logger("http")`` -> ``log.logger: http``)."""
    return logging.getLogger(f"{ROOT_LOGGER}.{name}" if name else ROOT_LOGGER)


# --- request logging (ASGI middleware) ---------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestLogMiddleware:
    """Logs ``<METHOD> <path> HTTP/<v>`` with ECS http fields after each response.

    Fields (reference ``LoggingMiddleware``): ``source.address``, ``http.request.method``,
    ``url.path``, ``url.domain``, ``http.response.code``, ``http.response.body.bytes``,
    ``event.duration`` (ns), then ``source.ip``, ``http.request.referer``,
    ``user_agent.original``, ``url.query``, ``url.port`` when known. A request whose raw
    target is exactly ``/health`` is not logged (``/health?ready=true`` is, as in the reference).
    """

    def __init__(self, app: ASGIApp, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.logger = logger or get_logger("http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        raw_path: bytes = scope.get("raw_path") or scope.get("path", "").encode()
        query: bytes = scope.get("query_string", b"")
        if raw_path == b"/health" and not query:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter_ns()
        status = 200
        written = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, written
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                written += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._log(scope, status, written, time.perf_counter_ns() - start)

    def _log(self, scope: Scope, status: int, written: int, duration_ns: int) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        domain, port = _split_host_port(host)
        client = scope.get("client")
        source = str(client[0]) if client else ""
        method = str(scope.get("method", ""))
        path = str(scope.get("path", ""))
        fields: dict[str, Any] = {
            "source.address": source,
            "http.request.method": method,
            "url.path": path,
            "url.domain": domain,
            "http.response.code": status,
            "http.response.body.bytes": written,
            "event.duration": duration_ns,
        }
        if _is_ip(source):
            fields["source.ip"] = source
        else:
            fields["source.domain"] = source
        if referer := headers.get("referer"):
            fields["http.request.referer"] = referer
        if agent := headers.get("user-agent"):
            fields["user_agent.original"] = agent
        if query := scope.get("query_string", b""):
            fields["url.query"] = query.decode("latin-1")
        if port:
            fields["url.port"] = port
        proto = "HTTP/" + str(scope.get("http_version", "1.1"))
        self.logger.info("%s %s %s", method, path, proto, extra={"fields": fields})


def _split_host_port(host: str) -> tuple[str, int]:
    if host.startswith("["):
        end = host.find("]")
        if end != -1:
            rest = host[end + 1 :]
            port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 0
            return host[: end + 1], port
    head, sep, tail = host.rpartition(":")
    if sep and tail.isdigit() and ":" not in head:
        return head, int(tail)
    return host, 0


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
