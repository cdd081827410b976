"""Package uploads: the request body streamed to disk under a size limit.

``POST /api/v1/packages`` takes ``multipart/form-data`` with the zip in ``package`` and its
detached signature, if any, in ``signature``; Starlette's form parser (python-multipart) spools
each file to a temporary file on disk past 1 MiB. Before parsing, a ``Content-Length`` above
the limit is refused at once (413); while parsing, the bytes received are counted and the
upload is refused (413) as soon as they pass the limit, so a chunked or lying client cannot
fill the disk. A body that ends early is ``400 truncated upload``; nothing is stored from a
refused upload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive

from package_storage.errors import InvalidInputError, TooLargeError

DEFAULT_MAX_UPLOAD = 512 * 1024 * 1024
_SIZE_RE = re.compile(r"([0-9]+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)", re.IGNORECASE)
_FACTORS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
MAX_SIGNATURE = 1 << 20
MAX_FIELD = 64 * 1024


def parse_size(text: str) -> int:
    """``512MiB``, ``10MB``, ``1048576`` -> bytes (at least 1)."""
    match = _SIZE_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or int(match.group(1)) < 1:
        raise InvalidInputError(
            f"size {text!r} is not valid: use a positive number of bytes, optionally with a unit"
            " (KiB, MiB, GiB, KB, MB, GB), e.g. 512MiB"
        )
    return int(match.group(1)) * _FACTORS[match.group(2).lower()]


def _too_large(limit: int) -> TooLargeError:
    return TooLargeError(
        f"upload is larger than the limit of {limit} bytes (serve --max-upload-size)"
    )


def limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises TooLargeError once the body passes ``limit`` bytes."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit)
        return message

    return wrapped


@dataclass
class Upload:
    """A parsed upload: the package's bytes, its signature's, its name and the form fields."""

    data: bytes
    signature: bytes | None
    filename: str
    fields: dict[str, str]


def _clean_name(name: str | None) -> str:
    text = "".join(c for c in (name or "") if c.isprintable())[:256]
    return text or "<upload>"


async def read_upload(request: Request, limit: int) -> Upload:
    """The package upload of ``request`` (see the module docstring)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidInputError(
            "upload a package as multipart/form-data with the zip in the field 'package'"
            " (and its .sig in 'signature')"
        )
    bounded = Request(request.scope, limited(request.receive, limit))
    try:
        async with bounded.form(max_files=2, max_fields=8, max_part_size=MAX_FIELD) as form:
            package = form.get("package")
            signature = form.get("signature")
            if not isinstance(package, UploadFile):
                raise InvalidInputError("the upload has no file in the field 'package'")
            data = await package.read()
            sig: bytes | None = None
            if isinstance(signature, UploadFile):
                sig = await signature.read(MAX_SIGNATURE + 1)
                if len(sig) > MAX_SIGNATURE:
                    raise InvalidInputError(f"signature is larger than {MAX_SIGNATURE} bytes")
            elif isinstance(signature, str) and signature:
                sig = signature.encode()
            fields = {k: v for k, v in form.items() if isinstance(v, str) and k != "signature"}
            return Upload(data, sig, _clean_name(package.filename), fields)
    except MultiPartException as exc:
        raise InvalidInputError(f"truncated or malformed upload: {exc.message}") from None
    except ClientDisconnect:
        raise InvalidInputError("truncated upload: the client went away") from None


__all__ = ["DEFAULT_MAX_UPLOAD", "Upload", "limited", "parse_size", "read_upload"]
