"""Serve-content semantics (Go's ``http.ServeContent``) for static files and zip files (spec §2.7-§2.9).

This mirrors what the reference gets from Go's ``http.ServeContent``: a Content-Type from the
extension table (then the host MIME database, then sniffing), ``Last-Modified``, the conditional
request headers (``If-Match``, ``If-Unmodified-Since``, ``If-None-Match``, ``If-Modified-Since``,
``If-Range``; entity tags are compared only when the caller gives the file one: files of
immutable store revisions), single and
multiple byte ranges, ``Accept-Ranges`` and ``Content-Length``.

:func:`plan_response` is pure: it decides status, headers and a body *plan* (literal bytes and
slices of the content). :func:`send_response` executes the plan over ASGI, reading large files
from disk in chunks rather than loading them whole.
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import math
import mimetypes
import mmap
import os
import re
import secrets
import stat
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Protocol

from package_storage.registry.http.answers import REUSE_MESSAGE_KEY, Reuse

Headers = list[tuple[bytes, bytes]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Bodies up to this size are sent in one message; larger ones are streamed in chunks.
SMALL_BODY = 1 << 20
# Immutable files larger than this go out mapped (see FileContent.immutable).
MAPPED_BODY = 64 << 10
# Bodies of files on disk from this size go out with the server's zero-copy send (sendfile),
# when it has one; below it, one read and one write with the head cost less (bench/README.md).
ZEROCOPY_BODY = 64 << 10
ZEROCOPY_EXTENSION = "http.response.zerocopysend"
CHUNK_SIZE = 256 << 10
SNIFF_LEN = 512

# Content types the tests check by exact string (spec §2.7); the reference gets them from
# Go's built-in table and its own overrides. Other extensions: host MIME database.
CONTENT_TYPES: dict[str, str] = {
    ".yml": "text/yaml; charset=UTF-8",
    ".md": "text/markdown; charset=utf-8",
    ".zip": "application/zip",
    ".ico": "image/x-icon",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".xml": "text/xml; charset=utf-8",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".pdf": "application/pdf",
    ".wasm": "application/wasm",
}

mimetypes.init()
_HOST_TYPES: dict[str, str] = dict(mimetypes.types_map)

TEXT_PLAIN = "text/plain; charset=utf-8"
OCTET_STREAM = "application/octet-stream"


class Content(Protocol):
    """Random access to the bytes being served."""

    @property
    def size(self) -> int: ...

    def read(self, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start``."""
        ...

    def close(self) -> None: ...


class BytesContent:
    """Content held in memory (zip entries, generated zips, small cached files)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, start: int, length: int) -> bytes:
        return self._data[start : start + length]

    def close(self) -> None:
        pass


class FileContent:
    """An open regular file on disk; size and mtime come from the open descriptor.

    ``immutable``: the file never changes while it exists (a content-addressed blob, an
    extracted zip entry), so it may be mapped into memory and handed to the transport as is
    (:func:`send_response`): no read into a buffer, no worker thread. Other files (package
    folders a person may edit) are read in chunks: a mapped file truncated under the server
    would crash it.
    """

    __slots__ = ("_fd", "immutable", "mtime", "path", "size")

    def __init__(
        self, fd: int, size: int, mtime: float, path: str = "", *, immutable: bool = False
    ) -> None:
        self._fd = fd
        self.size = size
        self.mtime = mtime
        self.path = path
        self.immutable = immutable

    @classmethod
    def open(cls, path: str, *, immutable: bool = False) -> FileContent:
        """Open a regular file; raises ``FileNotFoundError`` for anything else (dir, fifo...)."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFoundError(path)
            return cls(fd, st.st_size, st.st_mtime, os.path.abspath(path), immutable=immutable)
        except BaseException:
            os.close(fd)
            raise

    def mapped(self) -> mmap.mmap | None:
        """The whole file mapped read-only (None when empty or it cannot be mapped)."""
        if self._fd < 0 or self.size == 0:
            return None
        try:
            return mmap.mmap(self._fd, self.size, prot=mmap.PROT_READ)
        except (OSError, ValueError):
            return None

    def fileno(self) -> int:
        """The open descriptor (-1 once closed), for the server's ``sendfile``."""
        return self._fd

    def read(self, start: int, length: int) -> bytes:
        chunks: list[bytes] = []
        while length > 0:
            data = os.pread(self._fd, length, start)
            if not data:
                break
            chunks.append(data)
            start += len(data)
            length -= len(data)
        return b"".join(chunks)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# --- content type -----------------------------------------------------------------------------


def extension(name: str) -> str:
    """The extension like Go's ``filepath.Ext``: from the last dot of the last path element."""
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    return base[dot:] if dot >= 0 else ""


def type_by_extension(name: str) -> str | None:
    ext = extension(name)
    if not ext:
        return None
    found = CONTENT_TYPES.get(ext) or CONTENT_TYPES.get(ext.lower())
    if found:
        return found
    host = _HOST_TYPES.get(ext) or _HOST_TYPES.get(ext.lower())
    if host is None:
        return None
    if host.startswith("text/") and "charset" not in host:
        host += "; charset=utf-8"  # Go's mime package adds it to every text type
    return host


_HTML_TAGS = (
    b"<!DOCTYPE HTML",
    b"<HTML",
    b"<HEAD",
    b"<SCRIPT",
    b"<IFRAME",
    b"<H1",
    b"<DIV",
    b"<FONT",
    b"<TABLE",
    b"<A",
    b"<STYLE",
    b"<TITLE",
    b"<B",
    b"<BODY",
    b"<BR",
    b"<P",
    b"<!--",
)
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"\xfe\xff", "text/plain; charset=utf-16be"),
    (b"\xff\xfe", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbf", TEXT_PLAIN),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"BM", "image/bmp"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x02\x00", "image/x-icon"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"\x00asm", "application/wasm"),
    (b"OggS\x00", "application/ogg"),
)
_WHITESPACE = b"\t\n\x0c\r "
_BINARY = re.compile(b"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")


def sniff(data: bytes) -> str:
    """A content type from the first bytes (a subset of Go's ``http.DetectContentType``)."""
    data = data[:SNIFF_LEN]
    stripped = data.lstrip(_WHITESPACE)
    upper = stripped[:16].upper()
    for tag in _HTML_TAGS:
        if upper.startswith(tag) and len(stripped) > len(tag) and stripped[len(tag)] in b" >":
            return "text/html; charset=utf-8"
    if stripped.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    for magic, ctype in _MAGIC:
        if data.startswith(magic):
            return ctype
    if data[:4] == b"RIFF" and data[8:14] == b"WEBPVP":
        return "image/webp"
    if _BINARY.search(stripped):
        return OCTET_STREAM
    return TEXT_PLAIN


def content_type(name: str, content: Content) -> str:
    return type_by_extension(name) or sniff(content.read(0, SNIFF_LEN))


# --- dates --------------------------------------------------------------------------------------


def http_date(seconds: float) -> str:
    """RFC 7231 IMF-fixdate (``Mon, 02 Jan 2006 15:04:05 GMT``)."""
    return _http_date(math.floor(seconds))


@functools.lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    return formatdate(seconds, usegmt=True)


_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_IMF = re.compile(r"[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT")
_RFC850 = re.compile(r"[A-Za-z]+, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) [A-Z]+")
_ANSIC = re.compile(r"[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})")


def parse_http_date(text: str) -> int | None:
    """Seconds since the epoch for the three formats of Go's ``http.ParseTime``, else None."""
    try:
        if m := _IMF.fullmatch(text):
            day, mon, year, hh, mm, ss = m.groups()
        elif m := _RFC850.fullmatch(text):
            day, mon, yy, hh, mm, ss = m.groups()
            year = str(int(yy) + (1900 if int(yy) >= 69 else 2000))
        elif m := _ANSIC.fullmatch(text):
            mon, day, hh, mm, ss, year = m.groups()
        else:
            return None
        month = _MONTHS.get(mon.capitalize())
        if month is None:
            return None
        values = (int(year), month, int(day), int(hh), int(mm), int(ss))
        if not (1 <= values[2] <= 31 and values[3] < 24 and values[4] < 60 and values[5] < 61):
            return None
        return calendar.timegm((*values, 0, 0, 0))
    except (ValueError, OverflowError):
        return None


# --- conditional requests ------------------------------------------------------------------------


def _scan_etag(text: str) -> tuple[str, str]:
    s = text.strip(" \t")
    start = 2 if s.startswith("W/") else 0
    if len(s) - start < 2 or s[start] != '"':
        return "", ""
    for i in range(start + 1, len(s)):
        c = ord(s[i])
        if c == 0x22:
            return s[: i + 1], s[i + 1 :]
        if not (c == 0x21 or 0x23 <= c <= 0x7E or c >= 0x80):
            return "", ""
    return "", ""


def _tags_match(value: str, current: str | None, *, weak: bool) -> bool:
    """Whether the list of entity tags ``value`` names ``current`` (``*`` names anything):
    strong comparison (``If-Match``) or weak (``If-None-Match``, RFC 7232 §2.3.2)."""
    rest = value
    while True:
        rest = rest.strip(" \t")
        if not rest:
            return False
        if rest[0] == ",":
            rest = rest[1:]
            continue
        if rest[0] == "*":
            return True
        etag, rest = _scan_etag(rest)
        if not etag:
            return False
        if current is not None:
            if weak and etag.removeprefix("W/") == current:
                return True
            if not weak and etag == current:
                return True


def _if_match(value: str, current: str | None = None) -> bool | None:
    """RFC 7232 §3.1: None without the header; only ``*`` matches when there is no ETag."""
    if not value:
        return None
    return _tags_match(value, current, weak=False)


def _if_none_match(value: str, current: str | None = None) -> bool | None:
    """RFC 7232 §3.2: False (= "matches") for ``*`` or the current ETag (weak comparison)."""
    if not value:
        return None
    return not _tags_match(value, current, weak=True)


def _is_zero_time(mtime: float | None) -> bool:
    return mtime is None or math.floor(mtime) == 0


# --- ranges ---------------------------------------------------------------------------------------

_INT = re.compile(r"[+-]?\d{1,19}")
_MAX_RANGES = 100


class RangeError(Exception):
    """A ``Range`` header that cannot be served (416)."""

    def __init__(self, message: str, *, no_overlap: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.no_overlap = no_overlap


def parse_range(header: str, size: int) -> list[tuple[int, int]]:
    """``(start, length)`` pairs of a ``Range`` header (Go ``parseRange`` semantics).

    Raises ``RangeError("invalid range")`` for syntax errors and
    ``RangeError("invalid range: failed to overlap", no_overlap=True)`` when no range overlaps.
    """
    if not header:
        return []
    if not header.startswith("bytes="):
        raise RangeError("invalid range")
    ranges: list[tuple[int, int]] = []
    no_overlap = False
    specs = header[len("bytes=") :].split(",")
    if len(specs) > _MAX_RANGES:
        raise RangeError("invalid range")
    for spec in specs:
        spec = spec.strip(" \t")
        if not spec:
            continue
        first, sep, last = spec.partition("-")
        if not sep:
            raise RangeError("invalid range")
        first, last = first.strip(" \t"), last.strip(" \t")
        if not first:
            if not last or last[0] == "-" or not _INT.fullmatch(last):
                raise RangeError("invalid range")
            suffix = int(last)
            if suffix < 0:
                raise RangeError("invalid range")
            if suffix == 0:
                no_overlap = True  # RFC 7233: a zero-length suffix is unsatisfiable
                continue
            suffix = min(suffix, size)
            ranges.append((size - suffix, suffix))
            continue
        if not _INT.fullmatch(first):
            raise RangeError("invalid range")
        start = int(first)
        if start < 0:
            raise RangeError("invalid range")
        if start >= size:
            no_overlap = True
            continue
        if not last:
            ranges.append((start, size - start))
            continue
        if not _INT.fullmatch(last):
            raise RangeError("invalid range")
        end = int(last)
        if start > end:
            raise RangeError("invalid range")
        end = min(end, size - 1)
        ranges.append((start, end - start + 1))
    if no_overlap and not ranges:
        raise RangeError("invalid range: failed to overlap", no_overlap=True)
    return ranges


# --- response planning ----------------------------------------------------------------------------

Part = bytes | tuple[int, int]


@dataclass(slots=True)
class Planned:
    """A response decided by :func:`plan_response`: status, headers and the body parts.

    ``parts`` holds literal bytes and ``(start, length)`` slices of the content, in order;
    ``length`` is the total body length (the ``Content-Length`` sent, also for HEAD).
    """

    status: int
    headers: Headers
    parts: list[Part] = field(default_factory=list)
    length: int = 0


_REMOVED_ON_ERROR = frozenset((b"cache-control", b"last-modified", b"etag", b"content-encoding"))


def _error(headers: Headers, status: int, message: str, extra: Headers | None = None) -> Planned:
    body = (message + "\n").encode()
    kept = [h for h in headers if h[0].lower() not in _REMOVED_ON_ERROR]
    kept += [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"x-content-type-options", b"nosniff"),
        *(extra or []),
        (b"content-length", str(len(body)).encode()),
    ]
    return Planned(status, kept, [body], len(body))


def plan_response(
    *,
    method: str,
    request_headers: Mapping[str, str],
    name: str,
    content: Content,
    mtime: float | None,
    headers: Headers,
    ctype: str | None = None,
    etag: str | None = None,
) -> Planned:
    """Decide the answer for serving ``content`` (named ``name``) like Go's ``ServeContent``.

    ``request_headers`` maps lower-case header names to their first value; ``headers`` are the
    response headers set so far (CORS, public cache headers), kept unless this layer answers
    with an error (then Cache-Control and Last-Modified are removed, as Go's ``serveError``).
    ``etag`` (a quoted strong entity tag) is sent with the answer and compared by the
    conditional headers (Go's ServeContent does the same with an ``Etag`` header set); without
    it, as for the reference's files, entity-tag conditions only match ``*``.
    """
    out = list(headers)
    if etag is not None:
        out.append((b"etag", etag.encode()))
    size = content.size
    has_mtime = not _is_zero_time(mtime)
    if has_mtime:
        assert mtime is not None
        out.append((b"last-modified", http_date(mtime).encode()))
    modtime = math.floor(mtime) if has_mtime and mtime is not None else 0
    get_or_head = method in ("GET", "HEAD")

    # RFC 7232 §6, in Go's order.
    cond = _if_match(request_headers.get("if-match", ""), etag)
    if cond is None:
        ius = request_headers.get("if-unmodified-since", "")
        if ius and has_mtime:
            t = parse_http_date(ius)
            if t is not None:
                cond = modtime <= t
    if cond is False:
        out.append((b"content-length", b"0"))
        return Planned(412, out)
    inm = _if_none_match(request_headers.get("if-none-match", ""), etag)
    not_modified = False
    if inm is False:
        if not get_or_head:
            out.append((b"content-length", b"0"))
            return Planned(412, out)
        not_modified = True
    elif inm is None and get_or_head and has_mtime:
        ims = request_headers.get("if-modified-since", "")
        if ims:
            t = parse_http_date(ims)
            if t is not None and modtime <= t:
                not_modified = True
    if not_modified:
        return Planned(304, out)

    range_header = request_headers.get("range", "")
    if range_header and get_or_head:
        if_range = request_headers.get("if-range", "")
        if if_range:
            tag, _ = _scan_etag(if_range)
            if tag:  # a strong match of the current tag keeps the range
                if etag is None or tag != etag:
                    range_header = ""
            else:
                t = parse_http_date(if_range) if has_mtime else None
                if t is None or t != modtime:
                    range_header = ""

    if ctype is None:
        ctype = content_type(name, content)
    try:
        ranges = parse_range(range_header, size)
    except RangeError as exc:
        if exc.no_overlap and size == 0:
            ranges = []
        else:
            extra: Headers = []
            if exc.no_overlap:
                extra.append((b"content-range", f"bytes */{size}".encode()))
            return _error(out, 416, exc.message, extra)
    if sum(length for _, length in ranges) > size:
        ranges = []  # larger than the file itself: ignore the header, like Go

    if len(ranges) == 1:
        start, length = ranges[0]
        out += [
            (b"content-type", ctype.encode()),
            (b"content-range", f"bytes {start}-{start + length - 1}/{size}".encode()),
            (b"accept-ranges", b"bytes"),
            (b"content-length", str(length).encode()),
        ]
        return Planned(206, out, [(start, length)], length)
    if len(ranges) > 1:
        boundary = secrets.token_hex(30)
        parts: list[Part] = []
        total = 0
        for i, (start, length) in enumerate(ranges):
            head = (
                f"{'' if i == 0 else chr(13) + chr(10)}--{boundary}\r\n"
                f"Content-Range: bytes {start}-{start + length - 1}/{size}\r\n"
                f"Content-Type: {ctype}\r\n\r\n"
            ).encode()
            parts += [head, (start, length)]
            total += len(head) + length
        tail = f"\r\n--{boundary}--\r\n".encode()
        parts.append(tail)
        total += len(tail)
        out += [
            (b"content-type", f"multipart/byteranges; boundary={boundary}".encode()),
            (b"accept-ranges", b"bytes"),
            (b"content-length", str(total).encode()),
        ]
        return Planned(206, out, parts, total)
    out += [
        (b"content-type", ctype.encode()),
        (b"accept-ranges", b"bytes"),
        (b"content-length", str(size).encode()),
    ]
    return Planned(200, out, [(0, size)] if size else [], size)


async def send_response(
    send: ASGISend,
    planned: Planned,
    content: Content | None,
    *,
    head: bool,
    pathsend: bool = False,
    zerocopy: bool = False,
    reuse: Callable[[], bool] | None = None,
) -> int:
    """Send a planned response; returns the number of body bytes sent.

    Bodies up to :data:`SMALL_BODY` go out in one message; larger slices are read and sent
    :data:`CHUNK_SIZE` bytes at a time (reads of file content run in a worker thread), so a
    large file is never held in memory. With ``zerocopy`` (the server announced the ASGI
    ``http.response.zerocopysend`` extension: ours on plain TCP) a body of a file on disk from
    :data:`ZEROCOPY_BODY` bytes goes out with ``sendfile``: each slice (the whole file, a
    range, the parts of a multipart answer) as one message with its offset and count, the file
    staying open until the send returns. With ``pathsend`` (the ASGI ``http.response.pathsend``
    extension, e.g. Granian) a large whole file on disk is handed to the server by path.

    With ``reuse`` (the content never changes while ``reuse()`` holds), an answer from memory
    that goes out in one message is offered to the server to send again (``answers.py``).
    """
    opening: dict[str, Any] = {
        "type": "http.response.start",
        "status": planned.status,
        "headers": planned.headers,
    }
    if (
        reuse is not None
        and isinstance(content, BytesContent | None)
        and (head or planned.length <= SMALL_BODY)
    ):
        opening[REUSE_MESSAGE_KEY] = Reuse(reuse)
    await send(opening)
    if head or not planned.parts:
        await send({"type": "http.response.body", "body": b""})
        return 0
    if (
        pathsend
        and isinstance(content, FileContent)
        and content.path
        and planned.length > SMALL_BODY
        and planned.parts == [(0, content.size)]
    ):
        await send({"type": "http.response.pathsend", "path": content.path})
        return planned.length
    if (
        zerocopy
        and isinstance(content, FileContent)
        and planned.length >= ZEROCOPY_BODY
        and content.fileno() >= 0
    ):
        await _send_zerocopy(send, planned.parts, content)
        return planned.length
    if (
        isinstance(content, FileContent)
        and content.immutable
        and planned.length > MAPPED_BODY
        and len(planned.parts) == 1
        and not isinstance(planned.parts[0], bytes)
    ):
        mapped = content.mapped()
        if mapped is not None:
            start, length = planned.parts[0]
            # The transport writes straight from the page cache (no copy into a buffer, no
            # worker thread); the mapping lives as long as the transport holds the view.
            await send(
                {"type": "http.response.body", "body": memoryview(mapped)[start : start + length]}
            )
            return length
    # Content other than bytes and plain files (a zip entry being decompressed) is read in a
    # worker thread: reaching a range may decompress what precedes it.
    blocking = content is not None and not isinstance(content, BytesContent | FileContent)
    if planned.length <= SMALL_BODY or content is None:
        if blocking:
            body = await asyncio.to_thread(_join, content, planned.parts)
        else:
            body = _join(content, planned.parts)
        await send({"type": "http.response.body", "body": body})
        return len(body)
    sent = 0
    in_thread = not isinstance(content, BytesContent)
    for part in planned.parts:
        if isinstance(part, bytes):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            sent += len(part)
            continue
        start, length = part
        end = start + length
        while start < end:
            n = min(CHUNK_SIZE, end - start)
            if in_thread:
                data = await asyncio.to_thread(content.read, start, n)
            else:
                data = content.read(start, n)
            if not data:
                raise OSError("file shrank while being served")
            await send({"type": "http.response.body", "body": data, "more_body": True})
            sent += len(data)
            start += len(data)
    await send({"type": "http.response.body", "body": b""})
    return sent


async def _send_zerocopy(send: ASGISend, parts: list[Part], content: FileContent) -> None:
    last = len(parts) - 1
    for i, part in enumerate(parts):
        more = i < last
        if isinstance(part, bytes):
            await send({"type": "http.response.body", "body": part, "more_body": more})
        else:
            start, length = part
            await send(
                {
                    "type": ZEROCOPY_EXTENSION,
                    "file": content,
                    "offset": start,
                    "count": length,
                    "more_body": more,
                }
            )


def _join(content: Content | None, parts: list[Part]) -> bytes:
    return b"".join(part if isinstance(part, bytes) else _read(content, *part) for part in parts)


def _read(content: Content | None, start: int, length: int) -> bytes:
    if content is None:
        return b""
    data = content.read(start, length)
    if len(data) != length:
        raise OSError("file shrank while being served")
    return data
