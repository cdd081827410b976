"""HTTP serving: the read API on Uvicorn (uvloop + httptools), TLS, metrics listener, SIGTERM.

:func:`run_server` binds the listening sockets itself (clear errors, nothing listens before the
caller has loaded everything), runs the app behind :class:`~package_storage.logs.RequestLogMiddleware`
(Uvicorn's access log is off) and, when ``settings.metrics_address`` is set, a second listener
serving the metrics app on the same event loop. SIGTERM / SIGINT stop both gracefully (open
requests finish) and ``run_server`` returns normally.

``--server granian`` runs the app on Granian instead. Granian loads its target by import string
in its own worker, so the caller of :func:`run_granian` names a factory (``module:function``)
that rebuilds the app there from the settings passed in ``PACKAGE_STORAGE_GRANIAN_SETTINGS``
(:func:`settings_from_environment` reads them back); this module never imports its callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Generator, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from time import perf_counter_ns
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from package_storage.errors import ConfigError
from package_storage.logs import ASGIApp, RequestLogMiddleware, flush_logs, get_logger
from package_storage.registry.config import Settings
from package_storage.registry.http import zerocopy
from package_storage.registry.http.answers import (
    REUSE_EXTENSION,
    REUSE_MESSAGE_KEY,
    Answer,
    AnswerCache,
    Reuse,
)

log = get_logger("server")

GRACEFUL_SHUTDOWN_SECONDS = 30
# An idle keep-alive connection is closed after this long (Uvicorn's default).
KEEP_ALIVE_SECONDS = 5
GRANIAN_SETTINGS_ENV = "PACKAGE_STORAGE_GRANIAN_SETTINGS"


# --- addresses, sockets, TLS -------------------------------------------------------------------


def parse_address(address: str) -> tuple[str, int]:
    """Go ``net.SplitHostPort`` for listen addresses: ``host:port``, ``:port``, ``[v6]:port``."""
    if address.startswith("["):
        end = address.find("]")
        if end == -1:
            raise ConfigError(f"address {address}: missing ']' in address")
        host, rest = address[1:end], address[end + 1 :]
        if not rest.startswith(":"):
            raise ConfigError(f"address {address}: missing port in address")
        port_text = rest[1:]
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep:
            raise ConfigError(f"address {address}: missing port in address")
        if ":" in host:
            raise ConfigError(f"address {address}: too many colons in address")
    if port_text == "":
        port_text = "0"
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"address {address}: invalid port {port_text!r}")
    return host, int(port_text)


def bind_socket(address: str) -> socket.socket:
    """A listening TCP socket for ``address`` (empty host: every interface, IPv6 + IPv4)."""
    host, port = parse_address(address)
    candidates: list[tuple[int, Any]] = []
    if host == "":
        if socket.has_ipv6:
            candidates.append((socket.AF_INET6, ("::", port)))
        candidates.append((socket.AF_INET, ("0.0.0.0", port)))
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ConfigError(f"listen tcp {address}: lookup {host}: {exc.strerror}") from None
        # like Go: one address of the host, IPv4 first
        infos.sort(key=lambda i: 0 if i[0] == socket.AF_INET else 1)
        candidates.extend((family, sockaddr) for family, _t, _p, _c, sockaddr in infos)
    last: OSError | None = None
    for family, sockaddr in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and host == "":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(sockaddr)
            sock.listen(2048)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    detail = last.strerror if last is not None and last.strerror else str(last)
    raise ConfigError(f"listen tcp {address}: bind: {detail}")


def build_ssl_context(cert: str, key: str, min_version: ssl.TLSVersion | None) -> ssl.SSLContext:
    """Server TLS context from PEM files, with an optional minimum protocol version."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if min_version is not None:
        context.minimum_version = min_version
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"loading TLS certificate {cert} and key {key} failed: {exc}") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


# --- Uvicorn -----------------------------------------------------------------------------------

# Bodies up to this size are joined to the head (one copy is cheaper than a writev of two).
JOIN_BODY_BYTES = 64 << 10


class _HeadCapture:
    """Stands in for the transport while Uvicorn renders a response head: keeps the bytes."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def _write_joined(transport: Any, head: bytes, body: bytes) -> None:
    """``head`` and ``body`` in one write: joined when the body is small (one copy is cheaper
    than a writev of two), else both handed over together."""
    if not head:
        transport.write(body)
    elif not body:
        transport.write(head)
    elif len(body) <= JOIN_BODY_BYTES:
        transport.write(head + body)
    else:
        transport.writelines((head, body))


class _HeadFirst:
    """Stands in for the transport while the first body part is written: the held head goes
    out in the same write. Everything else is the real transport's."""

    __slots__ = ("head", "real")

    def __init__(self, real: Any, head: bytes) -> None:
        self.real = real
        self.head = head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, b""
        _write_joined(self.real, head, data)

    def close(self) -> None:
        # Connection: close after a response without body bytes (HEAD): the head first.
        if self.head:
            self.real.write(self.head)
            self.head = b""
        self.real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class OneWriteCycle(RequestResponseCycle):
    """Uvicorn's request/response cycle writing a response's head together with its first
    body part: one ``write`` (one syscall, one TCP segment for a small answer) instead of two.

    Uvicorn still renders and checks the head (``http.response.start``); its bytes are held
    until the next ``send`` and written with that message's body (alone when it writes
    nothing, e.g. HEAD).
    """

    _held: bytes | None = None
    # (offer, reuse, status, head) of an answer the app allows to send again (answers.py).
    _reusable: tuple[_Offer, Reuse, int, bytes] | None = None

    def run_asgi(self, app: Any) -> Coroutine[Any, Any, None]:
        zerocopy.advertise(self.scope, self.transport)  # type: ignore[arg-type]
        return super().run_asgi(app)

    async def send(self, message: Any) -> None:
        if message["type"] == zerocopy.EXTENSION:  # a file on disk: os.sendfile
            await zerocopy.send_file(self, message, self.send)
            return
        real = self.transport
        if message["type"] == "http.response.start" and not self.response_started:
            capture = _HeadCapture()
            self.transport = capture  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = real
            self._held = capture.data
            reuse = message.get(REUSE_MESSAGE_KEY)
            if reuse is not None and self.keep_alive:
                offered: Any = (self.scope.get("extensions") or {}).get(REUSE_EXTENSION)
                if isinstance(offered, _Offer):
                    self._reusable = (offered, reuse, message["status"], capture.data)
            return
        held = self._held
        if held is None:
            await super().send(message)
            return
        self._held = None
        first = _HeadFirst(real, held)
        self.transport = first  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = real
            if first.head and not real.is_closing():
                real.write(first.head)
        reusable, self._reusable = self._reusable, None
        if reusable is not None and self.response_complete and self.keep_alive:
            offer, reuse, status, head = reusable
            offer.keep(
                status, head, self.default_headers, message.get("body", b""), reuse, self.scope
            )


_date_cache: tuple[object, bytes] = ((), b"")


def _default_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Uvicorn's default header lines (``date``) as it renders them, kept while the list is the
    same object (the server replaces it once a second)."""
    global _date_cache
    cached_for, lines = _date_cache
    if cached_for is not headers:
        lines = b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)
        _date_cache = (headers, lines)
    return lines


# Request headers that make an answer depend on more than the key (a body; ranges and date
# conditions of files): such requests always go to the app.
_NOT_REPLAYED = frozenset(
    (
        b"content-length",
        b"transfer-encoding",
        b"range",
        b"if-range",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-match",
    )
)


class _Offer:
    """The server's offer to keep one request's answer (put in ``scope["extensions"]``)."""

    __slots__ = ("cache", "key")

    def __init__(self, cache: AnswerCache, key: tuple[bytes, bytes, bytes | None, bytes | None]):
        self.cache = cache
        self.key = key

    def keep(
        self,
        status: int,
        head: bytes,
        default_headers: list[tuple[bytes, bytes]],
        body: bytes,
        reuse: Reuse,
        scope: Any,
    ) -> None:
        """Keep a sent answer: its head without the status and default lines, and its body."""
        status_line = STATUS_LINE[status]
        lead = status_line + _default_lines(default_headers)
        if not head.startswith(lead) or (self.key[0] == b"HEAD" and body):
            return
        answer = Answer(
            status=status,
            status_line=status_line,
            tail=head[len(lead) :],
            body=body,
            reuse=reuse,
            scope=scope,
        )
        self.cache.put(self.key, answer)


class _Resumed:
    """Awaitable continuing a coroutine that was started outside any task and suspended on
    ``pending`` (what it yielded): hands ``pending`` to the task, then drives the coroutine on
    with whatever the task sends or throws in (what ``yield from`` does)."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.pending
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _resume(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    return await _Resumed(coro, pending)


class OneWriteProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol, same behaviour, less work per request:

    * its cycles are :class:`OneWriteCycle` (one write per small response);
    * a request's ASGI call starts at once, inside the parser callback (like Python 3.12's
      eager tasks): an answer from memory completes without a task or another turn of the
      event loop; a call that has to wait (a body to read, a file, a full socket) continues
      in a task from where it stopped. Requests started from a finished response (pipelined
      ones) get a task as before, so nothing nests.
    """

    _completing = False
    _eager = True
    # Answers sent again (answers.py); None: every request goes to the app.
    _answers: AnswerCache | None = None
    _replayed = False
    _more: socket.socket | None = None  # the connection's socket, duplicated (_more_socket)
    _no_more = False  # TLS or no socket: big answers go through the transport
    _idle_since: float | None = None  # loop time of the last response; None: busy

    # --- answers sent again --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._answers is None:
            super().on_message_begin()
            return
        # The scope is built once the head is complete, only for requests the app answers.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._replayed = False

    def on_headers_complete(self) -> None:
        answers = self._answers
        if answers is None:
            super().on_headers_complete()
            return
        key = self._reuse_key()
        if key is not None:
            answer = answers.get(key)
            if answer is not None and self._replay(answer):
                return
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers
        if key is not None:
            extensions: Any = {REUSE_EXTENSION: _Offer(answers, key)}
            self.scope["extensions"] = extensions
        super().on_headers_complete()

    def _reuse_key(self) -> tuple[bytes, bytes, bytes | None, bytes | None] | None:
        """(method, target, If-None-Match, Accept-Encoding) of a request whose answer can be
        sent again as a whole; None for any other."""
        url = self.url
        parser = self.parser
        if (
            url[:1] != b"/"
            or url[-1:] == b"?"
            or b"#" in url
            or self.expect_100_continue
            or self.config.limit_concurrency is not None
            or parser.get_http_version() != "1.1"
            or not parser.should_keep_alive()
            or parser.should_upgrade()
        ):
            return None
        method: bytes = parser.get_method()
        if method != b"GET" and method != b"HEAD":
            return None
        inm = ae = None
        for name, value in self.headers:
            if name == b"if-none-match":
                if inm is None:
                    inm = value
            elif name == b"accept-encoding":
                if ae is None:
                    ae = value
            elif name in _NOT_REPLAYED:
                return None
        return (method, url, inm, ae)

    def _replay(self, answer: Answer) -> bool:
        """Send ``answer`` for the current request, as the app's first answer went out; False
        when it has to wait its turn (a response still running, a full socket)."""
        cycle = self.cycle
        transport = self.transport
        if (
            (cycle is not None and not cycle.response_complete)
            or self.pipeline
            or self.flow.write_paused
            or transport.is_closing()
        ):
            return False
        start = perf_counter_ns()
        head = answer.status_line + _default_lines(self.server_state.default_headers) + answer.tail
        if len(answer.body) <= JOIN_BODY_BYTES:
            _write_joined(transport, head, answer.body)
        else:
            self._write_big(transport, head, answer)
        self._replayed = True
        self.server_state.total_requests += 1
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
        try:
            answer.replayed(self.headers, self.client, perf_counter_ns() - start)
        except Exception:  # an observer's failure must not cost the connection
            log.exception("reporting a request answered again failed")
        return True

    def _write_big(self, transport: Any, head: bytes, answer: Answer) -> None:
        """Head, then as much of the body as the socket takes with ``sendfile`` from the
        answer's memory file (no copy from this process), the rest through the transport.

        The transport writes at once when it holds nothing; only then may bytes bypass it."""
        body = answer.body
        more = self._more_socket(transport)
        fd = answer.file() if more is not None and not transport.get_write_buffer_size() else None
        if fd is None or more is None:
            transport.write(head)
            transport.write(body)
            return
        # The head with MSG_MORE: the kernel holds it for the body's first segment (one
        # packet train, not a lone head); what the socket does not take goes the usual way.
        try:
            written = more.send(head, socket.MSG_MORE)
        except OSError:  # full (EAGAIN) or gone: the transport finds out
            written = 0
        if written < len(head):
            transport.write(memoryview(head)[written:] if written else head)
            transport.write(body)
            return
        try:
            sent = os.sendfile(more.fileno(), fd, 0, len(body))
        except OSError:
            sent = 0
        if sent < len(body):
            transport.write(memoryview(body)[sent:] if sent else body)

    def _more_socket(self, transport: Any) -> socket.socket | None:
        """A socket object on a duplicate of the connection's descriptor (made once), for
        sends the transport cannot make (flags, sendfile); None over TLS or without one."""
        more = self._more
        if more is None and not self._no_more:
            sock = transport.get_extra_info("socket")
            if sock is None or transport.get_extra_info("sslcontext") is not None:
                self._no_more = True
                return None
            more = self._more = socket.socket(fileno=os.dup(sock.fileno()))
        return more

    def connection_lost(self, exc: Exception | None) -> None:
        more, self._more = self._more, None
        if more is not None:
            more.close()
        super().connection_lost(exc)

    # Keep-alive time-out without a timer per request: Uvicorn cancels the connection's timer
    # when data arrives and starts a new one after each response; with answers sent again
    # (tens of thousands a second) the timer stays, the connection only notes when it became
    # idle, and the timer, when due, closes it or waits for the rest of the time.

    def _unset_keepalive_if_required(self) -> None:
        if self._answers is None:
            super()._unset_keepalive_if_required()
            return
        self._idle_since = None  # a request is being read or answered: not idle

    def timeout_keep_alive_handler(self) -> None:
        if self._answers is None:
            super().timeout_keep_alive_handler()
            return
        idle = self._idle_since
        if idle is None or self.transport.is_closing():
            self.timeout_keep_alive_task = None  # busy: the next response arms it again
            return
        remaining = idle + self.timeout_keep_alive - self.loop.time()
        if remaining > 0.001:
            self.timeout_keep_alive_task = self.loop.call_later(
                remaining, self.timeout_keep_alive_handler
            )
            return
        self.timeout_keep_alive_task = None
        super().timeout_keep_alive_handler()

    def on_body(self, body: bytes) -> None:
        if not self._replayed:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._replayed:
            self._replayed = False
            return
        super().on_message_complete()

    # --- eager start -----------------------------------------------------------------------

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if type(cycle) is RequestResponseCycle:
            cycle.__class__ = OneWriteCycle
        if not self._eager or self._completing or self.config.reset_contextvars:
            super()._start_asgi_task(cycle, app)
            return
        coro = cycle.run_asgi(app)
        try:
            pending = coro.send(None)
        except StopIteration:
            return
        task = self.loop.create_task(_resume(coro, pending))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def on_response_complete(self) -> None:
        self._completing = True
        try:
            super().on_response_complete()
        finally:
            self._completing = False
        if self._answers is not None and not self.pipeline:
            self._idle_since = self.loop.time()  # idle from now (keep-alive time-out)


class TaskOneWriteProtocol(OneWriteProtocol):
    """:class:`OneWriteProtocol` whose requests always run in an asyncio task, as Uvicorn's do.

    For apps that are not ours (the management API, the web UI, metrics): libraries such as
    anyio and sniffio look up the current task, which the eager start does not have.
    """

    _eager = False


class _Server(uvicorn.Server):
    """Uvicorn server whose signals are handled by :func:`run_server` (for several servers)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _uvicorn_config(
    app: ASGIApp,
    ssl_context: ssl.SSLContext | None,
    *,
    eager: bool = True,
    answers: AnswerCache | None = None,
) -> uvicorn.Config:
    factory: Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext] | None = None
    if ssl_context is not None:
        context = ssl_context

        def factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> Any:
            return context

    protocol: type[OneWriteProtocol] = OneWriteProtocol if eager else TaskOneWriteProtocol
    if answers is not None:
        protocol = type("AnsweringProtocol", (protocol,), {"_answers": answers})
    config = uvicorn.Config(
        app,
        loop="none",
        http=protocol,
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        date_header=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        ssl_context_factory=factory,
    )
    config.load()
    return config


def _route_uvicorn_logs() -> None:
    """Uvicorn's own messages (errors) go through our handlers and format."""
    ours = logging.getLogger("package_storage")
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers = list(ours.handlers)
        lg.setLevel(max(logging.WARNING, ours.level))
        lg.propagate = False


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


@dataclass
class Listener:
    """One app on one bound socket."""

    app: ASGIApp
    sock: socket.socket
    ssl_context: ssl.SSLContext | None = None
    on_stop: Callable[[], None] | None = None  # told when the servers start shutting down
    # Start requests inside the parser callback (no task) when the app allows it: only our
    # read app does; frameworks (FastAPI/Starlette, anyio) need a current task.
    eager: bool = False
    # Answers the app marks as reusable are kept here and sent again (answers.py).
    answers: AnswerCache | None = None


@dataclass
class ExtraListener:
    """Another app for :func:`run_server` on its own address (e.g. the management API)."""

    name: str
    app: ASGIApp
    address: str
    ssl_context: ssl.SSLContext | None = None
    on_stop: Callable[[], None] | None = None


async def serve_listeners(listeners: Sequence[Listener], stop: asyncio.Event | None = None) -> None:
    """Serve every listener until SIGTERM/SIGINT (or ``stop`` is set); graceful shutdown."""
    servers = [
        _Server(_uvicorn_config(li.app, li.ssl_context, eager=li.eager, answers=li.answers))
        for li in listeners
    ]
    loop = asyncio.get_running_loop()

    def request_exit(sig: int) -> None:
        for li in listeners:
            if li.on_stop is not None:
                li.on_stop()
        for server in servers:
            if server.should_exit and sig == signal.SIGINT:
                server.force_exit = True
            server.should_exit = True

    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, request_exit, sig)
            installed.append(sig)

    async def watch_stop() -> None:
        if stop is None:
            return
        await stop.wait()
        request_exit(signal.SIGTERM.value)

    stopper = asyncio.ensure_future(watch_stop())
    try:
        await asyncio.gather(
            *(
                server.serve(sockets=[li.sock])
                for server, li in zip(servers, listeners, strict=True)
            )
        )
    finally:
        stopper.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)


class Loading:
    """Runs ``load`` in a background thread while the listeners serve (see :func:`run_server`).

    ``error`` holds what ``load`` raised; ``done`` tells whether it has returned.
    """

    def __init__(self, load: Callable[[], None]) -> None:
        self._load = load
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self, on_error: Callable[[], None]) -> None:
        def run() -> None:
            try:
                self._load()
            except BaseException as exc:
                self.error = exc
                on_error()

        self._thread = threading.Thread(target=run, name="loader", daemon=True)
        self._thread.start()

    @property
    def done(self) -> bool:
        return self._thread is None or not self._thread.is_alive()


def run_server(
    app: ASGIApp,
    settings: Settings,
    *,
    metrics_app: ASGIApp | None = None,
    on_listening: Callable[[Sequence[socket.socket]], None] | None = None,
    extra: Sequence[ExtraListener] = (),
    loading: Loading | None = None,
) -> None:
    """Run ``app`` on ``settings.address`` (and ``metrics_app`` on ``metrics_address``, and
    every ``extra`` listener on its own address), all on one event loop.

    Binds first (errors raise ``ConfigError`` with the address and the reason), then serves until
    SIGTERM/SIGINT. Blocks; returns after a graceful shutdown. With ``loading``, its load runs
    in a background thread once the sockets listen; when it raises, the server stops and the
    exception is raised here. A stop while it still runs returns at once (``loading.done`` is
    False then: the caller decides how to end the process).
    """
    ssl_context = None
    if settings.tls_enabled:
        ssl_context = build_ssl_context(settings.tls_cert, settings.tls_key, settings.tls_minimum)
    listeners = [
        Listener(
            RequestLogMiddleware(app),
            bind_socket(settings.address),
            ssl_context,
            eager=True,
            answers=AnswerCache(),
        )
    ]
    if settings.metrics_address and metrics_app is not None:
        log.info("Starting http metrics in " + settings.metrics_address)
        listeners.append(Listener(metrics_app, bind_socket(settings.metrics_address)))
    for more in extra:
        log.info(f"Starting http {more.name} in {more.address}")
        listeners.append(
            Listener(
                RequestLogMiddleware(more.app),
                bind_socket(more.address),
                more.ssl_context,
                more.on_stop,
            )
        )
    _route_uvicorn_logs()
    if on_listening is not None:
        on_listening([li.sock for li in listeners])

    async def main() -> None:
        stop = asyncio.Event()
        if loading is not None:
            loop = asyncio.get_running_loop()

            def stop_serving() -> None:
                loop.call_soon_threadsafe(stop.set)

            loading.start(stop_serving)
        await serve_listeners(listeners, stop)

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())
    finally:
        for li in listeners:
            li.sock.close()
        flush_logs()  # the access lines of the last requests
    if loading is not None and loading.error is not None:
        raise loading.error


# --- Granian (optional) ------------------------------------------------------------------------


def _settings_to_json(settings: Settings) -> str:
    data = asdict(settings)
    for key, value in data.items():
        if isinstance(value, timedelta):
            data[key] = value.total_seconds()
        elif isinstance(value, tuple):
            data[key] = list(value)
    return json.dumps(data)


def settings_from_environment() -> Settings:
    """In a Granian worker: the settings :func:`run_granian` was given."""
    return _settings_from_json(os.environ[GRANIAN_SETTINGS_ENV])


def _settings_from_json(text: str) -> Settings:
    data: dict[str, Any] = json.loads(text)
    for key in ("cache_time_index", "cache_time_search", "cache_time_categories"):
        data[key] = timedelta(seconds=data[key])
    data["cache_time_catch_all"] = timedelta(seconds=data["cache_time_catch_all"])
    data["package_paths"] = tuple(data["package_paths"])
    return Settings(**data)


def run_granian(settings: Settings, factory: str) -> None:
    """Serve with Granian (one worker process; it loads the packages again before serving).

    ``factory`` is the import string (``module:function``) of a function without arguments
    that returns the ASGI app, built from :func:`settings_from_environment`."""
    try:
        from granian import Granian
        from granian.constants import Interfaces
    except ImportError as exc:  # pragma: no cover - granian is a dependency
        raise ConfigError(f"--server granian needs the granian package: {exc}") from None
    host, port = parse_address(settings.address)
    os.environ[GRANIAN_SETTINGS_ENV] = _settings_to_json(settings)
    kwargs: dict[str, Any] = {}
    if settings.tls_enabled:
        kwargs["ssl_cert"] = settings.tls_cert
        kwargs["ssl_key"] = settings.tls_key
    server = Granian(
        factory,
        address=host or "0.0.0.0",
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=1,
        log_access=False,
        **kwargs,
    )
    server.serve()
