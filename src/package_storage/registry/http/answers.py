"""Answers sent again: rendered responses of immutable content, replayed without the ASGI path.

Most of the read API's traffic asks the same few JSON answers again and again (``/search``
with Kibana's parameters, ``/categories``, package documents). Each one is a fixed function of
the request (method, target, ``If-None-Match``, ``Accept-Encoding``) and of the served index,
which never changes in place: a revision switch builds a new index. So once such an answer has
gone out, the server keeps its rendered bytes and answers the next identical request from
them, inside the parser callback, without building an ASGI scope, a request cycle or running
the app (``server.py``).

The contract, in three parts:

* the server offers reuse for a request by putting a key into ``scope["extensions"]``
  (:data:`REUSE_EXTENSION`); it only does so for requests whose answer can be replayed as a
  whole: ``GET``/``HEAD``, HTTP/1.1 keep-alive, no request body, origin-form target;
* an app that answers such a request from immutable content adds a :class:`Reuse` to its
  ``http.response.start`` message under :data:`~package_storage.logs.REUSE_MESSAGE_KEY`, with
  ``valid`` telling later whether the answer still holds (the index it came from is still the
  one served); layers that watch responses (the access log, the metrics) add an observer to
  it so that every replay is logged and counted like the first answer;
* the server keeps the rendered head (without its ``date`` line) and the body in an
  :class:`AnswerCache`, bounded in entries and bytes; an entry whose ``valid`` says no is
  dropped when it is next asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, MutableMapping
from typing import Any

from package_storage.logs import REUSE_MESSAGE_KEY

__all__ = [
    "REUSE_EXTENSION",
    "REUSE_MESSAGE_KEY",
    "Answer",
    "AnswerCache",
    "Observer",
    "Reuse",
]

REUSE_EXTENSION = "package_storage.reuse"

# Told of every replay: (scope of the replayed request, status, body bytes sent, duration ns).
Observer = Callable[[MutableMapping[str, Any], int, int, int], None]

DEFAULT_MAX_ENTRIES = 4096
# Bodies are mostly shared with the index's own body caches while that index is served; the
# bound is what the answers of replaced indexes can keep alive at most.
DEFAULT_MAX_BYTES = 64 << 20


class Reuse:
    """An app's offer that its answer may be sent again while ``valid()`` is true."""

    __slots__ = ("observers", "valid")

    def __init__(self, valid: Callable[[], bool]) -> None:
        self.valid = valid
        self.observers: list[Observer] = []

    def observe(self, observer: Observer) -> None:
        """Have ``observer`` told of every replay of this answer."""
        self.observers.append(observer)


# Bodies from this size go out with sendfile from a memory file where the connection allows it
# (bench/README.md: 138 KB /search answers cost ~30 % less kernel time than a write).
SENDFILE_MIN_BYTES = 128 << 10
_memfd_create: Callable[[str, int], int] | None = getattr(os, "memfd_create", None)


class Answer:
    """One rendered answer: status line, the head after the ``date`` line, the body."""

    __slots__ = ("_fd", "body", "observers", "scope", "status", "status_line", "tail", "valid")

    def __init__(
        self,
        *,
        status: int,
        status_line: bytes,
        tail: bytes,
        body: bytes,
        reuse: Reuse,
        scope: MutableMapping[str, Any],
    ) -> None:
        self.status = status
        self.status_line = status_line
        self.tail = tail
        self.body = body
        self.valid = reuse.valid
        self.observers = tuple(reuse.observers)
        # The request as the app saw it (path, query, method...): replays reuse it with their
        # own headers and client.
        self.scope = {
            key: value
            for key, value in scope.items()
            if key not in ("headers", "client", "state", "extensions")
        }
        self._fd = -1

    @property
    def size(self) -> int:
        # A big body may have a memory file beside it (``file``): counted twice.
        big = len(self.body) >= SENDFILE_MIN_BYTES and _memfd_create is not None
        return len(self.body) * (2 if big else 1) + len(self.tail) + 256

    def file(self) -> int | None:
        """A descriptor of a memory file holding the body (made on first use), for sendfile;
        None for a small body or where memory files do not exist."""
        if self._fd >= 0:
            return self._fd
        if len(self.body) < SENDFILE_MIN_BYTES or _memfd_create is None:
            return None
        fd = _memfd_create("package-storage-answer", getattr(os, "MFD_CLOEXEC", 0))
        try:
            view = memoryview(self.body)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            os.close(fd)
            return None
        self._fd = fd
        return fd

    def close(self) -> None:
        """Close the memory file, if any (the answer left the cache)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def replayed(
        self,
        headers: list[tuple[bytes, bytes]],
        client: tuple[str, int] | None,
        duration_ns: int,
    ) -> None:
        """Tell the observers of one replay."""
        if not self.observers:
            return
        # One scope per answer, given each replay's headers and client: the observers are
        # called here, one replay after the other on the event loop, and keep nothing of it.
        scope = self.scope
        scope["headers"] = headers
        scope["client"] = client
        for observer in self.observers:
            observer(scope, self.status, len(self.body), duration_ns)


class AnswerCache:
    """Rendered answers by request key, first in first out within ``max_entries`` and
    ``max_bytes`` (sum of bodies and heads)."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: dict[Hashable, Answer] = {}
        self._bytes = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> Answer | None:
        """The answer for ``key`` while it is still valid (a stale one is dropped)."""
        answer = self._items.get(key)
        if answer is None:
            return None
        if not answer.valid():
            self._drop(key)
            return None
        self.hits += 1
        return answer

    def put(self, key: Hashable, answer: Answer) -> None:
        size = answer.size
        if size > self.max_bytes:
            return
        if key in self._items:
            self._drop(key)
        items = self._items
        while items and (len(items) >= self.max_entries or self._bytes + size > self.max_bytes):
            self._drop(next(iter(items)))
        items[key] = answer
        self._bytes += size

    def clear(self) -> None:
        for answer in self._items.values():
            answer.close()
        self._items.clear()
        self._bytes = 0

    def _drop(self, key: Hashable) -> None:
        answer = self._items.pop(key, None)
        if answer is not None:
            self._bytes -= answer.size
            answer.close()
