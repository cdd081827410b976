"""Semantic versions and constraints with Masterminds semver v3.5 semantics (spec §5.6).

Two version parsers:

* :meth:`Version.parse_strict` (Go ``StrictNewVersion``): ``MAJOR.MINOR.PATCH[-PRE][+BUILD]``, no
  ``v`` prefix, no leading zeros. Used for package versions, version directories, ``format_version``
  and every ``{packageVersion}`` in URLs.
* :meth:`Version.parse_lenient` (Go ``NewVersion`` with coercion): optional ``v``, one to three
  numeric parts (missing ones are 0), leading zeros allowed. Used for ``kibana.version``,
  ``agent.version``, ``spec.min``/``spec.max``, sorting and constraint operands.

:class:`Constraint` implements the library's constraint language (``||`` alternatives, ``,`` or
whitespace conjunction, hyphen ranges, ``= != > < >= => <= =< ~ ~> ^``, ``x``/``X``/``*``
wildcards) including its quirks (``>11`` means ``>=12.0.0``, ``<=11.1`` means ``<11.2.0``) and the
prerelease rule: a version with a prerelease tag only satisfies an alternative that contains an
operand with a prerelease tag.

Errors are :class:`~package_storage.errors.VersionError` whose message is the library's text
(``invalid semantic version``, ``version segment starts with 0``, ``invalid prerelease string``,
``invalid metadata string``, ``improper constraint: "<text>"``, ...). Callers add the context
(which parameter, which package).

Everything here is pure and immutable; parse results are cached.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final, NoReturn

from package_storage.errors import VersionError

__all__ = [
    "Constraint",
    "Version",
    "compare",
    "sort_key_for",
]

# --- limits and messages (Masterminds semver v3.5) -----------------------------------------------

MAX_VERSION_LEN: Final = 256
MAX_CONSTRAINT_LEN: Final = 512
MAX_CONSTRAINT_GROUPS: Final = 32
_MAX_UINT64: Final = (1 << 64) - 1

ERR_INVALID_SEMVER: Final = "invalid semantic version"
ERR_EMPTY_STRING: Final = "version string empty"
ERR_INVALID_CHARACTERS: Final = "invalid characters in version"
ERR_SEGMENT_STARTS_ZERO: Final = "version segment starts with 0"
ERR_INVALID_METADATA: Final = "invalid metadata string"
ERR_INVALID_PRERELEASE: Final = "invalid prerelease string"
ERR_VERSION_TOO_LONG: Final = f"version string is too long (max {MAX_VERSION_LEN} bytes)"
ERR_CONSTRAINT_TOO_LONG: Final = f"constraint string is too long (max {MAX_CONSTRAINT_LEN} bytes)"
ERR_TOO_MANY_GROUPS: Final = f"too many constraint groups (max {MAX_CONSTRAINT_GROUPS})"
ERR_CONSTRAINT_PARSER: Final = "constraint parser error"

_DIGITS: Final = frozenset("0123456789")
_IDENT_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789")
# Characters of a numeric part of a constraint operand: digits, wildcards and (a quirk kept from the
# library's former regular expression) a literal ``|``.
_SEG_CHARS: Final = frozenset("0123456789xX*|")
# Go's ``\s``: ASCII whitespace without \v.
_SPACES: Final = " \t\n\f\r"
_WILDCARDS: Final = frozenset(("x", "X", "*"))

_LENIENT_RE: Final = re.compile(
    r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)

_GO_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def _go_quote(s: str) -> str:
    """Go ``strconv.Quote`` (``%q``) for the strings that appear in error messages."""
    out = ['"']
    for ch in s:
        esc = _GO_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():
            out.append(ch)
        else:
            cp = ord(ch)
            if cp < 0x80:
                out.append(f"\\x{cp:02x}")
            elif cp < 0x10000:
                out.append(f"\\u{cp:04x}")
            else:
                out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


def _fail(message: str) -> NoReturn:
    raise VersionError(message)


def _byte_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def _parse_uint(digits: str) -> int:
    """Go ``strconv.ParseUint(digits, 10, 64)`` for a string of ASCII digits (maybe empty)."""
    if not digits:
        _fail(f"strconv.ParseUint: parsing {_go_quote(digits)}: invalid syntax")
    value = int(digits)
    if value > _MAX_UINT64:
        _fail(f"strconv.ParseUint: parsing {_go_quote(digits)}: value out of range")
    return value


def _valid_identifiers(s: str) -> bool:
    """Dot-separated, non-empty identifiers of ``[0-9A-Za-z-]``."""
    return all(part and _IDENT_CHARS.issuperset(part) for part in s.split("."))


def _prerelease_error(pre: str) -> str | None:
    if not _valid_identifiers(pre):
        return ERR_INVALID_PRERELEASE
    for part in pre.split("."):
        if len(part) > 1 and part[0] == "0" and _DIGITS.issuperset(part):
            return ERR_SEGMENT_STARTS_ZERO
    return None


# --- ordering -----------------------------------------------------------------------------------

_RELEASE_KEY: Final[tuple[int, ...]] = (1,)
_IdentKey = tuple[int, int, str]


def _prerelease_key(pre: str) -> tuple[Any, ...]:
    """Sort key of the prerelease part: a release sorts after every prerelease; identifiers compare
    left to right, numeric (fitting in uint64) before alphanumeric, numbers numerically, strings
    bytewise; a missing identifier is smaller."""
    if not pre:
        return _RELEASE_KEY
    idents: list[_IdentKey] = []
    for part in pre.split("."):
        if part and part.isascii() and part.isdigit() and int(part) <= _MAX_UINT64:
            idents.append((0, int(part), ""))
        else:
            idents.append((1, 0, part))
    return (0, tuple(idents))


def _compare_prerelease(a: str, b: str) -> int:
    """The library's ``comparePrerelease`` (used by ``!=`` with a patch wildcard), where an empty
    string is a missing identifier, not a release."""
    ka = _prerelease_key(a) if a else (0, ((-1, 0, ""),))
    kb = _prerelease_key(b) if b else (0, ((-1, 0, ""),))
    return (ka > kb) - (ka < kb)


class Version:
    """A parsed version. Immutable and hashable; ordering follows semver precedence and equality
    ignores build metadata (``1.0.0+a == 1.0.0+b``). ``str(v)`` is the exact text it was parsed
    from."""

    __slots__ = (
        "_major_minor",
        "build",
        "major",
        "minor",
        "original",
        "patch",
        "prerelease",
        "sort_key",
    )

    major: int
    minor: int
    patch: int
    prerelease: str
    build: str
    original: str
    sort_key: tuple[Any, ...]
    """Precomputed precedence key: ``a < b`` exactly when ``a.sort_key < b.sort_key``."""
    _major_minor: Version | None

    def __init__(
        self,
        major: int,
        minor: int,
        patch: int,
        prerelease: str = "",
        build: str = "",
        original: str | None = None,
    ) -> None:
        if original is None:
            original = f"{major}.{minor}.{patch}"
            if prerelease:
                original += "-" + prerelease
            if build:
                original += "+" + build
        setter = object.__setattr__
        setter(self, "major", major)
        setter(self, "minor", minor)
        setter(self, "patch", patch)
        setter(self, "prerelease", prerelease)
        setter(self, "build", build)
        setter(self, "original", original)
        setter(self, "sort_key", (major, minor, patch, _prerelease_key(prerelease)))
        setter(self, "_major_minor", None)

    # -- parsing ---------------------------------------------------------------------------------

    @classmethod
    def parse_strict(cls, s: str) -> Version:
        """Go ``StrictNewVersion``: ``MAJOR.MINOR.PATCH[-PRE][+BUILD]`` without leading zeros."""
        return _parse_strict(s)

    @classmethod
    def parse_lenient(cls, s: str) -> Version:
        """Go ``NewVersion``: ``v?`` + 1-3 numeric parts (missing ones are 0, leading zeros
        allowed) + optional ``-PRE`` / ``+BUILD``."""
        return _parse_lenient(s)

    # -- properties ------------------------------------------------------------------------------

    @property
    def is_prerelease(self) -> bool:
        return self.prerelease != ""

    @property
    def major_minor(self) -> Version:
        """``MAJOR.MINOR.0`` (no prerelease, no build), used for spec-version ranges (§3.4)."""
        mm = self._major_minor
        if mm is None:
            text = f"{self.major}.{self.minor}.0"
            if self.original == text:
                mm = self
            else:
                mm = Version(self.major, self.minor, 0, original=text)
            object.__setattr__(self, "_major_minor", mm)
        return mm

    def canonical(self) -> str:
        """``MAJOR.MINOR.PATCH[-PRE][+BUILD]`` without ``v`` and leading zeros (Go ``String()``)."""
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + self.prerelease
        if self.build:
            text += "+" + self.build
        return text

    # -- immutability, pickling ------------------------------------------------------------------

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Version is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Version is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            Version,
            (self.major, self.minor, self.patch, self.prerelease, self.build, self.original),
        )

    # -- comparison ------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Version):
            return self.sort_key == other.sort_key
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, Version):
            return self.sort_key != other.sort_key
        return NotImplemented

    def __lt__(self, other: Version) -> bool:
        if isinstance(other, Version):
            return self.sort_key < other.sort_key
        return NotImplemented

    def __le__(self, other: Version) -> bool:
        if isinstance(other, Version):
            return self.sort_key <= other.sort_key
        return NotImplemented

    def __gt__(self, other: Version) -> bool:
        if isinstance(other, Version):
            return self.sort_key > other.sort_key
        return NotImplemented

    def __ge__(self, other: Version) -> bool:
        if isinstance(other, Version):
            return self.sort_key >= other.sort_key
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.sort_key)

    def __str__(self) -> str:
        return self.original

    def __repr__(self) -> str:
        return f"Version({self.original!r})"


def compare(a: Version, b: Version) -> int:
    """-1, 0 or 1 as ``a`` is lower than, equal to (build ignored) or higher than ``b``."""
    ka, kb = a.sort_key, b.sort_key
    return (ka > kb) - (ka < kb)


def sort_key_for(version: str) -> tuple[Any, ...]:
    """Sort key for a version string that may not parse (spec §4.3, §4.5): versions that parse
    (leniently) sort by semver precedence and before every string that does not parse; those sort
    among themselves bytewise."""
    return _sort_key_for(version)


@lru_cache(maxsize=65536)
def _sort_key_for(version: str) -> tuple[Any, ...]:
    try:
        return (0, _parse_lenient(version).sort_key)
    except VersionError:
        return (1, version.encode("utf-8", "surrogatepass"))


@lru_cache(maxsize=16384)
def _parse_strict(s: str) -> Version:
    if not s:
        _fail(ERR_EMPTY_STRING)
    if _byte_len(s) > MAX_VERSION_LEN:
        _fail(ERR_VERSION_TOO_LONG)
    parts = s.split(".", 2)
    if len(parts) != 3:
        _fail(ERR_INVALID_SEMVER)
    major_s, minor_s, rest = parts
    build = ""
    prerelease = ""
    plus = rest.find("+")
    if plus >= 0:
        build = rest[plus + 1 :]
        rest = rest[:plus]
        if not _valid_identifiers(build):
            _fail(ERR_INVALID_METADATA)
    dash = rest.find("-")
    if dash >= 0:
        prerelease = rest[dash + 1 :]
        rest = rest[:dash]
        error = _prerelease_error(prerelease)
        if error is not None:
            _fail(error)
    for part in (major_s, minor_s, rest):
        if not _DIGITS.issuperset(part):
            _fail(ERR_INVALID_CHARACTERS)
        if len(part) > 1 and part[0] == "0":
            _fail(ERR_SEGMENT_STARTS_ZERO)
    return Version(
        _parse_uint(major_s), _parse_uint(minor_s), _parse_uint(rest), prerelease, build, s
    )


def _lenient_segment(digits: str) -> int:
    try:
        return _parse_uint(digits)
    except VersionError as exc:
        raise VersionError(f"error parsing version segment: {exc.message}") from None


@lru_cache(maxsize=16384)
def _parse_lenient(s: str) -> Version:
    if _byte_len(s) > MAX_VERSION_LEN:
        _fail(ERR_VERSION_TOO_LONG)
    m = _LENIENT_RE.fullmatch(s)
    if m is None:
        _fail(ERR_INVALID_SEMVER)
    major_s, minor_s, patch_s, pre, build = m.groups()
    major = _lenient_segment(major_s)
    minor = _lenient_segment(minor_s[1:]) if minor_s else 0
    patch = _lenient_segment(patch_s[1:]) if patch_s else 0
    pre = pre or ""
    if pre:
        error = _prerelease_error(pre)
        if error is not None:
            _fail(error)
    return Version(major, minor, patch, pre, build or "", s)


# --- constraints --------------------------------------------------------------------------------

_CV: Final = (
    r"v?([0-9|xX*]+)(\.[0-9|xX*]+)?(\.[0-9|xX*]+)?"
    r"(-([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?"
    r"(\+([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?"
)
_WS: Final = r"[\t\n\f\r ]"
# Hyphen range ``A - B``: group 1 is A, group 11 is B.
_RANGE_RE: Final = re.compile(f"{_WS}*({_CV}){_WS}+-{_WS}+({_CV}){_WS}*")

_Test = Callable[[Version], bool]


def _improper(text: str) -> NoReturn:
    raise VersionError(f"improper constraint: {_go_quote(text)}")


def _rewrite_ranges(text: str) -> str:
    """``A - B`` becomes ``>= A, <= B `` (every match of the original text replaces the first
    occurrence of the matched text, like the library)."""
    if "-" not in text:
        return text
    out = text
    for m in _RANGE_RE.finditer(text):
        out = out.replace(m.group(0), f">= {m.group(1)}, <= {m.group(11)} ", 1)
    return out


def _scan_op(s: str) -> tuple[str, str]:
    two = s[:2]
    if two in ("!=", ">=", "=>", "<=", "=<", "~>"):
        return two, s[2:]
    if s[:1] in ("=", ">", "<", "~", "^"):
        return s[:1], s[1:]
    return "", s


def _scan_identifiers(s: str, i: int) -> int:
    """Index just past the dot-separated identifiers starting at ``i`` (``i`` when none)."""
    n = len(s)
    end = i
    while True:
        start = end
        while end < n and s[end] in _IDENT_CHARS:
            end += 1
        if end == start:
            return start
        if end + 1 < n and s[end] == "." and s[end + 1] in _IDENT_CHARS:
            end += 1
            continue
        return end


def _scan_operand(s: str) -> tuple[list[str], str, str, str] | None:
    """Read ``v?`` + 1-3 parts + ``-pre`` + ``+build`` from the front of ``s``: returns
    (parts, pre, build, rest) or None when no operand starts here."""
    n = len(s)
    i = 1 if s[:1] == "v" else 0
    segs: list[str] = []
    while True:
        start = i
        while i < n and s[i] in _SEG_CHARS:
            i += 1
        if i == start:
            return None
        segs.append(s[start:i])
        # A dot separates parts only when a part follows it.
        if len(segs) == 3 or i + 1 >= n or s[i] != "." or s[i + 1] not in _SEG_CHARS:
            break
        i += 1
    pre = build = ""
    if i < n and s[i] == "-":
        end = _scan_identifiers(s, i + 1)
        if end > i + 1:
            pre = s[i + 1 : end]
            i = end
    if i < n and s[i] == "+":
        end = _scan_identifiers(s, i + 1)
        if end > i + 1:
            build = s[i + 1 : end]
            i = end
    return segs, pre, build, s[i:]


def _operand_segment(digits: str) -> int:
    if not _DIGITS.issuperset(digits) or not digits:
        _fail(ERR_CONSTRAINT_PARSER)
    value = int(digits)
    if value > _MAX_UINT64:
        _fail(ERR_CONSTRAINT_PARSER)
    return value


class _Term:
    """One comparison: operator, operand version and which parts were wildcards."""

    __slots__ = ("con", "dirty", "minor_dirty", "op", "orig", "patch_dirty", "test")

    def __init__(
        self,
        op: str,
        orig: str,
        con: Version,
        dirty: bool,
        minor_dirty: bool,
        patch_dirty: bool,
    ) -> None:
        self.op = op
        self.orig = orig
        self.con = con
        self.dirty = dirty
        self.minor_dirty = minor_dirty
        self.patch_dirty = patch_dirty
        self.test: _Test = _make_test(op, con, dirty, minor_dirty, patch_dirty)


def _build_term(op: str, orig: str, segs: list[str], pre: str, build: str) -> _Term:
    n = len(segs)
    major = minor = patch = 0
    dirty = minor_dirty = patch_dirty = False
    ver_len = 5 + (1 + len(pre) if pre else 0)  # length of the version the library would build
    keep_build = ""
    if segs[0] in _WILDCARDS:
        dirty = True
    elif n < 2 or segs[1] in _WILDCARDS:
        dirty = minor_dirty = True
        ver_len += len(segs[0]) - 1
        major = _operand_segment(segs[0])
    elif n < 3 or segs[2] in _WILDCARDS:
        dirty = patch_dirty = True
        ver_len += len(segs[0]) + len(segs[1]) - 2
        major = _operand_segment(segs[0])
        minor = _operand_segment(segs[1])
    else:
        keep_build = build  # build metadata is only kept when the version is fully specified
        ver_len = len(orig)
        major = _operand_segment(segs[0])
        minor = _operand_segment(segs[1])
        patch = _operand_segment(segs[2])
    if ver_len > MAX_VERSION_LEN:
        _fail(ERR_CONSTRAINT_PARSER)
    if pre and _prerelease_error(pre) is not None:
        _fail(ERR_CONSTRAINT_PARSER)
    con = Version(major, minor, patch, pre, keep_build, orig)
    return _Term(op, orig, con, dirty, minor_dirty, patch_dirty)


def _scan_term(s: str) -> tuple[_Term, str]:
    op, rest = _scan_op(s)
    rest = rest.lstrip(_SPACES)
    scanned = _scan_operand(rest)
    if scanned is None:
        _improper(s)
    segs, pre, build, after = scanned
    orig = rest[: len(rest) - len(after)]
    return _build_term(op, orig, segs, pre, build), after


def _parse_group(group: str) -> list[_Term]:
    """An AND group such as ``>=2.1.x, <3.1.0``: terms separated by whitespace or a comma."""
    s = group.lstrip(_SPACES)
    if not s:
        _improper(group)
    terms: list[_Term] = []
    while True:
        term, rest = _scan_term(s)
        terms.append(term)
        trimmed = rest.lstrip(_SPACES)
        if not trimmed:
            return terms
        if trimmed[0] == ",":
            trimmed = trimmed[1:].lstrip(_SPACES)
        elif len(trimmed) == len(rest):
            _improper(group)  # no separator between two terms
        if not trimmed:
            _improper(group)
        s = trimmed


def _make_test(op: str, con: Version, dirty: bool, minor_dirty: bool, patch_dirty: bool) -> _Test:
    """The check of one term, for a version already known to pass the prerelease rule."""
    ck = con.sort_key
    cmaj, cmin, cpat = con.major, con.minor, con.patch

    def tilde(v: Version) -> bool:
        if v.sort_key < ck:
            return False
        if cmaj == 0 and cmin == 0 and cpat == 0 and not minor_dirty and not patch_dirty:
            return True  # ~0.0.0 (and ~*) accepts everything
        if v.major != cmaj:
            return False
        return minor_dirty or v.minor == cmin

    if op in ("", "="):
        if dirty:
            return tilde
        return lambda v: v.sort_key == ck
    if op in ("~", "~>"):
        return tilde
    if op == "^":

        def caret(v: Version) -> bool:
            if v.sort_key < ck:
                return False
            if cmaj > 0 or minor_dirty:
                return v.major == cmaj
            if v.major > 0:
                return False
            if cmin > 0 or patch_dirty:
                return v.minor == cmin
            if v.minor > 0:
                return False
            return v.patch == cpat

        return caret
    if op == ">":
        if not dirty:
            return lambda v: v.sort_key > ck

        def greater_wild(v: Version) -> bool:
            if v.major != cmaj:
                return v.major > cmaj
            if minor_dirty:
                return False  # >11 needs 12 or higher
            if patch_dirty:
                return v.minor > cmin  # >11.1 needs 11.2 or higher
            return v.sort_key > ck

        return greater_wild
    if op == "<":
        return lambda v: v.sort_key < ck
    if op in (">=", "=>"):
        return lambda v: v.sort_key >= ck
    if op in ("<=", "=<"):
        if not dirty:
            return lambda v: v.sort_key <= ck

        def less_equal_wild(v: Version) -> bool:
            if v.major > cmaj:
                return False
            return not (v.major == cmaj and v.minor > cmin and not minor_dirty)

        return less_equal_wild
    if op == "!=":
        cpre = con.prerelease

        def not_equal(v: Version) -> bool:
            if dirty:
                if v.major != cmaj:
                    return True
                if v.minor != cmin and not minor_dirty:
                    return True
                if minor_dirty:
                    return False
                if v.patch != cpat and not patch_dirty:
                    return True
                if patch_dirty:
                    if v.prerelease or cpre:
                        return _compare_prerelease(v.prerelease, cpre) != 0
                    return False
            return v.sort_key != ck

        return not_equal
    raise AssertionError(f"unknown constraint operator {op!r}")  # pragma: no cover


class Constraint:
    """A parsed constraint such as ``^8.12.0 || ~7.17.0``. Immutable; ``str(c)`` is the original
    text."""

    __slots__ = ("_groups", "original")

    original: str
    _groups: tuple[tuple[tuple[_Test, ...], bool], ...]

    def __init__(self, original: str, groups: list[list[_Term]]) -> None:
        compiled = tuple(
            (tuple(t.test for t in terms), any(t.con.prerelease for t in terms)) for terms in groups
        )
        object.__setattr__(self, "original", original)
        object.__setattr__(self, "_groups", compiled)

    @classmethod
    def parse(cls, s: str) -> Constraint:
        """Go ``NewConstraint``. Raises :class:`VersionError` (``improper constraint: "…"``,
        ``constraint parser error``, length limits)."""
        return _parse_constraint(s)

    def check(self, v: Version) -> bool:
        """True when ``v`` satisfies at least one alternative. A prerelease ``v`` only satisfies
        alternatives that mention a prerelease."""
        is_pre = v.prerelease != ""
        for tests, has_pre in self._groups:
            if is_pre and not has_pre:
                continue
            for test in tests:
                if not test(v):
                    break
            else:
                return True
        return False

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Constraint is immutable (cannot set {name!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_parse_constraint, (self.original,))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Constraint):
            return self.original == other.original
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.original)

    def __str__(self) -> str:
        return self.original

    def __repr__(self) -> str:
        return f"Constraint({self.original!r})"


@lru_cache(maxsize=4096)
def _parse_constraint(s: str) -> Constraint:
    if _byte_len(s) > MAX_CONSTRAINT_LEN:
        _fail(ERR_CONSTRAINT_TOO_LONG)
    alternatives = _rewrite_ranges(s).split("||")
    if len(alternatives) > MAX_CONSTRAINT_GROUPS:
        _fail(ERR_TOO_MANY_GROUPS)
    return Constraint(s, [_parse_group(group) for group in alternatives])
