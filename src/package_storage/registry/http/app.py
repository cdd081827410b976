"""The read API: a thin raw ASGI app answering the EPR HTTP API (spec §1, §2).

No framework: a small router reproduces the reference's routing quirks (gorilla/mux with
``StrictSlash(true)``: path cleaning redirects, strict-slash redirects, first match wins, the
ignored ``{dir}`` segment of ``/epr/...``) and every handler answers from precomputed bytes
(JSON bodies come ready-made and cached from the :class:`RegistryIndex`).

JSON answers (``/``, ``/index.json``, ``/search``, ``/categories``, package documents) that come
as a :class:`~package_storage.registry.bodies.Body` carry its strong ``ETag`` and ``Vary:
Accept-Encoding`` after the reference's headers; ``If-None-Match`` naming the current tag (or
``*``) gets ``304 Not Modified`` without body; ``Accept-Encoding`` allowing gzip gets the body's
cached gzip form (``Content-Encoding: gzip``, its own tag). Without those request headers the
status, the reference's headers and the body are exactly as before.

Prefixes. ``create_app`` serves a :class:`Registry`. Un-prefixed paths use ``resolve(None)``.
When the first path segment is not one of the reference's route heads (``search``, ``package``,
``epr``, ...) and ``resolve(segment)`` returns an index, the rest of the path is routed against
that index: ``/production/search``, ``/production@8.12.0/package/x/1.0.0/``. With a registry
that knows no prefixes (plain EPR mode) the behaviour is exactly the reference's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import stat
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, MutableMapping
from dataclasses import dataclass
from importlib import resources
from time import perf_counter
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote, unquote_to_bytes

from package_storage import EPR_COMPAT_VERSION
from package_storage.errors import (
    NotFoundError,
    PackageStorageError,
    UpstreamError,
    VersionError,
)
from package_storage.packages.artifacts import build_zip
from package_storage.packages.derived import opened
from package_storage.packages.model import Package, PackageTree
from package_storage.packages.trees import ZipTree
from package_storage.packages.versions import Version
from package_storage.registry.bodies import Body
from package_storage.registry.http import errors as texts
from package_storage.registry.http.answers import REUSE_EXTENSION, REUSE_MESSAGE_KEY, Reuse
from package_storage.registry.http.entries import (
    DEFAULT_EXTRACT_CACHE_BYTES,
    DEFAULT_EXTRACT_FILE_BYTES,
    EntryContent,
    ExtractCache,
    read_small,
)
from package_storage.registry.http.errors import Endpoint, status_for
from package_storage.registry.http.metrics import Metrics
from package_storage.registry.http.static import (
    ZEROCOPY_EXTENSION,
    BytesContent,
    Content,
    FileContent,
    Headers,
    plan_response,
    send_response,
)
from package_storage.registry.index import FetchFile, RedirectFile, StoredFile
from package_storage.registry.proxy import ProxyIndex, UpstreamPackage
from package_storage.registry.proxy_client import UpstreamUnavailable

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_SERVICE_NAME = "package-registry"
NOT_READY = "service unavailable: the packages are still loading"
MAX_PATH_BYTES = 8 << 10
MAX_QUERY_BYTES = 8 << 10
# Decompressed entries of zip packages up to this size are kept in memory.
ENTRY_CACHE_MAX_ITEM = 1 << 20

V = TypeVar("V")


# --- interfaces -------------------------------------------------------------------------------------


class RegistryIndex(Protocol):
    """What the read API needs of a served index (``index.py``)."""

    def search_body(self, raw_query: str, *, allow_unknown: bool) -> bytes: ...

    def categories_body(self, raw_query: str, *, allow_unknown: bool) -> bytes: ...

    def lookup(self, name: str, version: str) -> Package | None: ...

    def document_body(self, pkg: Package) -> bytes: ...

    def zip_file(self, pkg: Package) -> StoredFile | None:
        """The stored artifact zip (a file, its bytes, a file to fetch first or a redirect);
        None: build it from ``pkg.tree``."""
        ...

    def signature_file(self, pkg: Package) -> StoredFile | None:
        """The stored ``.sig`` (as ``zip_file``); None: the package has no signature."""
        ...


class Registry(Protocol):
    """Resolves a path prefix (None = the default, un-prefixed paths) to the index it serves."""

    def resolve(self, prefix: str | None) -> RegistryIndex | None: ...


class SingleIndexRegistry:
    """Plain EPR mode: one index for the un-prefixed paths, no prefixes.

    ``swap`` replaces the index atomically (one reference assignment); requests in flight keep
    the index they resolved.
    """

    def __init__(self, index: RegistryIndex) -> None:
        self._index = index

    def resolve(self, prefix: str | None) -> RegistryIndex | None:
        return self._index if prefix is None else None

    def swap(self, index: RegistryIndex) -> None:
        self._index = index


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answered request, for an access logger (``/health`` is never reported)."""

    method: str
    url: str
    route: str
    status: int
    body_bytes: int
    duration: float
    client: tuple[str, int] | None
    user_agent: str


@dataclass(frozen=True, slots=True)
class AppOptions:
    """Settings of the read app. Cache times are seconds (spec §9.1 defaults)."""

    cache_time_index: float = 10.0
    cache_time_search: float = 600.0
    cache_time_categories: float = 600.0
    cache_time_catch_all: float = 600.0
    allow_unknown_query_parameters: bool = True
    service_name: str = DEFAULT_SERVICE_NAME
    service_version: str = EPR_COMPAT_VERSION
    metrics: Metrics | None = None
    request_logger: Callable[[RequestRecord], None] | None = None
    # Generated zips of folder packages are cached (they are deterministic) up to this size.
    zip_cache_bytes: int = 256 << 20
    # Decompressed static files of zip packages are cached up to this total size.
    entry_cache_bytes: int = 64 << 20
    # Larger files of zip packages are extracted once into a private folder (created under
    # extract_dir, default the system's temporary folder) bounded to this total size, files up
    # to extract_file_bytes each; larger ones are streamed from the zip (entries.py).
    extract_cache_bytes: int = DEFAULT_EXTRACT_CACHE_BYTES
    extract_file_bytes: int = DEFAULT_EXTRACT_FILE_BYTES
    extract_dir: str | None = None
    # While this returns False (packages still loading) every route, /health included,
    # answers 503; None: always ready.
    ready: Callable[[], bool] | None = None


def service_name_from_env(environ: Mapping[str, str]) -> str:
    """``ELASTIC_APM_SERVICE_NAME`` when set and non-empty, else ``package-registry`` (§2.1)."""
    return environ.get("ELASTIC_APM_SERVICE_NAME") or DEFAULT_SERVICE_NAME


# --- routing ----------------------------------------------------------------------------------------

INDEX = "/"
INDEX_JSON = "/index.json"
SEARCH = "/search"
CATEGORIES = "/categories"
HEALTH = "/health"
FAVICON = "/favicon.ico"
ARTIFACT = "/epr/{packageName}/{packageName:[a-z0-9_]+}-{packageVersion}.zip"
SIGNATURE = "/epr/{packageName}/{packageName:[a-z0-9_]+}-{packageVersion}.zip.sig"
PACKAGE_INDEX = "/package/{packageName:[a-z0-9_]+}/{packageVersion}/"
STATIC = "/package/{packageName}/{packageVersion}/{file:.*}"

# First segments of the reference's routes: such a segment is never a prefix.
ROUTE_HEADS = frozenset(
    ("", "index.json", "search", "categories", "health", "favicon.ico", "epr", "package")
)

# Fixed routes with their strict-slash twins (route 1 to 6); value: (route, slash differs).
_FIXED: dict[str, tuple[str, bool]] = {}
for _route in (INDEX, INDEX_JSON, SEARCH, CATEGORIES, HEALTH, FAVICON):
    _FIXED[_route] = (_route, False)
    _FIXED[_route[:-1] if _route.endswith("/") else _route + "/"] = (_route, True)

# Routes 7 to 10 as mux compiles them with strict slash: the template without its trailing
# slash, then an optional slash. Tried in order; first match wins.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (ARTIFACT, re.compile(r"/epr/[^/]+/([a-z0-9_]+)-([^/]+)\.zip/?")),
    (SIGNATURE, re.compile(r"/epr/[^/]+/([a-z0-9_]+)-([^/]+)\.zip\.sig/?")),
    (PACKAGE_INDEX, re.compile(r"/package/([a-z0-9_]+)/([^/]+)/?")),
    (STATIC, re.compile(r"/package/([^/]+)/([^/]+)/(.*)/?", re.DOTALL)),
)

_HEX = b"0123456789abcdefABCDEF"


def clean_path(path: str) -> str:
    """The canonical form of a URL path like gorilla/mux's ``cleanPath`` (Go ``path.Clean``,
    keeping a trailing slash)."""
    if not path:
        return "/"
    if path[0] != "/":
        path = "/" + path
    if "//" not in path and "/." not in path:
        return path
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    cleaned = "/" + "/".join(out)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def escape_path(path: str) -> str:
    """Percent-encode a path like Go's ``url.URL.EscapedPath`` (for ``Location`` headers)."""
    return quote(path.encode("utf-8", "surrogateescape"), safe="/$&+,:;=@")


def _escape_query(query: bytes) -> str:
    # Printable ASCII passes unchanged (the query was sent that way); anything else is escaped.
    return quote(query, safe="".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%") + "%")


def _decode_path(raw: bytes) -> str | None:
    """Percent-decode a raw path; None when an escape is malformed (Go: 400)."""
    if b"%" in raw:
        pos = raw.find(b"%")
        while pos >= 0:
            if len(raw) < pos + 3 or raw[pos + 1] not in _HEX or raw[pos + 2] not in _HEX:
                return None
            pos = raw.find(b"%", pos + 3)
        raw = unquote_to_bytes(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Invalid UTF-8 still routes (and then matches nothing); the surrogates it leaves are
        # refused by every file lookup.
        return raw.decode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=4096)
def _is_strict_version(version: str) -> bool:
    """``{packageVersion}`` must be strict semver (spec §5.6), else 400."""
    try:
        Version.parse_strict(version)
    except VersionError:
        return False
    return True


def _match(path: str) -> tuple[str, tuple[str, ...], bool] | None:
    """(route, variables, slash differs) for an un-prefixed path, or None."""
    fixed = _FIXED.get(path)
    if fixed is not None:
        return fixed[0], (), fixed[1]
    if path.startswith(("/epr/", "/package/")):
        for route, pattern in _PATTERNS:
            m = pattern.fullmatch(path)
            if m is not None:
                groups = m.groups()
                if route == STATIC and not groups[2]:
                    # ``/package/Foo/1.0.0/`` (a name route 9 refuses): route 10 with an empty
                    # file, answered directly, never a strict-slash redirect (spec §1.1).
                    return route, groups, False
                return route, groups, path.endswith("/") != route.endswith("/")
    return None


# --- responses --------------------------------------------------------------------------------------

CORS: tuple[bytes, bytes] = (b"access-control-allow-origin", b"*")
JSON_TYPE: tuple[bytes, bytes] = (b"content-type", b"application/json")
ZIP_TYPE: tuple[bytes, bytes] = (b"content-type", b"application/zip")
TEXT_TYPE: tuple[bytes, bytes] = (b"content-type", b"text/plain; charset=utf-8")
NOSNIFF: tuple[bytes, bytes] = (b"x-content-type-options", b"nosniff")
NO_CACHE: Headers = [(b"cache-control", b"max-age=0"), (b"cache-control", b"private, no-store")]
VARY: tuple[bytes, bytes] = (b"vary", b"Accept-Encoding")
GZIP_ENCODING: tuple[bytes, bytes] = (b"content-encoding", b"gzip")


@functools.lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: bytes) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip``, ``x-gzip`` or ``*`` with a
    non-zero ``q``; RFC 9110 §12.5.3)."""
    for item in accept_encoding.split(b","):
        coding, _, params = item.partition(b";")
        if coding.strip().lower() not in (b"gzip", b"x-gzip", b"*"):
            continue
        q = 1.0
        for param in params.split(b";"):
            name, _, value = param.partition(b"=")
            if name.strip().lower() == b"q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """``If-None-Match`` against the current tag: ``*`` or any listed tag equal to it under
    the weak comparison (RFC 9110 §13.1.2)."""
    for item in if_none_match.split(b","):
        tag = item.strip()
        if tag == b"*":
            return True
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def cache_headers(seconds: float) -> Headers:
    """The two public Cache-Control lines; seconds formatted like Go ``%.0f`` (half-even)."""
    return [(b"cache-control", f"max-age={seconds:.0f}".encode()), (b"cache-control", b"public")]


def _length(n: int) -> tuple[bytes, bytes]:
    return (b"content-length", str(n).encode())


async def _send(
    send: Send,
    status: int,
    headers: Headers,
    body: bytes,
    head: bool,
    reuse: Callable[[], bool] | None = None,
) -> None:
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    if reuse is not None:  # the server may send this answer again while reuse() holds
        start[REUSE_MESSAGE_KEY] = Reuse(reuse)
    await send(start)
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _send_error(send: Send, status: int, message: str, base: Headers, head: bool) -> None:
    """An error the Go ``http.Error`` way: text/plain, nosniff, message + newline."""
    body = (message + "\n").encode()
    headers = [*base, TEXT_TYPE, NOSNIFF, _length(len(body))]
    await _send(send, status, headers, body, head)


async def _send_json(send: Send, request: _Request, body: bytes, cache: Headers) -> None:
    """A 200 JSON answer; for a :class:`Body`, with ETag/Vary, 304 and gzip (module doc)."""
    if not isinstance(body, Body):
        headers = [CORS, *cache, JSON_TYPE, _length(len(body))]
        await _send(send, 200, headers, body, request.head)
        return
    reuse = request.reuse
    if_none_match, accept_encoding = request.negotiation()
    packed = body.gzipped() if accept_encoding and accepts_gzip(accept_encoding) else None
    etag = body.etag if packed is None else body.gzip_etag
    if if_none_match and etag_matches(if_none_match, etag):
        await _send(send, 304, [CORS, *cache, (b"etag", etag), VARY], b"", True, reuse)
        return
    if packed is None:
        headers = [CORS, *cache, JSON_TYPE, _length(len(body)), (b"etag", etag), VARY]
        await _send(send, 200, headers, body, request.head, reuse)
        return
    headers = [
        CORS,
        *cache,
        JSON_TYPE,
        GZIP_ENCODING,
        _length(len(packed)),
        (b"etag", etag),
        VARY,
    ]
    await _send(send, 200, headers, packed, request.head, reuse)


def _always() -> bool:
    return True


class _StillServed:
    """Whether ``registry`` still serves ``index`` for ``prefix`` (answers of an index never
    change: a new revision is a new index)."""

    __slots__ = ("index", "prefix", "registry")

    def __init__(self, registry: Registry, prefix: str | None, index: RegistryIndex) -> None:
        self.registry = registry
        self.prefix = prefix
        self.index = index

    def __call__(self) -> bool:
        try:
            return self.registry.resolve(self.prefix) is self.index
        except Exception:
            return False


class _LRU(Generic[V]):
    """Least-recently-used cache bounded by the total size of its values."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[object, V, int]] = OrderedDict()
        self._size = 0

    def get(self, key: Hashable) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: Hashable, owner: object, value: V, size: int) -> None:
        # ``owner`` is kept alive with the entry so an id() inside ``key`` cannot be reused.
        if size > self.max_bytes or key in self._items:
            return
        self._items[key] = (owner, value, size)
        self._size += size
        while self._size > self.max_bytes:
            _, (_, _, old) = self._items.popitem(last=False)
            self._size -= old


_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f\\\\]")


def _safe_relative(file: str) -> bool:
    """True when ``file`` can only name something inside a package root: no empty, ``.`` or
    ``..`` segment, no leading slash, no backslash, no control character, no surrogate."""
    if not file or len(file) > 4096 or file[0] == "/" or _UNSAFE_CHARS.search(file):
        return False
    if not file.isascii():
        try:
            file.encode("utf-8")
        except UnicodeEncodeError:  # surrogates left by invalid UTF-8
            return False
    return all(segment not in ("", ".", "..") for segment in file.split("/"))


def _file_etag(index: RegistryIndex, pkg: Package, what: str) -> str | None:
    """The strong ETag of a file of an immutable revision (a store's), else None."""
    tagger = getattr(index, "file_etag", None)
    tag = tagger(pkg, what) if callable(tagger) else None
    return tag if isinstance(tag, str) else None


def _disk_root(tree: PackageTree) -> str | None:
    root = getattr(tree, "root", None) if tree.kind == "folder" else None
    return os.fspath(root) if isinstance(root, str | os.PathLike) else None


@functools.lru_cache(maxsize=4096)
def _real_root(root: str) -> str:
    return os.path.realpath(root)


def _resolve_inside(root: str, file: str) -> str | None:
    """The filesystem path of ``root/file`` when it stays inside ``root``, else None.

    ``file`` must have passed :func:`_safe_relative`. Components are checked one by one below
    the (cached) real root with ``lstat``; only when one is a symbolic link is the full path
    resolved and required to stay inside the root. Missing components give None.
    """
    real_root = _real_root(root)
    path = real_root
    try:
        for segment in file.split("/"):
            path = f"{path}/{segment}"
            if stat.S_ISLNK(os.lstat(path).st_mode):
                real = os.path.realpath(f"{real_root}/{file}")
                return real if real.startswith(real_root.rstrip("/") + "/") else None
    except OSError:
        return None
    return path


# --- the app ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    method: str
    head: bool
    query: bytes
    scope: Scope
    # Set when the server offered to send the answer again (answers.py) and it may: tells
    # whether it still holds.
    reuse: Callable[[], bool] | None = None

    def headers(self) -> dict[str, str]:
        """Request headers by lower-case name, first value wins (Go ``Header.Get``)."""
        out: dict[str, str] = {}
        for name, value in self.scope.get("headers", ()):
            key = name.decode("latin-1").lower()
            if key not in out:
                out[key] = value.decode("latin-1")
        return out

    def negotiation(self) -> tuple[bytes, bytes]:
        """(``If-None-Match``, ``Accept-Encoding``) raw values; empty when absent (first wins)."""
        inm = ae = b""
        for name, value in self.scope.get("headers", ()):
            lower = name.lower()
            if lower == b"if-none-match":
                inm = inm or value
            elif lower == b"accept-encoding":
                ae = ae or value
        return inm, ae

    def raw_query(self) -> str:
        try:
            return self.query.decode("ascii")
        except UnicodeDecodeError:
            return _escape_query(self.query)


class ReadApp:
    """The ASGI callable returned by :func:`create_app`."""

    def __init__(self, registry: Registry, options: AppOptions) -> None:
        self.registry = registry
        self.options = options
        service = {"service.name": options.service_name, "service.version": options.service_version}
        self._service_body = Body(
            (json.dumps(service, indent=2, ensure_ascii=False) + "\n").encode()
        )
        self._favicon = resources.files("package_storage").joinpath("data/favicon.ico").read_bytes()
        self._index_cache = cache_headers(options.cache_time_index)
        self._search_cache = cache_headers(options.cache_time_search)
        self._categories_cache = cache_headers(options.cache_time_categories)
        self._catch_all_cache = cache_headers(options.cache_time_catch_all)
        self._public_catch_all: Headers = [CORS, *self._catch_all_cache]
        self._zips: _LRU[bytes] = _LRU(options.zip_cache_bytes)
        self._entries: _LRU[tuple[bytes, float]] = _LRU(options.entry_cache_bytes)
        self._extracted: ExtractCache | None = (
            ExtractCache(
                max_bytes=options.extract_cache_bytes,
                max_file_bytes=options.extract_file_bytes,
                directory=options.extract_dir,
            )
            if options.extract_cache_bytes > 0
            else None
        )
        self._observe = options.metrics is not None or options.request_logger is not None
        self._ready = options.ready

    def _check_ready(self) -> bool:
        """Readiness is one-way: once ready, never asked again."""
        ready = self._ready
        if ready is None or ready():
            self._ready = None
            return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await _lifespan(receive, send)
            return
        if not self._observe:
            await self._handle(scope, send)
            return
        await self._observed(scope, send)

    async def _observed(self, scope: Scope, send: Send) -> None:
        metrics = self.options.metrics
        state = [0, 0]
        routed: list[str | None] = [None]

        def replayed(again: Scope, status: int, written: int, duration_ns: int) -> None:
            # The server sent this answer again (answers.py): counted and logged the same way.
            route = routed[0]
            if route is not None:
                self._report(again, route, status, written, duration_ns / 1e9)

        def counting_send(message: Message) -> Awaitable[None]:
            # A plain function handing back the server's awaitable: no coroutine of its own.
            if message["type"] == "http.response.start":
                state[0] = message["status"]
                reuse = message.get(REUSE_MESSAGE_KEY)
                if reuse is not None:
                    reuse.observe(replayed)
            else:
                state[1] += len(message.get("body", b""))
            return send(message)

        start = perf_counter()
        if metrics is not None:
            metrics.in_flight.inc()
        try:
            route = routed[0] = await self._handle(scope, counting_send)
        finally:
            if metrics is not None:
                metrics.in_flight.dec()
        if route is not None:
            self._report(scope, route, state[0], state[1], perf_counter() - start)

    def _report(self, scope: Scope, route: str, status: int, written: int, duration: float) -> None:
        """Metrics and the request logger for one answered request."""
        method = scope["method"]
        metrics = self.options.metrics
        if metrics is not None:
            metrics.observe_request(
                method=method,
                path=route,
                code=status,
                duration=duration,
                request_size=_request_size(scope),
                response_size=written,
            )
        logger = self.options.request_logger
        if logger is not None and route != HEALTH:
            query = scope.get("query_string", b"")
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            url = raw_path.decode("latin-1")
            if query:
                url += "?" + query.decode("latin-1")
            user_agent = ""
            for name, value in scope.get("headers", ()):
                if name.lower() == b"user-agent":
                    user_agent = value.decode("latin-1")
                    break
            client = scope.get("client")
            logger(
                RequestRecord(
                    method=method,
                    url=url,
                    route=route,
                    status=status,
                    body_bytes=written,
                    duration=duration,
                    client=(client[0], client[1]) if client else None,
                    user_agent=user_agent,
                )
            )

    async def _handle(self, scope: Scope, send: Send) -> str | None:
        """Answer one request; returns the matched route template (None: router-level answer)."""
        method: str = scope["method"]
        head = method == "HEAD"
        query: bytes = scope.get("query_string", b"")
        raw = scope.get("raw_path")
        if raw is not None:
            raw = raw.partition(b"?")[0]
            if len(raw) > MAX_PATH_BYTES:
                await _send_error(send, 414, texts.URI_TOO_LONG, [], head)
                return None
            path = _decode_path(raw)
            if path is None:
                await _send_error(send, 400, texts.INVALID_URL_ESCAPE, [], head)
                return None
        else:
            path = scope["path"]
            if len(path) > MAX_PATH_BYTES:
                await _send_error(send, 414, texts.URI_TOO_LONG, [], head)
                return None
        if len(query) > MAX_QUERY_BYTES:
            await _send_error(send, 414, texts.URI_TOO_LONG, [], head)
            return None

        cleaned = clean_path(path)
        if cleaned != path:
            location = escape_path(cleaned) + ("?" + _escape_query(query) if query else "")
            headers = [(b"location", location.encode("ascii")), _length(0)]
            await _send(send, 301, headers, b"", head)
            return None

        if self._ready is not None and not self._check_ready():
            # Still loading: every route answers 503, a distribution prefix too (its index
            # is not known yet: not a 404).
            await _send_error(send, 503, NOT_READY, [CORS, *NO_CACHE], head)
            matched = _match(path)
            return matched[0] if matched is not None else None

        prefix = ""
        routed = path
        index: RegistryIndex | None = None
        match = _match(path)
        if match is None:
            first, _, rest = path[1:].partition("/")
            if first not in ROUTE_HEADS:
                try:
                    index = self.registry.resolve(first)
                except Exception as exc:
                    await self._fail(send, exc, head)
                    return None
                if index is not None:
                    prefix = "/" + first
                    routed = "/" + rest if rest or path.endswith("/") else ""
                    match = _match(routed) if routed else (INDEX, (), True)
        if match is None:
            await _send_error(send, 404, texts.PAGE_NOT_FOUND, [], head)
            return None
        route, params, slash_differs = match
        request = _Request(method, head, query, scope)
        extensions = scope.get("extensions")
        offered = extensions is not None and REUSE_EXTENSION in extensions
        if slash_differs:
            await self._strict_slash(send, request, route, prefix, routed)
            return route

        if route == HEALTH:
            await _send(send, 200, [CORS, _length(0)], b"", head)
            return route
        if route in (INDEX, INDEX_JSON):
            if offered:
                request.reuse = _always
            await _send_json(send, request, self._service_body, self._index_cache)
            return route
        if route == FAVICON:
            body = self._favicon
            headers = [
                CORS,
                *self._catch_all_cache,
                (b"content-type", b"image/x-icon"),
                _length(len(body)),
            ]
            await _send(send, 200, headers, body, head)
            return route

        if index is None:
            try:
                index = self.registry.resolve(None)
            except Exception as exc:
                await self._fail(send, exc, head)
                return route
            if index is None:
                await _send_error(send, 404, texts.PAGE_NOT_FOUND, [], head)
                return None
        if offered and not isinstance(index, ProxyIndex):  # a proxy's answers are not fixed
            request.reuse = _StillServed(self.registry, prefix[1:] or None, index)
        try:
            if route == SEARCH:
                await self._search(send, request, index, "search")
            elif route == CATEGORIES:
                await self._search(send, request, index, "categories")
            elif route == PACKAGE_INDEX:
                await self._package_index(send, request, index, params[0], params[1])
            elif route == STATIC:
                await self._static(send, request, index, params[0], params[1], params[2])
            else:
                await self._artifact(send, request, index, params[0], params[1], route == SIGNATURE)
        except Exception as exc:
            await self._fail(send, exc, head)
        return route

    async def _fail(self, send: Send, exc: Exception, head: bool) -> None:
        """Answer an unexpected failure; re-raise when the response had already started."""
        status, message = status_for(exc)
        if status == 503:  # a backend that cannot be reached: one line, no traceback
            log.error("request failed: %s", exc)
        elif status >= 500:
            log.error("request failed: %s", exc, exc_info=exc)
        try:
            await _send_error(send, status, message, [CORS, *NO_CACHE], head)
        except Exception:
            raise exc from None

    async def _strict_slash(
        self, send: Send, request: _Request, route: str, prefix: str, path: str
    ) -> None:
        target = path + "/" if route.endswith("/") else path[:-1]
        location = escape_path(prefix + target)
        if request.query:
            location += "?" + _escape_query(request.query)
        headers: Headers = [CORS, (b"location", location.encode("ascii"))]
        body = b""
        if request.method in ("GET", "HEAD"):
            headers.append((b"content-type", b"text/html; charset=utf-8"))
        if request.method == "GET":
            body = f'<a href="{_html_escape(location)}">Moved Permanently</a>.\n\n'.encode()
        headers.append(_length(len(body)))
        await _send(send, 301, headers, body, request.head)

    # --- handlers -------------------------------------------------------------------------------

    async def _search(
        self, send: Send, request: _Request, index: RegistryIndex, endpoint: Endpoint
    ) -> None:
        allow = self.options.allow_unknown_query_parameters
        try:
            if isinstance(index, ProxyIndex):  # proxy mode (proxy.py): the upstream's too
                body = await (
                    index.proxied_search_body(SEARCH, request.raw_query(), allow_unknown=allow)
                    if endpoint == "search"
                    else index.proxied_categories_body(
                        CATEGORIES, request.raw_query(), allow_unknown=allow
                    )
                )
                cache = self._search_cache if endpoint == "search" else self._categories_cache
            elif endpoint == "search":
                body = index.search_body(request.raw_query(), allow_unknown=allow)
                cache = self._search_cache
            else:
                body = index.categories_body(request.raw_query(), allow_unknown=allow)
                cache = self._categories_cache
        except PackageStorageError as exc:
            status, message = status_for(exc, endpoint=endpoint)
            await _send_error(send, status, message, [CORS, *NO_CACHE], request.head)
            return
        await _send_json(send, request, body, cache)

    async def _lookup(
        self,
        send: Send,
        request: _Request,
        index: RegistryIndex,
        name: str,
        version: str,
        missing: str,
        upstream: Callable[[ProxyIndex, UpstreamPackage], Awaitable[None]] | None = None,
    ) -> Package | None:
        """The local package, else None after answering: 400, 404, or (proxy mode, a version
        only the upstream has) ``upstream(index, package)``'s answer."""
        if not _is_strict_version(version):
            await _send_error(
                send, 400, texts.INVALID_PACKAGE_VERSION, [CORS, *NO_CACHE], request.head
            )
            return None
        pkg = index.lookup(name, version)
        if pkg is None and upstream is not None and isinstance(index, ProxyIndex):
            try:
                remote = await index.upstream_package(name, version)
            except UpstreamError as exc:  # one line, not a traceback per request of an outage
                level = logging.DEBUG if isinstance(exc, UpstreamUnavailable) else logging.WARNING
                log.log(level, f"proxy mode: {name} {version}: {exc.message}")
                await _send_error(
                    send, 500, texts.INTERNAL_SERVER_ERROR, [CORS, *NO_CACHE], request.head
                )
                return None
            if remote is not None:
                await upstream(index, remote)
                return None
        if pkg is None:
            await _send_error(send, 404, missing, [CORS, *NO_CACHE], request.head)
        return pkg

    async def _redirect(self, send: Send, request: _Request, location: str) -> None:
        """A 301 to ``location`` (an upstream's file) the Go ``http.Redirect`` way, with the
        public catch-all cache headers."""
        headers: Headers = [*self._public_catch_all, (b"location", location.encode("ascii"))]
        body = b""
        if request.method in ("GET", "HEAD"):
            headers.append((b"content-type", b"text/html; charset=utf-8"))
        if request.method == "GET":
            body = f'<a href="{_html_escape(location)}">Moved Permanently</a>.\n\n'.encode()
        headers.append(_length(len(body)))
        await _send(send, 301, headers, body, request.head)

    async def _package_index(
        self, send: Send, request: _Request, index: RegistryIndex, name: str, version: str
    ) -> None:
        async def remote(_: ProxyIndex, found: UpstreamPackage) -> None:
            await _send_json(send, request, found.body, self._index_cache)

        pkg = await self._lookup(
            send, request, index, name, version, texts.PACKAGE_REVISION_NOT_FOUND, remote
        )
        if pkg is None:
            return
        await _send_json(send, request, index.document_body(pkg), self._index_cache)

    async def _static(
        self,
        send: Send,
        request: _Request,
        index: RegistryIndex,
        name: str,
        version: str,
        file: str,
    ) -> None:
        async def remote(proxy: ProxyIndex, found: UpstreamPackage) -> None:
            await self._redirect(send, request, proxy.file_url(found, "static", file))

        pkg = await self._lookup(
            send, request, index, name, version, texts.PACKAGE_REVISION_NOT_FOUND, remote
        )
        if pkg is None:
            return
        self._count_storage("statics")
        base = self._public_catch_all
        tree = opened(pkg.tree)  # a store's package opens its zip on the first file asked for
        content: Content | None = None
        mtime: float | None = None
        if _safe_relative(file):
            root = _disk_root(tree)
            if root is not None:
                # A folder on disk: resolved and confined here (the tree's own stat would
                # resolve the path a second time), served from the open descriptor.
                real = _resolve_inside(root, file)
                if real is not None:
                    with contextlib.suppress(OSError):
                        disk = FileContent.open(real)
                        content, mtime = disk, disk.mtime
            else:
                content, mtime = self._tree_file(tree, file)
        if content is None:
            await _send_error(send, 404, texts.RESOURCE_NOT_FOUND, base, request.head)
            return
        # A file of a zip (or other stored tree) never changes under an index: its answer may
        # be sent again (answers.py); a folder's files can change on disk at any time.
        reuse = request.reuse if _disk_root(tree) is None else None
        try:
            await self._serve(
                send, request, file, content, mtime, base, _file_etag(index, pkg, file), reuse
            )
        finally:
            content.close()

    def _count_storage(self, component: str) -> None:
        if self.options.metrics is not None:
            self.options.metrics.storage_request(component=component)

    def _tree_file(self, tree: PackageTree, file: str) -> tuple[Content | None, float | None]:
        """A file of a zip (or other non-disk) tree; small entries are cached decompressed,
        larger entries of zips are extracted to disk or streamed (``entries.py``)."""
        key = (id(tree), file)
        cached = self._entries.get(key)
        if cached is not None:
            return BytesContent(cached[0]), cached[1]
        entry = tree.stat(file)
        if entry is None or entry.is_dir:
            return None, None
        found: bytes | None
        if isinstance(tree, ZipTree):
            if entry.size > ENTRY_CACHE_MAX_ITEM:
                return EntryContent(tree, file, entry.size, self._extracted), entry.mtime
            found = read_small(tree, file)
        else:
            try:
                found = tree.read(file)
            except NotFoundError:
                found = None
        if found is None:
            return None, None
        data = found
        if len(data) <= ENTRY_CACHE_MAX_ITEM:
            self._entries.put(key, tree, (data, entry.mtime), len(data))
        return BytesContent(data), entry.mtime

    async def _serve(
        self,
        send: Send,
        request: _Request,
        name: str,
        content: Content,
        mtime: float | None,
        base: Headers,
        etag: str | None = None,
        reuse: Callable[[], bool] | None = None,
    ) -> None:
        planned = plan_response(
            method=request.method,
            request_headers=request.headers(),
            name=name,
            content=content,
            mtime=mtime,
            headers=base,
            etag=etag,
        )
        extensions = request.scope.get("extensions") or {}
        pathsend = "http.response.pathsend" in extensions
        zerocopy = ZEROCOPY_EXTENSION in extensions
        served = content
        if (
            isinstance(content, EntryContent)
            and not request.head
            and any(not isinstance(part, bytes) for part in planned.parts)
        ):
            hit = content.extracted()  # already on disk: no worker thread
            served = hit if hit is not None else await asyncio.to_thread(content.materialize)
        try:
            await send_response(
                send,
                planned,
                served,
                head=request.head,
                pathsend=pathsend,
                zerocopy=zerocopy,
                reuse=reuse,
            )
        finally:
            if served is not content:
                served.close()

    async def _artifact(
        self,
        send: Send,
        request: _Request,
        index: RegistryIndex,
        name: str,
        version: str,
        sig: bool,
    ) -> None:
        missing = texts.SIGNATURE_NOT_FOUND if sig else texts.ARTIFACT_NOT_FOUND

        async def remote(proxy: ProxyIndex, found: UpstreamPackage) -> None:
            location = proxy.file_url(found, "signature" if sig else "zip")
            await self._redirect(send, request, location)

        pkg = await self._lookup(send, request, index, name, version, missing, remote)
        if pkg is None:
            return
        self._count_storage("signatures" if sig else "artifacts")
        base = self._public_catch_all
        stored = index.signature_file(pkg) if sig else index.zip_file(pkg)
        if isinstance(stored, RedirectFile):  # serve --artifact-redirect: a pre-signed URL
            location = [(b"location", stored.url.encode("ascii")), _length(0)]
            await _send(send, 302, [CORS, *NO_CACHE, *location], b"", request.head)
            return
        if isinstance(stored, FetchFile):  # a remote blob store: off the event loop
            stored = await asyncio.to_thread(stored.fetch)
        if stored is None and sig:
            # A stored package without signature (plain EPR mode always names a file).
            await _send_error(send, 404, missing, [CORS, *NO_CACHE], request.head)
            return
        if stored is not None:
            # The content type comes from the name the client asked for (.zip / .zip.sig):
            # stored files (blobs) need not carry an extension.
            file_name = f"{name}-{version}.zip" + (".sig" if sig else "")
            etag = _file_etag(index, pkg, ".sig" if sig else ".zip")
            content: Content
            mtime: float | None = None
            if isinstance(stored, bytes):
                content = BytesContent(stored)
            else:
                try:
                    disk = FileContent.open(os.fspath(stored), immutable=etag is not None)
                except OSError:
                    # The reference answers 500 for a package whose .sig or .zip is not on disk.
                    await _send_error(send, 500, texts.INTERNAL_SERVER_ERROR, base, request.head)
                    return
                content, mtime = disk, disk.mtime
            try:
                await self._serve(send, request, file_name, content, mtime, base, etag)
            finally:
                content.close()
            return
        tree = pkg.tree
        try:
            data = await self._folder_zip(pkg)
        except Exception as exc:
            log.error("building the zip of %s failed: %s", tree.location, exc)
            await _send_error(send, 500, texts.INTERNAL_SERVER_ERROR, base, request.head)
            return
        # Generated on the fly in the reference: no Last-Modified, no Accept-Ranges, no ranges.
        headers = [*base, ZIP_TYPE, _length(len(data))]
        await _send(send, 200, headers, data, request.head)

    async def _folder_zip(self, pkg: Package) -> bytes:
        name, version = pkg.name, str(pkg.version)
        tree = opened(pkg.tree)
        key = (id(tree), name, version)
        data = self._zips.get(key)
        if data is None:
            data = await asyncio.to_thread(build_zip, tree, name, version)
            self._zips.put(key, tree, data, len(data))
        return data


def _html_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


def _request_size(scope: Scope) -> int:
    """Approximate request size like Prometheus' promhttp (request line + headers + body)."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    size = len(scope["method"]) + len(raw_path) + len(scope.get("query_string", b""))
    for name, value in scope.get("headers", ()):
        size += len(name) + len(value)
        if name.lower() == b"content-length" and value.isdigit():
            size += int(value)
    return size


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(registry: Registry, options: AppOptions | None = None) -> ASGIApp:
    """The read API over ``registry`` as a raw ASGI app."""
    return ReadApp(registry, options or AppOptions())
