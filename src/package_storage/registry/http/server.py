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
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import uvicorn

from package_storage.errors import ConfigError
from package_storage.logs import ASGIApp, RequestLogMiddleware, get_logger
from package_storage.registry.config import Settings

log = get_logger("server")

GRACEFUL_SHUTDOWN_SECONDS = 30
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


class _Server(uvicorn.Server):
    """Uvicorn server whose signals are handled by :func:`run_server` (for several servers)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _uvicorn_config(app: ASGIApp, ssl_context: ssl.SSLContext | None) -> uvicorn.Config:
    factory: Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext] | None = None
    if ssl_context is not None:
        context = ssl_context

        def factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> Any:
            return context

    config = uvicorn.Config(
        app,
        loop="none",
        http="httptools",
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        date_header=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
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
    servers = [_Server(_uvicorn_config(li.app, li.ssl_context)) for li in listeners]
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


def run_server(
    app: ASGIApp,
    settings: Settings,
    *,
    metrics_app: ASGIApp | None = None,
    on_listening: Callable[[Sequence[socket.socket]], None] | None = None,
    extra: Sequence[ExtraListener] = (),
) -> None:
    """Run ``app`` on ``settings.address`` (and ``metrics_app`` on ``metrics_address``, and
    every ``extra`` listener on its own address), all on one event loop.

    Binds first (errors raise ``ConfigError`` with the address and the reason), then serves until
    SIGTERM/SIGINT. Blocks; returns after a graceful shutdown.
    """
    ssl_context = None
    if settings.tls_enabled:
        ssl_context = build_ssl_context(settings.tls_cert, settings.tls_key, settings.tls_minimum)
    listeners = [Listener(RequestLogMiddleware(app), bind_socket(settings.address), ssl_context)]
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
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve_listeners(listeners))
    finally:
        for li in listeners:
            li.sock.close()


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
