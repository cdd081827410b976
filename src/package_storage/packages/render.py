"""JSON rendering exactly like the reference's Go ``encoding/json`` encoder (spec §1.5).

Pure. The reference encodes with two-space indentation and HTML escaping disabled, then adds one
``\\n``. Dict keys are emitted in insertion order: building dicts in the reference's struct order
(and free-form maps with sorted keys) is the job of the code that builds them (``manifest.py``).

Differences from ``json.dumps(obj, indent=2, ensure_ascii=False)`` handled here:

* floats are printed the way Go prints them (``1.0`` -> ``1``, exponent form only below 1e-6 and
  at/above 1e21, exponents without a leading zero: ``1e-7``);
* U+2028 and U+2029 are escaped;
* lone surrogates (invalid UTF-8 on the Go side) become U+FFFD;
* tuples render as arrays; non-string dict keys are converted with ``str``.

``/search`` bodies are joins of per-entry fragments. A fragment is cached per entry *object*
(package documents are immutable after loading), so a body over thousands of packages is one
``bytes.join``. Callers that copy an entry to change it get a fresh rendering of the copy.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

__all__ = [
    "categories_body",
    "clear_fragment_cache",
    "dumps",
    "entry_fragment",
    "format_float",
    "search_body",
]

_encode_basestring: Any = encode_basestring  # C-accelerated: escapes '"', '\\' and controls only

_LINE_SEPARATORS = re.compile("[\u2028\u2029]")
_SURROGATES = re.compile("[\ud800-\udfff]")


def _encode_str(s: str) -> str:
    out: str = _encode_basestring(s)
    if "\u2028" in out or "\u2029" in out:
        out = _LINE_SEPARATORS.sub(lambda m: f"\\u{ord(m.group()):04x}", out)
    return out


def format_float(value: float) -> str:
    """``value`` as Go's encoding/json prints a float64."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"json: unsupported value: {value!r}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    digits_tuple, exponent = _shortest(abs(value))
    digits = "".join(map(str, digits_tuple))
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        sci_exp = exponent + len(digits) - 1
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp_sign = "-" if sci_exp < 0 else "+"
        exp_text = f"{abs(sci_exp):02d}"
        if exp_sign == "-" and exp_text.startswith("0"):
            exp_text = exp_text[1:]  # Go's clean-up: e-07 -> e-7
        return f"{sign}{mantissa}e{exp_sign}{exp_text}"
    if exponent >= 0:
        return sign + digits + "0" * exponent
    point = len(digits) + exponent
    if point > 0:
        return sign + digits[:point] + "." + digits[point:]
    return sign + "0." + "0" * (-point) + digits


def _shortest(magnitude: float) -> tuple[tuple[int, ...], int]:
    """Shortest round-tripping decimal digits of a positive float, without trailing zeros."""
    tup = Decimal(repr(magnitude)).as_tuple()
    digits = tuple(tup.digits)
    exponent = int(tup.exponent)
    while len(digits) > 1 and digits[-1] == 0:
        digits = digits[:-1]
        exponent += 1
    return digits, exponent


def _encode(obj: Any, level: int, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(_encode_str(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(str(int(obj)))
    elif isinstance(obj, float):
        out.append(format_float(obj))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        inner = "\n" + "  " * (level + 1)
        sep = "{" + inner
        for key, value in obj.items():
            out.append(sep)
            out.append(_encode_str(key if isinstance(key, str) else str(key)))
            out.append(": ")
            _encode(value, level + 1, out)
            sep = "," + inner
        out.append("\n" + "  " * level + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        inner = "\n" + "  " * (level + 1)
        sep = "[" + inner
        for value in obj:
            out.append(sep)
            _encode(value, level + 1, out)
            sep = "," + inner
        out.append("\n" + "  " * level + "]")
    else:
        raise TypeError(f"json: unsupported type: {type(obj).__name__}")


def _to_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text).encode("utf-8")


def dumps(obj: Any) -> bytes:
    """``obj`` as the reference renders a JSON body: 2-space indent, raw UTF-8, trailing newline."""
    out: list[str] = []
    _encode(obj, 0, out)
    out.append("\n")
    return _to_bytes("".join(out))


def _render_fragment(entry: Any) -> bytes:
    out: list[str] = ["  "]
    _encode(entry, 1, out)
    return _to_bytes("".join(out))


_FRAGMENT_CACHE_MAX = 100_000
_fragment_cache: dict[int, tuple[Any, bytes]] = {}
_fragment_lock = threading.Lock()


def entry_fragment(entry: Any) -> bytes:
    """``entry`` rendered as one element of a top-level array (indented, no separator).

    Cached by object identity: entries must not be changed after their first rendering (package
    documents never are; copy an entry before changing it).
    """
    key = id(entry)
    cached = _fragment_cache.get(key)
    if cached is not None and cached[0] is entry:
        return cached[1]
    fragment = _render_fragment(entry)
    with _fragment_lock:
        if len(_fragment_cache) >= _FRAGMENT_CACHE_MAX:
            # Drop the oldest half (dicts keep insertion order); the cache only saves time.
            for old in list(_fragment_cache)[: _FRAGMENT_CACHE_MAX // 2]:
                _fragment_cache.pop(old, None)
        _fragment_cache[key] = (entry, fragment)
    return fragment


def clear_fragment_cache() -> None:
    """Forget every cached fragment (e.g. after an index swap, to release old documents)."""
    with _fragment_lock:
        _fragment_cache.clear()


def search_body(entries: Sequence[Any]) -> bytes:
    """A ``/search`` body: the 2 bytes ``[]`` when empty, else a Go-style indented array + ``\\n``.

    Elements may be dicts (rendered and cached, see :func:`entry_fragment`) or bytes fragments
    produced by :func:`entry_fragment`.
    """
    if not entries:
        return b"[]"
    parts = [e if isinstance(e, bytes) else entry_fragment(e) for e in entries]
    return b"[\n" + b",\n".join(parts) + b"\n]\n"


def categories_body(categories: Sequence[Any]) -> bytes:
    """A ``/categories`` body (``[]\\n`` when empty)."""
    return dumps(list(categories))
