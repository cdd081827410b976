"""Zero-copy file bodies on Uvicorn: the ASGI ``http.response.zerocopysend`` extension.

The ASGI extension (asgiref's "Zero Copy Send"): a server that implements it lists
``http.response.zerocopysend`` in ``scope["extensions"]``; after ``http.response.start`` the app
may send ``{"type": "http.response.zerocopysend", "file": <file or fd>, "offset": int,
"count": int, "more_body": bool}`` (``offset`` and ``count`` optional: the file's position and
the rest of the file), mixed with ``http.response.body`` messages. The app keeps the file and
closes it after the ``send`` returns (the server never closes it).

:func:`advertise` lists the extension on plain TCP connections only (over TLS the kernel cannot
encrypt what it copies; the app then takes its ordinary path). :func:`send_file` serves one such
message for Uvicorn's request/response cycle:

* the held response head goes out through the transport (an empty body part: Uvicorn's own
  checks and flow control), then the transport's buffer is waited empty, so that the bytes stay
  in order;
* ``os.sendfile`` copies the file into the connection's socket (non-blocking) until done; when
  the socket is full it waits until it is writable again. uvloop (like asyncio) refuses a writer
  on the descriptor of one of its transports, so the wait watches a duplicate of the socket's
  descriptor (``os.dup``), registered once per transfer and closed when it ends (a leaked
  duplicate would keep the connection open);
* a client that goes away (``EPIPE``, ``ECONNRESET``) ends the transfer: the cycle is marked
  disconnected and the transport closed; a connection closed under the transfer (the server
  stopping) is noticed within a second;
* the response completes through Uvicorn (``Content-Length`` accounting, keep-alive or close,
  the next pipelined request).

When the connection has no socket, is TLS, or the response is chunked, the same message is
served by reading the file and sending ordinary body parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

__all__ = ["EXTENSION", "advertise", "send_file"]

EXTENSION = "http.response.zerocopysend"

# Errors of a socket whose peer has gone: the transfer stops, nothing is logged.
_GONE = frozenset(
    (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED)
)
# Bytes asked of one sendfile call (the kernel moves at most ~2 GiB per call anyway).
_SENDFILE_MAX = 1 << 30
# Piece size of the read-and-write fallback.
FALLBACK_CHUNK = 256 << 10
# How often a transfer waiting for a full socket checks that its connection is still open.
_CHECK_SECONDS = 1.0

SendBody = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def advertise(scope: MutableMapping[str, Any], transport: asyncio.BaseTransport) -> None:
    """List the extension in ``scope`` when the connection is plain TCP (not TLS)."""
    if transport.get_extra_info("sslcontext") is not None:
        return
    extensions = scope.get("extensions")
    if extensions is None:
        scope["extensions"] = {EXTENSION: {}}
    else:
        extensions[EXTENSION] = {}


def _fileno(file: Any) -> int:
    if isinstance(file, int):
        return file
    fileno = getattr(file, "fileno", None)
    if not callable(fileno):
        raise TypeError(f"{EXTENSION}: 'file' must be a file descriptor or have fileno()")
    fd = fileno()
    if not isinstance(fd, int) or fd < 0:
        raise ValueError(f"{EXTENSION}: 'file' has no open descriptor")
    return fd


async def send_file(cycle: RequestResponseCycle, message: Any, send_body: SendBody) -> None:
    """Serve one ``http.response.zerocopysend`` message on ``cycle``.

    ``send_body`` is the cycle's own ``send`` for ``http.response.body`` messages (it writes a
    held head with the first one)."""
    if not cycle.response_started:
        raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{EXTENSION}'.")
    if cycle.response_complete:
        raise RuntimeError(f"Unexpected ASGI message '{EXTENSION}' sent, after response completed.")
    more_body = bool(message.get("more_body", False))
    fd = _fileno(message["file"])
    offset = message.get("offset")
    moves_position = offset is None
    if offset is None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    count = message.get("count")
    if count is None:
        count = max(0, os.fstat(fd).st_size - offset)
    if offset < 0 or count < 0:
        raise ValueError(f"{EXTENSION}: offset and count must not be negative")
    transport = cycle.transport
    sock = transport.get_extra_info("socket")
    if (
        cycle.scope["method"] == "HEAD"
        or count == 0
        or cycle.disconnected
        or cycle.chunked_encoding
        or sock is None
        or transport.get_extra_info("sslcontext") is not None
    ):
        await _send_read(cycle, fd, offset, count, more_body, send_body)
    else:
        if count > cycle.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        await send_body({"type": "http.response.body", "body": b"", "more_body": True})
        if not await _flushed(cycle):
            return
        if not await _sendfile(cycle, sock.fileno(), fd, offset, count):
            return
        cycle.expected_content_length -= count
        await send_body({"type": "http.response.body", "body": b"", "more_body": more_body})
    if moves_position:
        os.lseek(fd, offset + count, os.SEEK_SET)


async def _send_read(
    cycle: RequestResponseCycle,
    fd: int,
    offset: int,
    count: int,
    more_body: bool,
    send_body: SendBody,
) -> None:
    """The fallback: the file read (in a worker thread) and sent as ordinary body parts."""
    if cycle.scope["method"] == "HEAD":
        count = 0
    end = offset + count
    while offset < end and not cycle.disconnected:
        data = await asyncio.to_thread(os.pread, fd, min(FALLBACK_CHUNK, end - offset), offset)
        if not data:
            raise OSError("file shrank while being served")
        offset += len(data)
        await send_body({"type": "http.response.body", "body": data, "more_body": True})
    await send_body({"type": "http.response.body", "body": b"", "more_body": more_body})


def _gone(cycle: RequestResponseCycle) -> bool:
    """Mark the cycle's client gone (always False, for the caller to return)."""
    cycle.disconnected = True
    cycle.keep_alive = False
    if not cycle.transport.is_closing():
        cycle.transport.close()
    return False


async def _flushed(cycle: RequestResponseCycle) -> bool:
    """Wait until the transport has written everything it holds (True) or the connection is
    gone (False). Uses the transport's own flow control: with a high-water mark of zero it
    pauses the protocol while it holds anything and resumes it when it is empty (or on
    connection loss)."""
    transport = cycle.transport
    if transport.get_write_buffer_size():
        low, high = transport.get_write_buffer_limits()
        transport.set_write_buffer_limits(high=0, low=0)
        try:
            await cycle.flow.drain()
        finally:
            if not transport.is_closing():
                transport.set_write_buffer_limits(high=high, low=low)
    if cycle.disconnected or transport.is_closing():
        return _gone(cycle)
    return True


class _Writable:
    """Waits for a socket to take more bytes: a writer on a duplicate of its descriptor (the
    loop refuses one on its transport's own), registered on the first wait, removed and closed
    by :meth:`close`."""

    __slots__ = ("_dup", "_loop", "_timer", "_waiter", "cycle", "sock_fd")

    def __init__(self, cycle: RequestResponseCycle, sock_fd: int) -> None:
        self.cycle = cycle
        self.sock_fd = sock_fd
        self._loop = asyncio.get_running_loop()
        self._dup = -1
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check(self) -> None:
        # The connection may be closed under the transfer (a server stopping): the duplicate
        # would keep the socket open and the writer might never fire.
        if self.cycle.disconnected or self.cycle.transport.is_closing():
            self._wake()
        else:
            self._timer = self._loop.call_later(_CHECK_SECONDS, self._check)

    async def wait(self) -> None:
        if self._dup < 0:
            self._dup = os.dup(self.sock_fd)
            try:
                self._loop.add_writer(self._dup, self._wake)
            except BaseException:
                os.close(self._dup)
                self._dup = -1
                raise
            self._timer = self._loop.call_later(_CHECK_SECONDS, self._check)
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._dup >= 0:
            with contextlib.suppress(Exception):
                self._loop.remove_writer(self._dup)
            os.close(self._dup)
            self._dup = -1


async def _sendfile(
    cycle: RequestResponseCycle, sock_fd: int, fd: int, offset: int, count: int
) -> bool:
    """Copy ``count`` bytes of ``fd`` from ``offset`` into the socket: True when all went,
    False when the client went away (the cycle is marked disconnected)."""
    writable: _Writable | None = None
    end = offset + count
    try:
        while offset < end:
            if cycle.disconnected or cycle.transport.is_closing():
                return _gone(cycle)
            try:
                sent = os.sendfile(sock_fd, fd, offset, min(end - offset, _SENDFILE_MAX))
            except BlockingIOError:
                if writable is None:
                    writable = _Writable(cycle, sock_fd)
                await writable.wait()
                continue
            except InterruptedError:  # pragma: no cover - Python retries EINTR itself
                continue
            except OSError as exc:
                if exc.errno in _GONE:
                    return _gone(cycle)
                raise
            if sent == 0:
                raise OSError("file shrank while being served")
            offset += sent
        return True
    finally:
        if writable is not None:
            writable.close()
