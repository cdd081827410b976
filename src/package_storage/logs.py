"""Logging like the reference registry: ECS JSON lines (default) or a human ``dev`` format.

Both write to stderr. ECS lines carry ``@timestamp``, ``log.level``, ``message``, ``ecs.version``,
``service.name``, ``log.logger`` and any structured fields passed with ``extra={"fields": {...}}``.
Level names are zap's (``debug``, ``info``, ``warn``, ``error``, ``dpanic``, ``panic``,
``fatal``). :class:`RequestLogMiddleware` logs one line per HTTP request with the reference's ECS
http fields, except requests whose raw target is exactly ``/health``.

Off the hot path. Lines to stderr go through a :class:`LineWriter`: the caller only appends the
finished line to a queue; a writer thread writes what has gathered in one ``write`` every
:data:`FLUSH_INTERVAL` seconds (at once for ``error`` and above, and when too many lines wait).
Nothing is lost at a normal stop: :func:`flush_logs` (the server calls it when it stops) and
``logging.shutdown`` (at interpreter exit) write what is pending. The ECS access line is built
directly as a string (no ``LogRecord``, no ``json.dumps`` of a dict) with the same keys in the
same order as the formatter writes. A stream passed to :func:`setup_logging` is written
synchronously unless ``buffered=True``.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import json.encoder
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

ECS_VERSION = "1.6.0"
SERVICE_NAME = "package-registry"
ROOT_LOGGER = "package_storage"
# Seconds between two writes of the buffered stderr log.
FLUSH_INTERVAL = 0.1
# More pending lines than this are written at once by the caller (back pressure).
MAX_PENDING_LINES = 50_000

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


# --- writing ------------------------------------------------------------------------------------


class LineWriter:
    """Writes log lines to a text stream, synchronously or buffered by a writer thread.

    ``interval=None``: every line is written (and flushed) by the caller. Otherwise
    :meth:`write` only appends to a queue (thread-safe, no lock) and a daemon thread writes
    the queued lines in one ``write`` every ``interval`` seconds; :meth:`flush` writes them
    now (from any thread), :meth:`close` flushes and stops the thread. A forked child gets a
    writer thread of its own.
    """

    def __init__(self, stream: TextIO, *, interval: float | None = FLUSH_INTERVAL) -> None:
        self.stream = stream
        self.interval = interval
        self._pending: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        if interval is not None:
            self._start()
            _WRITERS.add(self)

    @property
    def buffered(self) -> bool:
        return self.interval is not None

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = self.interval or FLUSH_INTERVAL
        while not self._closed.wait(interval):
            self.flush()

    def write(self, line: str) -> None:
        """Write one line (without its newline)."""
        if self.interval is None or self._closed.is_set():
            with self._lock:
                self._write(line + "\n")
            return
        pending = self._pending
        pending.append(line)
        if len(pending) > MAX_PENDING_LINES:
            self.flush()

    def flush(self) -> None:
        """Write every pending line now."""
        with self._lock:
            pending = self._pending
            count = len(pending)
            if count == 0:
                return
            lines = [pending.popleft() for _ in range(count)]
            lines.append("")
            self._write("\n".join(lines))

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing to report it to
            pass

    def close(self) -> None:
        """Flush and stop the writer thread (later lines are written synchronously)."""
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.flush()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        if self.interval is not None and not self._closed.is_set():
            self._start()


_WRITERS: weakref.WeakSet[LineWriter] = weakref.WeakSet()


_HELD_AT_FORK: list[LineWriter] = []


def _before_fork() -> None:
    # No write is under way at the fork (the child would find the stream's lock taken).
    _HELD_AT_FORK[:] = list(_WRITERS)
    for writer in _HELD_AT_FORK:
        writer._lock.acquire()


def _after_fork_in_parent() -> None:
    for writer in _HELD_AT_FORK:
        writer._lock.release()
    _HELD_AT_FORK.clear()


def _after_fork_in_child() -> None:
    for writer in _HELD_AT_FORK:
        writer._after_fork()
    _HELD_AT_FORK.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


class LineHandler(logging.Handler):
    """A logging handler writing formatted records through a :class:`LineWriter`; records of
    level ``error`` and above are written at once."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.writer.write(line)
        if record.levelno >= logging.ERROR:
            self.writer.flush()

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        super().close()


_ROOT = logging.getLogger(ROOT_LOGGER)
# The installed handler's writer and service name when lines are ECS (the access fast path).
_access_sink: tuple[LineHandler, str] | None = None


def setup_logging(
    level: str = "info",
    log_type: str = "ecs",
    *,
    stream: TextIO | None = None,
    service_name: str = SERVICE_NAME,
    buffered: bool | None = None,
) -> logging.Logger:
    """Configure the ``package_storage`` logger tree and return its root.

    ``level`` is a zap level name, ``log_type`` ``ecs`` or ``dev`` (anything else raises
    ``ValueError`` with the reference's text). Idempotent: replaces (and flushes) earlier
    handlers. Lines go to ``stream`` (default stderr) through a :class:`LineWriter`, buffered
    by default for stderr and synchronous for a given stream (``buffered`` decides).
    """
    global _access_sink
    if log_type == "ecs":
        formatter: logging.Formatter = ECSFormatter(service_name)
    elif log_type == "dev":
        formatter = DevFormatter()
    else:
        raise ValueError(f'invalid logger type "{log_type}"')
    if level not in _LEVEL_NUMBERS:
        raise ValueError(f'unrecognized level: "{level}"')
    if buffered is None:
        buffered = stream is None
    root = logging.getLogger(ROOT_LOGGER)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    writer = LineWriter(
        stream if stream is not None else sys.stderr,
        interval=FLUSH_INTERVAL if buffered else None,
    )
    handler = LineHandler(writer)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(_LEVEL_NUMBERS[level])
    root.propagate = False
    _access_sink = (handler, service_name) if log_type == "ecs" else None
    return root


def flush_logs() -> None:
    """Write every pending line of the ``package_storage`` handlers now."""
    for handler in logging.getLogger(ROOT_LOGGER).handlers:
        handler.flush()


def get_logger(name: str = "") -> logging.Logger:
    """A logger below the package root (``get_logger("http")`` -> ``log.logger: http``)."""
    return logging.getLogger(f"{ROOT_LOGGER}.{name}" if name else ROOT_LOGGER)


# --- request logging (ASGI middleware) ---------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# An ``http.response.start`` message may carry, under this key, an object with ``observe(f)``:
# the server may send that answer again without calling the app, and tells ``f(scope, status,
# body bytes, duration ns)`` of each time (registry/http/answers.py).
REUSE_MESSAGE_KEY = "package_storage.reuse"


class RequestLogMiddleware:
    """Logs ``<METHOD> <path> HTTP/<v>`` with ECS http fields after each response.

    Fields (reference ``LoggingMiddleware``): ``source.address``, ``http.request.method``,
    ``url.path``, ``url.domain``, ``http.response.code``, ``http.response.body.bytes``,
    ``event.duration`` (ns), then ``source.ip``, ``http.request.referer``,
    ``user_agent.original``, ``url.query``, ``url.port`` when known. A request whose raw
    target is exactly ``/health`` is not logged (``/health?ready=true`` is, as in the reference).

    With the default logger and ECS lines set up by :func:`setup_logging`, the line is built
    as a string and handed to the handler's writer (the same bytes the formatter would give,
    in a fraction of the time); otherwise it goes through ``logger.info``.
    """

    def __init__(self, app: ASGIApp, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.fast = logger is None
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

        def send_wrapper(message: Message) -> Awaitable[None]:
            # A plain function handing back the server's awaitable: no coroutine of its own.
            nonlocal status, written
            if message["type"] == "http.response.start":
                status = int(message["status"])
                reuse = message.get(REUSE_MESSAGE_KEY)
                if reuse is not None:  # the server may send this answer again: log those too
                    reuse.observe(self.replayed)
            elif message["type"] == "http.response.body":
                written += len(message.get("body", b""))
            elif message["type"] == "http.response.zerocopysend":
                written += int(message.get("count", 0))
            return send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._record(scope, status, written, time.perf_counter_ns() - start)

    def replayed(self, scope: Scope, status: int, written: int, duration_ns: int) -> None:
        """Log an answer the server sent again from its rendered bytes (registry/http/answers.py)."""
        if self.logger.isEnabledFor(logging.INFO):
            self._record(scope, status, written, duration_ns)

    def _record(self, scope: Scope, status: int, written: int, duration_ns: int) -> None:
        sink = _access_sink if self.fast else None
        if sink is not None and sink[0] in _ROOT.handlers:
            sink[0].writer.write(access_line(scope, status, written, duration_ns, sink[1]))
        else:
            self._log(scope, status, written, duration_ns)

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


# JSON string literal of a str, as json.dumps(..., ensure_ascii=False) writes it.
_json_str: Callable[[str], str] = json.encoder.encode_basestring
# The slow path's record comes from the ``logger.info`` call, the last line of ``_log``.
_ACCESS_LINE_NUMBER = max(line or 0 for *_, line in RequestLogMiddleware._log.__code__.co_lines())
_ACCESS_ORIGIN = f'"log.origin":{{"file.name":"logs.py","file.line":{_ACCESS_LINE_NUMBER}}}'

_timestamp_second = -1
_timestamp_prefix = ""
_timestamp_ms = -1
_timestamp_text = ""


def _timestamp(now: float) -> str:
    """``2024-01-02T03:04:05.678Z`` for ``now``; the part up to the second is reused, and the
    whole text within the same millisecond (many requests fall in one)."""
    global _timestamp_second, _timestamp_prefix, _timestamp_ms, _timestamp_text
    ms = int(now * 1000)
    if ms == _timestamp_ms:
        return _timestamp_text
    second = ms // 1000
    if second != _timestamp_second:
        prefix = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _timestamp_second, _timestamp_prefix = second, prefix
    text = f"{_timestamp_prefix}{ms - second * 1000:03d}Z"
    _timestamp_ms, _timestamp_text = ms, text
    return text


# Per request target and client: the constant parts of the access line (bounded: cleared
# when full).
_LINE_PARTS_MAX = 4096
_line_parts: dict[tuple[Any, ...], tuple[str, str]] = {}


def access_line(scope: Scope, status: int, written: int, duration_ns: int, service: str) -> str:
    """The ECS access line of one request: the keys, order and values :class:`ECSFormatter`
    writes for :meth:`RequestLogMiddleware._log`'s record, without building the record.

    Everything but the time, status, size and duration repeats for the same request from the
    same client; those parts are kept (:data:`_line_parts`) and the line is one f-string.
    """
    host = referer = agent = b""
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"host":
            host = value
        elif name == b"user-agent":
            agent = value
        elif name == b"referer":
            referer = value
    client = scope.get("client")
    key = (
        scope.get("method", ""),
        scope.get("path", ""),
        scope.get("query_string", b""),
        scope.get("http_version", "1.1"),
        host,
        agent,
        referer,
        client[0] if client else "",
        service,
    )
    parts = _line_parts.get(key)
    if parts is None:
        parts = _line_parts_of(*key)
        if len(_line_parts) >= _LINE_PARTS_MAX:
            _line_parts.clear()
        _line_parts[key] = parts
    head, tail = parts
    return (
        f'{{"log.level":"info","@timestamp":"{_timestamp(time.time())}{head}{status}'
        f',"http.response.body.bytes":{written},"event.duration":{duration_ns}{tail}'
    )


def _line_parts_of(
    method: Any,
    path: Any,
    query: bytes,
    http_version: Any,
    host: bytes,
    agent: bytes,
    referer: bytes,
    client: Any,
    service: str,
) -> tuple[str, str]:
    """The access line around its variable fields: (after the timestamp up to the status,
    after the duration to the end)."""
    domain, port = _split_host_port(host.decode("latin-1"))
    source, method, path = str(client), str(method), str(path)
    source_json = _json_str(source)
    head = "".join(
        (
            '","log.logger":"http",',
            _ACCESS_ORIGIN,
            ',"message":',
            _json_str(f"{method} {path} HTTP/{http_version}"),
            f',"ecs.version":"{ECS_VERSION}","service.name":',
            _json_str(service),
            ',"source.address":',
            source_json,
            ',"http.request.method":',
            _json_str(method),
            ',"url.path":',
            _json_str(path),
            ',"url.domain":',
            _json_str(domain),
            ',"http.response.code":',
        )
    )
    tail = [',"source.ip":' if _is_ip(source) else ',"source.domain":', source_json]
    if referer:
        tail += ',"http.request.referer":', _json_str(referer.decode("latin-1"))
    if agent:
        tail += ',"user_agent.original":', _json_str(agent.decode("latin-1"))
    if query:
        tail += ',"url.query":', _json_str(query.decode("latin-1"))
    if port:
        tail.append(f',"url.port":{port}')
    tail.append("}")
    return head, "".join(tail)


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
