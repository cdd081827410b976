"""Tests of versions and constraints (Masterminds semver v3.5 semantics, spec §5.6)."""

from __future__ import annotations

import contextlib
import copy
import pickle
import re
from collections.abc import Callable
from functools import cmp_to_key
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from package_storage.errors import InvalidInputError, VersionError
from package_storage.packages.versions import Constraint, Version, compare, sort_key_for

MAX_UINT64 = (1 << 64) - 1
EPR_FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "epr"


def sat(constraint: str, version: str) -> bool:
    return Constraint.parse(constraint).check(Version.parse_lenient(version))


def error_of(fn: Callable[[str], object], text: str) -> str:
    with pytest.raises(VersionError) as info:
        fn(text)
    return info.value.message


# --- strict parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("0.0.0", (0, 0, 0, "", "")),
        ("1.2.3", (1, 2, 3, "", "")),
        ("10.20.30", (10, 20, 30, "", "")),
        ("1.2.0-rc1", (1, 2, 0, "rc1", "")),
        ("8.0.0-SNAPSHOT", (8, 0, 0, "SNAPSHOT", "")),
        ("1.0.0-alpha.1.0.x-y", (1, 0, 0, "alpha.1.0.x-y", "")),
        ("1.0.0-0", (1, 0, 0, "0", "")),
        ("1.0.0+build.5", (1, 0, 0, "", "build.5")),
        ("1.0.0+001", (1, 0, 0, "", "001")),  # build identifiers may have leading zeros
        ("1.0.0-beta+exp.sha.5114f85", (1, 0, 0, "beta", "exp.sha.5114f85")),
        ("1.0.0-a+b-c", (1, 0, 0, "a", "b-c")),
        ("18446744073709551615.0.0", (MAX_UINT64, 0, 0, "", "")),
        ("1.0.0-99999999999999999999999", (1, 0, 0, "99999999999999999999999", "")),
    ],
)
def test_parse_strict_valid(text: str, fields: tuple[int, int, int, str, str]) -> None:
    v = Version.parse_strict(text)
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == fields
    assert v.original == text
    assert str(v) == text
    assert v.is_prerelease == bool(fields[3])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "version string empty"),
        ("1", "invalid semantic version"),
        ("1.2", "invalid semantic version"),
        ("foo", "invalid semantic version"),
        ("v1.2.3", "invalid characters in version"),
        ("1.2.3.4", "invalid characters in version"),
        ("1.2.x", "invalid characters in version"),
        (" 1.2.3", "invalid characters in version"),
        ("1.2.3 ", "invalid characters in version"),
        ("1.2.3\n", "invalid characters in version"),
        ("01.2.3", "version segment starts with 0"),
        ("1.02.3", "version segment starts with 0"),
        ("1.2.03", "version segment starts with 0"),
        ("1.2.3-01", "version segment starts with 0"),
        ("1.2.3-rc.01", "version segment starts with 0"),
        ("1.2.3-", "invalid prerelease string"),
        ("1.2.3-a..b", "invalid prerelease string"),
        ("1.2.3-a_b", "invalid prerelease string"),
        ("1.2.3-a.", "invalid prerelease string"),
        ("1.2.3+", "invalid metadata string"),
        ("1.2.3+a..b", "invalid metadata string"),
        ("1.2.3+a_b", "invalid metadata string"),
        ("1.2.3-01+a..b", "invalid metadata string"),  # metadata is validated first
        ("1..3", 'strconv.ParseUint: parsing "": invalid syntax'),
        (
            "18446744073709551616.0.0",
            'strconv.ParseUint: parsing "18446744073709551616": value out of range',
        ),
        ("1." + "1" * 300 + ".0", "version string is too long (max 256 bytes)"),
    ],
)
def test_parse_strict_errors(text: str, message: str) -> None:
    assert error_of(Version.parse_strict, text) == message


def test_version_error_is_an_input_error() -> None:
    with pytest.raises(InvalidInputError) as info:
        Version.parse_strict("x")
    assert info.value.code == "invalid_version"


# --- lenient parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("7", (7, 0, 0, "", "")),
        ("7.2", (7, 2, 0, "", "")),
        ("v7.2.1", (7, 2, 1, "", "")),
        ("07.2.1", (7, 2, 1, "", "")),
        ("7.02.001", (7, 2, 1, "", "")),
        ("8.0.0-SNAPSHOT", (8, 0, 0, "SNAPSHOT", "")),
        ("v1-rc.1+b.2", (1, 0, 0, "rc.1", "b.2")),
        ("1.2-0", (1, 2, 0, "0", "")),
        ("1.2.3+001", (1, 2, 3, "", "001")),
    ],
)
def test_parse_lenient_valid(text: str, fields: tuple[int, int, int, str, str]) -> None:
    v = Version.parse_lenient(text)
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == fields
    assert str(v) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid semantic version"),
        ("foo", "invalid semantic version"),
        ("V1.2.3", "invalid semantic version"),
        ("vv1", "invalid semantic version"),
        ("1.2.3.4", "invalid semantic version"),
        ("1.", "invalid semantic version"),
        (".1", "invalid semantic version"),
        ("1.2.3-", "invalid semantic version"),
        ("1.2.3+", "invalid semantic version"),
        ("1.2.3-a..b", "invalid semantic version"),
        ("1.2.3+a_b", "invalid semantic version"),
        ("1.x", "invalid semantic version"),
        (" 1.2.3", "invalid semantic version"),
        ("1.2.3\n", "invalid semantic version"),
        ("1.2.3-01", "version segment starts with 0"),
        ("7-a.00", "version segment starts with 0"),
        (
            "1.18446744073709551616",
            "error parsing version segment: strconv.ParseUint: parsing "
            '"18446744073709551616": value out of range',
        ),
        ("1" * 257, "version string is too long (max 256 bytes)"),
    ],
)
def test_parse_lenient_errors(text: str, message: str) -> None:
    assert error_of(Version.parse_lenient, text) == message


def test_unicode_digits_are_not_digits() -> None:
    for text in ("١.٢.٣", "1.2.３"):
        with pytest.raises(VersionError):
            Version.parse_lenient(text)
        with pytest.raises(VersionError):
            Version.parse_strict(text)


# --- the Version object ---------------------------------------------------------------------------


def test_equality_and_hash_ignore_build_metadata() -> None:
    a, b = Version.parse_strict("1.0.0+a"), Version.parse_strict("1.0.0+b")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert compare(a, b) == 0
    assert str(a) == "1.0.0+a"  # but the text is kept
    assert Version.parse_lenient("v1") == Version.parse_strict("1.0.0")
    assert Version.parse_strict("1.0.0") != Version.parse_strict("1.0.0-0")
    assert Version.parse_strict("1.0.0") != "1.0.0"


def test_version_is_immutable_and_picklable() -> None:
    v = Version.parse_lenient("v1.2")
    with pytest.raises(AttributeError):
        v.major = 3
    with pytest.raises(AttributeError):
        del v.minor
    with pytest.raises(AttributeError):
        v.extra = 1
    for clone in (pickle.loads(pickle.dumps(v)), copy.deepcopy(v), copy.copy(v)):
        assert clone == v
        assert str(clone) == "v1.2"
        assert clone.sort_key == v.sort_key


def test_constructor_and_canonical() -> None:
    v = Version(1, 2, 3, "rc.1", "b")
    assert str(v) == "1.2.3-rc.1+b"
    assert Version.parse_lenient("v01.2-rc.1+b").canonical() == "1.2.0-rc.1+b"
    assert repr(Version.parse_lenient("v1")) == "Version('v1')"


def test_major_minor() -> None:
    mm = Version.parse_strict("2.10.3-beta+x").major_minor
    assert (mm.major, mm.minor, mm.patch, mm.prerelease, mm.build) == (2, 10, 0, "", "")
    assert str(mm) == "2.10.0"
    v = Version.parse_strict("3.1.0")
    assert v.major_minor is v
    assert str(Version.parse_lenient("v3.1").major_minor) == "3.1.0"
    # §3.4: spec.max=2.10 -> "<=2.10.0"; format_version 2.10.3 passes through its MAJOR.MINOR.0.
    rng = Constraint.parse(">=1.1.0,<=2.10.0")
    assert rng.check(Version.parse_strict("2.10.3").major_minor)
    assert not rng.check(Version.parse_strict("2.11.0").major_minor)
    assert rng.check(Version.parse_strict("1.1.9").major_minor)
    assert not rng.check(Version.parse_strict("1.0.9").major_minor)


SEMVER_ORG_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1-0",
    "1.0.1",
    "1.2.0",
    "1.10.0",
    "2.0.0",
    "10.0.0",
]


def test_ordering_examples() -> None:
    versions = [Version.parse_strict(s) for s in SEMVER_ORG_ORDER]
    for i, a in enumerate(versions):
        for j, b in enumerate(versions):
            expected = (i > j) - (i < j)
            assert compare(a, b) == expected, (a, b)
            assert (a < b) == (i < j)
            assert (a <= b) == (i <= j)
            assert (a > b) == (i > j)
            assert (a >= b) == (i >= j)
    assert sorted(reversed(versions)) == versions


def test_prerelease_ordering_details() -> None:
    lt = [
        ("1.0.0-1", "1.0.0-a"),  # numeric < alphanumeric
        ("1.0.0-2", "1.0.0-10"),  # numbers numerically
        ("1.0.0-Z", "1.0.0-a"),  # strings bytewise
        ("1.0.0-a", "1.0.0-a.0"),  # missing identifier is smaller
        ("1.0.0-a.b", "1.0.0-a-b"),  # identifiers "a" < "a-b"
        ("1.0.0-18446744073709551615", "1.0.0-18446744073709551616"),  # overflow: a string
        ("1.0.0-99999999999999999999", "1.0.0-a"),  # '9' < 'a' bytewise
    ]
    for a, b in lt:
        va, vb = Version.parse_strict(a), Version.parse_strict(b)
        assert va < vb, (a, b)
        assert compare(va, vb) == -1
        assert compare(vb, va) == 1


def test_sort_key_for() -> None:
    texts = ["1.10.0", "foo", "1.2.0", "1.2.0-rc1", "bar", "v1.3", "0.0.1"]
    assert sorted(texts, key=sort_key_for) == [
        "0.0.1",
        "1.2.0-rc1",
        "1.2.0",
        "v1.3",
        "1.10.0",
        "bar",
        "foo",
    ]
    assert sort_key_for("1.0.0+a") == sort_key_for("1.0.0+b")
    assert sort_key_for("1.0.0") < sort_key_for("a")


# --- constraints: the examples of spec §5.6 -------------------------------------------------------


SPEC_CASES: list[tuple[str, str, bool]] = [
    # A - B means >= A, <= B
    ("1.2.3 - 2.3.4", "1.2.3", True),
    ("1.2.3 - 2.3.4", "2.3.4", True),
    ("1.2.3 - 2.3.4", "1.2.2", False),
    ("1.2.3 - 2.3.4", "2.3.5", False),
    ("1.2 - 2.3", "2.3.9", True),  # <= 2.3 (wildcard patch)
    ("1.2 - 2.3", "2.4.0", False),
    # ~1.2.3 -> >=1.2.3 <1.3.0
    ("~1.2.3", "1.2.3", True),
    ("~1.2.3", "1.2.99", True),
    ("~1.2.3", "1.2.2", False),
    ("~1.2.3", "1.3.0", False),
    # ~1.2 / ~1.2.x -> >=1.2.0 <1.3.0
    ("~1.2", "1.2.0", True),
    ("~1.2", "1.2.9", True),
    ("~1.2", "1.3.0", False),
    ("~1.2", "1.1.9", False),
    ("~1.2.x", "1.2.0", True),
    ("~1.2.x", "1.3.0", False),
    # ~1 / ~1.x -> >=1.0.0 <2.0.0
    ("~1", "1.0.0", True),
    ("~1", "1.99.0", True),
    ("~1", "2.0.0", False),
    ("~1", "0.9.0", False),
    ("~1.x", "1.5.0", True),
    ("~1.x", "2.0.0", False),
    # ~7.x.x -> >=7.0.0 <8.0.0
    ("~7.x.x", "7.0.0", True),
    ("~7.x.x", "7.17.5", True),
    ("~7.x.x", "8.0.0", False),
    ("~7.x.x", "6.8.0", False),
    ("~>1.2.3", "1.2.4", True),
    ("~>1.2.3", "1.3.0", False),
    # ^1.2.3 -> >=1.2.3 <2.0.0
    ("^1.2.3", "1.2.3", True),
    ("^1.2.3", "1.99.99", True),
    ("^1.2.3", "2.0.0", False),
    ("^1.2.3", "1.2.2", False),
    # ^0.2.3 -> >=0.2.3 <0.3.0
    ("^0.2.3", "0.2.3", True),
    ("^0.2.3", "0.2.9", True),
    ("^0.2.3", "0.3.0", False),
    ("^0.2.3", "0.2.2", False),
    # ^0.0.3 -> =0.0.3
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("^0.0.3", "0.0.2", False),
    # ^0.0 -> <0.1.0
    ("^0.0", "0.0.0", True),
    ("^0.0", "0.0.9", True),
    ("^0.0", "0.1.0", False),
    # ^0 -> <1.0.0
    ("^0", "0.0.0", True),
    ("^0", "0.99.0", True),
    ("^0", "1.0.0", False),
    # ^8.15.2 -> >=8.15.2 <9.0.0
    ("^8.15.2", "8.15.2", True),
    ("^8.15.2", "8.19.0", True),
    ("^8.15.2", "8.15.1", False),
    ("^8.15.2", "9.0.0", False),
    # >11 means >=12.0.0; >11.1 means >=11.2.0
    (">11", "11.9.9", False),
    (">11", "12.0.0", True),
    (">11", "10.0.0", False),
    (">11.1", "11.1.9", False),
    (">11.1", "11.2.0", True),
    (">11.1", "12.0.0", True),
    (">11.1", "11.0.0", False),
    # <=11 means <12.0.0; <=11.1 means <11.2.0
    ("<=11", "11.99.99", True),
    ("<=11", "12.0.0", False),
    ("<=11", "0.1.0", True),
    ("<=11.1", "11.1.99", True),
    ("<=11.1", "11.2.0", False),
    ("<=11.1", "10.5.0", True),
    # operators without wildcards
    ("=1.2.3", "1.2.3", True),
    ("=1.2.3", "1.2.4", False),
    ("1.2.3", "1.2.3+build", True),
    ("1.2.3+a", "1.2.3+b", True),
    ("!=1.2.3", "1.2.3", False),
    ("!=1.2.3", "1.2.4", True),
    (">1.2.3", "1.2.4", True),
    (">1.2.3", "1.2.3", False),
    ("<1.2.3", "1.2.2", True),
    ("<1.2.3", "1.2.3", False),
    (">=1.2.3", "1.2.3", True),
    (">=1.2.3", "1.2.2", False),
    ("=>1.2.3", "1.2.3", True),
    ("=>1.2.3", "1.2.2", False),
    ("<=1.2.3", "1.2.3", True),
    ("<=1.2.3", "1.2.4", False),
    ("=<1.2.3", "1.2.3", True),
    ("=<1.2.3", "1.2.4", False),
    ("v1.2.3", "1.2.3", True),
    (">= v1.2", "1.2.0", True),
    # '=' (or nothing) with wildcards behaves like ~
    ("1.2", "1.2.9", True),
    ("1.2", "1.3.0", False),
    ("=1.x", "1.9.0", True),
    ("=1.x", "2.0.0", False),
    ("1.2.X", "1.2.5", True),
    ("1.*", "1.5.0", True),
    ("*", "0.0.0", True),
    ("*", "99.0.0", True),
    ("x", "1.2.3", True),
    ("X", "1.2.3", True),
    # || and AND by comma / whitespace
    ("^7.16.0 || ^8.0.0", "7.17.1", True),
    ("^7.16.0 || ^8.0.0", "8.12.0", True),
    ("^7.16.0 || ^8.0.0", "9.0.0", False),
    ("^7.16.0 || ^8.0.0", "7.15.0", False),
    (">6.7.0  <7.6.0", "7.5.9", True),
    (">6.7.0  <7.6.0", "7.6.0", False),
    (">6.7.0  <7.6.0", "6.7.0", False),
    (">=1.1, <2", "1.5.0", True),
    (">=1.1 ,<2", "2.0.0", False),
    (">=1.1,<2", "1.0.0", False),
    (">=1.1\t<2", "1.5.0", True),
    ("\n>=1.1 <2 ", "1.5.0", True),
    (">= 1.2.3 < 2.0 || => 3.0 < 4", "3.5.0", True),
    (">= 1.2.3 < 2.0 || => 3.0 < 4", "2.5.0", False),
    ("1.0.0 - 2.0.0 <=1.5.0", "1.7.0", False),
    ("1.0.0 - 2.0.0, <=1.5.0", "1.5.0", True),
    ("1 - 2 || 4 - 5", "3.0.0", False),
    ("1 - 2 || 4 - 5", "5.9.0", True),
    ("2 - 3, 4.0.0 - 5.1", "3.0.0", False),
]


@pytest.mark.parametrize(("constraint", "version", "expected"), SPEC_CASES)
def test_constraint_examples(constraint: str, version: str, expected: bool) -> None:
    assert sat(constraint, version) is expected


PRERELEASE_CASES: list[tuple[str, str, bool]] = [
    # §5.6: kibana.version=8.0.0-SNAPSHOT satisfies neither >=7.16.0 nor ^8.0.0
    (">=7.16.0", "8.0.0-SNAPSHOT", False),
    ("^8.0.0", "8.0.0-SNAPSHOT", False),
    ("^8.0.0", "8.1.0-SNAPSHOT", False),
    ("*", "1.2.3-alpha.1", False),
    ("!=4.1", "5.1.0-alpha.1", False),
    (">0", "0.0.1-alpha", False),
    (">=0", "0.0.0-alpha", False),
    # an operand with a prerelease opens the whole alternative
    ("*-0", "1.2.3-alpha.1", True),
    (">=0-0", "0.0.1-alpha", True),
    (">=0.0.0-0", "3.4.5-beta.1", True),
    (">=1.0.0-0 <2.0.0", "1.5.0-rc.1", True),  # the <2.0.0 term has no prerelease itself
    ("<2.0.0 >=1.0.0-0", "1.5.0-rc.1", True),
    (">=1.0.0-0 <2.0.0", "2.0.0-rc.1", True),  # 2.0.0-rc.1 < 2.0.0
    (">=1.0.0-0 <2.0.0 || >=3", "1.5.0-rc.1", True),
    (">=3 || >=1.0.0-0 <2.0.0", "1.5.0-rc.1", True),
    (">=3 || <2", "1.5.0-rc.1", False),
    ("^1.2.0", "1.2.1-alpha.1", False),
    ("^1.2.0-alpha.0", "1.2.1-alpha.1", True),
    ("^1.2.0-alpha.2", "1.2.0-alpha.1", False),
    ("~1.2.3-beta.2", "1.2.3-beta.4", True),
    ("~1.2.3-beta.2", "1.2.4-beta.2", True),
    ("~1.2.3-beta.2", "1.3.4-beta.2", False),
    ("^0.2.3-beta.2", "0.2.3-beta.2", True),
    ("^0.2.3-beta.2", "0.3.4-beta.2", False),
    (">1.2.3-alpha.1", "1.2.3-alpha.2", True),
    (">1.2.3-alpha.1", "1.3.3-alpha.2", True),
    ("<0-z", "0.0.0-alpha", True),
    ("<0", "0.0.0-alpha", False),
    (">=0.0.0-0", "0.0.0-alpha", True),
    ("!=4.1-alpha", "4.1.0", True),
    ("!=4.1-alpha", "4.1.0-alpha", False),
    ("!=4.1-alpha", "4.1.1-alpha", False),
    ("!=4.1-alpha", "4.1.1-beta", True),
    ("~1.1-alpha", "1.1.1-beta", True),
    ("~1.1.1-beta", "1.1.1-alpha", False),
    ("~1.1.1-beta", "1.1.1", True),
    ("^1.1.2-alpha", "1.2.1-beta1", True),
    ("^1.2.x-alpha", "1.1.1-beta1", False),
    ("=1.2.3-rc.1", "1.2.3-rc.1+b", True),
]


@pytest.mark.parametrize(("constraint", "version", "expected"), PRERELEASE_CASES)
def test_prerelease_rule(constraint: str, version: str, expected: bool) -> None:
    assert sat(constraint, version) is expected


# Facts from the library's own test tables (behaviour, not code).
LIBRARY_CASES: list[tuple[str, str, bool]] = [
    ("=2.0", "2.0.1", True),
    ("4.1", "4.1.0", True),
    ("!=4.1.0", "4.1.0", False),
    ("!=4.1.0", "4.1.1", True),
    ("!=4.1", "4.1.0", False),
    ("!=4.1", "4.1.1", False),
    ("!=4.1", "5.1.0", True),
    ("!=4.x", "5.1.0", True),
    ("!=4.x", "4.1.0", False),
    ("!=4.1.x", "4.2.0", True),
    ("!=4.2.x", "4.2.3", False),
    ("<11", "0.1.0", True),
    ("<11", "11.1.0", False),
    ("<1.1", "1.1.1", False),
    ("<1.x", "1.1.1", False),
    ("<1.x", "0.1.1", True),
    ("<1.1.x", "1.1.500", False),
    ("<1.1.x", "1.0.500", True),
    ("<=1.1", "1.2.3", False),
    ("<=1.1", "1.1.1", True),
    ("<=1.x", "1.1.0", True),
    ("<=2.x", "3.0.0", False),
    ("<=1.1.x", "1.2.500", False),
    ("<=4.5", "3.7.0", True),
    ("<=4.5", "4.6.3", False),
    (">0", "0", False),
    (">0", "1", True),
    (">=11", "11.1.2", True),
    (">=11.1", "11.0.2", False),
    ("=0", "1", False),
    ("2.*", "3.4.5", False),
    ("2.*", "2.1.1", True),
    ("2.1.*", "2.2.1", False),
    ("2", "1", False),
    ("2", "2.1.1", True),
    ("~0.0.0", "1.2.3", True),
    ("~*", "2.1.1", True),
    ("0.x.x", "1.2.3", False),
    ("0.0.x", "1.2.3", False),
    ("0.0.0", "1.2.3", False),
    ("^0.0.0", "1.2.3", False),
    ("^1.x", "1.1.1", True),
    ("^2.x", "1.1.1", False),
    ("^1.x", "2.1.1", False),
    ("^0.0.1", "0.3.1", False),
    ("1.1-3", "4.3.2", False),  # no spaces: not a range, an operand with prerelease "3"
    (">1.1, <3", "4.3.2", False),
    (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1 <2 !=1.2.3", "1.2.3", False),
    (">   1.1, <2", "1.2.1", True),
    ("> 1.1    <3", "4.3.2", False),
    ("1.5.0 - 4.5", "3.7.0", True),
    ("12.3.34 ~1.2.3", "1.2.3", False),
    # library quirks that follow from its wildcard handling
    ("<=*", "0.0.9", True),
    ("<=*", "0.1.0", False),
    ("^*", "0.0.0", True),
    ("^*", "1.0.0", False),
    (">*", "0.0.1", True),
    (">*", "0.0.0", False),
    ("!=*", "0.0.0", False),
    ("!=*", "1.0.0", True),
]


@pytest.mark.parametrize(("constraint", "version", "expected"), LIBRARY_CASES)
def test_library_cases(constraint: str, version: str, expected: bool) -> None:
    assert sat(constraint, version) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'improper constraint: ""'),
        ("   ", 'improper constraint: "   "'),
        ("foo", 'improper constraint: "foo"'),
        (">= bar", 'improper constraint: ">= bar"'),
        ("BAR >= 1.2.3", 'improper constraint: "BAR >= 1.2.3"'),
        ("12.3.4.1234", 'improper constraint: "12.3.4.1234"'),
        ("12.3.34~ 1.2.3", 'improper constraint: "12.3.34~ 1.2.3"'),
        ("1.2.3,", 'improper constraint: "1.2.3,"'),
        (",1.2.3", 'improper constraint: ",1.2.3"'),
        ("1.2.3 -", 'improper constraint: "-"'),
        ("1.2.3-", 'improper constraint: "1.2.3-"'),
        ("1.2.3 +build", 'improper constraint: "+build"'),
        ("^8.0.0 ||", 'improper constraint: ""'),
        ("|| ^8.0.0", 'improper constraint: ""'),
        ("^8.0.0 || || ^9", 'improper constraint: " "'),
        ("~=1.0.0", 'improper constraint: "~=1.0.0"'),
        ("==1.0.0", 'improper constraint: "==1.0.0"'),
        ("<>1", 'improper constraint: "<>1"'),
        ('>="1"', 'improper constraint: ">=\\"1\\""'),
        ("1.0\u00e9", 'improper constraint: "1.0é"'),
        ("1.0 \x01", 'improper constraint: "\\x01"'),
        ("1|2", "constraint parser error"),
        ("1x", "constraint parser error"),
        ("1.2.3-01", "constraint parser error"),
        ("1.18446744073709551616", "constraint parser error"),
        ("1." + "2" * 300, "constraint parser error"),
        (">=1.0.0 " * 70, "constraint string is too long (max 512 bytes)"),
        (" || ".join(["1"] * 33), "too many constraint groups (max 32)"),
    ],
)
def test_constraint_errors(text: str, message: str) -> None:
    assert error_of(Constraint.parse, text) == message


def test_constraint_object() -> None:
    c = Constraint.parse(" ^7.16.0 || ^8.0.0 ")
    assert str(c) == " ^7.16.0 || ^8.0.0 "
    assert repr(c) == "Constraint(' ^7.16.0 || ^8.0.0 ')"
    assert c == Constraint.parse(" ^7.16.0 || ^8.0.0 ")
    assert hash(c) == hash(Constraint.parse(" ^7.16.0 || ^8.0.0 "))
    with pytest.raises(AttributeError):
        c.original = "x"
    for clone in (pickle.loads(pickle.dumps(c)), copy.deepcopy(c)):
        assert clone == c
        assert clone.check(Version.parse_strict("8.3.0"))
    # 32 alternatives and 512 bytes are still fine
    assert Constraint.parse(" || ".join(["1"] * 32)).check(Version.parse_strict("1.2.0"))
    assert Constraint.parse(">=1.0.0 " * 64).check(Version.parse_strict("1.2.0"))


# --- fixtures -------------------------------------------------------------------------------------


def _manifest_version_lines() -> list[tuple[Path, str, str]]:
    base = EPR_FIXTURES.resolve()
    if not base.is_dir():
        pytest.skip(f"fixtures not found at {base}")
    rows = []
    manifests = sorted(base.glob("package/*/*/manifest.yml"))
    manifests += sorted(base.glob("second_package_path/*/*/manifest.yml"))
    assert manifests
    for path in manifests:
        for line in path.read_text("utf-8").splitlines():
            m = re.match(r"^(\s*)([\w.]*version):\s*(.*)$", line)
            if not m:
                continue
            value = re.sub(r"\s+#.*$", "", m.group(3)).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            if value:
                rows.append((path, m.group(1) + m.group(2), value))
    return rows


def test_fixture_manifest_versions_and_constraints_parse() -> None:
    rows = _manifest_version_lines()
    constraints = set()
    for _path, key, value in rows:
        if key in ("version", "format_version"):  # top level: strict versions
            Version.parse_strict(value)
        else:
            constraints.add(value)
        Constraint.parse(value)  # every value is at least a valid constraint
    # the constraints seen in the fixtures (spot check that we read them)
    assert {">6.7.0", "^9.2.3", "~7.x.x", "^7.16.0 || ^8.0.0", ">6.7.0  <7.6.0"} <= constraints
    kibana = Version.parse_lenient("7.2.1")
    assert Constraint.parse(">6.7.0  <7.6.0").check(kibana)
    assert not Constraint.parse("^8.1.0").check(kibana)
    assert Constraint.parse("~7.x.x").check(kibana)


# --- property tests -------------------------------------------------------------------------------

numbers = st.one_of(st.integers(0, 30), st.integers(0, MAX_UINT64))
numeric_ident = st.one_of(st.integers(0, 30), st.integers(0, 10**25)).map(str)
alnum_ident = st.from_regex(r"[0-9A-Za-z-]{0,5}[A-Za-z-][0-9A-Za-z-]{0,5}", fullmatch=True)
prerelease = st.lists(st.one_of(numeric_ident, alnum_ident), min_size=1, max_size=4).map(".".join)
build = st.lists(st.from_regex(r"[0-9A-Za-z-]{1,6}", fullmatch=True), min_size=1, max_size=3).map(
    ".".join
)


@st.composite
def strict_texts(draw: st.DrawFn) -> str:
    text = f"{draw(numbers)}.{draw(numbers)}.{draw(numbers)}"
    if draw(st.booleans()):
        text += "-" + draw(prerelease)
    if draw(st.booleans()):
        text += "+" + draw(build)
    assume(len(text) <= 256)
    return text


def reference_cmp(a: str, b: str) -> int:
    """Semver 2.0.0 §11 precedence, written independently from the implementation (numeric
    identifiers beyond uint64 are strings, like the library)."""

    def split(text: str) -> tuple[tuple[int, int, int], list[str]]:
        core = text.split("+", 1)[0]
        nums, _, pre = core.partition("-")
        x, y, z = (int(p) for p in nums.split("."))
        return (x, y, z), (pre.split(".") if pre else [])

    def cmp(x: Any, y: Any) -> int:
        return int(x > y) - int(x < y)

    (ca, pa), (cb, pb) = split(a), split(b)
    if ca != cb:
        return cmp(ca, cb)
    if not pa or not pb:
        return cmp(not pa, not pb)
    for ia, ib in zip(pa, pb, strict=False):
        na = ia.isdigit() and int(ia) <= MAX_UINT64
        nb = ib.isdigit() and int(ib) <= MAX_UINT64
        if na and nb:
            r = cmp(int(ia), int(ib))
        elif na != nb:
            r = -1 if na else 1
        else:
            r = cmp(ia.encode(), ib.encode())
        if r:
            return r
    return cmp(len(pa), len(pb))


@given(strict_texts())
def test_strict_round_trip_and_lenient_agrees(text: str) -> None:
    v = Version.parse_strict(text)
    assert str(v) == text
    assert Version.parse_strict(str(v)) == v
    assert Version.parse_strict(v.canonical()) == v
    assert v.canonical() == text  # strict text is canonical
    lenient = Version.parse_lenient(text)
    assert (lenient.major, lenient.minor, lenient.patch, lenient.prerelease, lenient.build) == (
        v.major,
        v.minor,
        v.patch,
        v.prerelease,
        v.build,
    )
    assert Version.parse_lenient("v" + text) == v
    assert Version.parse_lenient(text).sort_key == v.sort_key
    assert Constraint.parse(text).check(v)  # a plain version is an '=' constraint


@given(st.lists(strict_texts(), min_size=1, max_size=12))
def test_ordering_is_total_and_matches_reference(texts: list[str]) -> None:
    versions = [Version.parse_strict(t) for t in texts]
    for a, ta in zip(versions, texts, strict=True):
        for b, tb in zip(versions, texts, strict=True):
            c = compare(a, b)
            assert c == reference_cmp(ta, tb)
            assert c == -compare(b, a)
            assert (c == 0) == (a == b)
            if c == 0:
                assert hash(a) == hash(b)
            assert (a < b) == (c < 0) == (a.sort_key < b.sort_key)
            assert (a <= b) == (c <= 0)
            if not a.prerelease and not b.prerelease:
                ta_ = (a.major, a.minor, a.patch)
                tb_ = (b.major, b.minor, b.patch)
                assert c == (ta_ > tb_) - (ta_ < tb_)
    by_key = sorted(versions)
    by_ref = sorted(texts, key=cmp_to_key(reference_cmp))
    assert [compare(x, Version.parse_strict(y)) for x, y in zip(by_key, by_ref, strict=True)] == [
        0
    ] * len(texts)
    assert [sort_key_for(t) for t in sorted(texts, key=sort_key_for)] == sorted(
        sort_key_for(t) for t in texts
    )


small = st.integers(0, 4)
releases = st.tuples(small, small, small)
prereleases = st.tuples(small, small, small, st.sampled_from(["0", "alpha", "rc.1", "SNAPSHOT"]))
any_versions = st.one_of(
    releases.map(lambda t: f"{t[0]}.{t[1]}.{t[2]}"),
    prereleases.map(lambda t: f"{t[0]}.{t[1]}.{t[2]}-{t[3]}"),
)


def vtext(t: tuple[int, int, int]) -> str:
    return f"{t[0]}.{t[1]}.{t[2]}"


def caret_bound(x: int, y: int, z: int) -> str:
    if x > 0:
        return f"{x + 1}.0.0"
    if y > 0:
        return f"0.{y + 1}.0"
    return f"0.0.{z + 1}"


@given(releases, any_versions)
def test_caret_equals_range(op: tuple[int, int, int], text: str) -> None:
    v = Version.parse_strict(text)
    x, y, z = op
    expected = Constraint.parse(f">={x}.{y}.{z} <{caret_bound(x, y, z)}").check(v)
    assert Constraint.parse(f"^{x}.{y}.{z}").check(v) is expected
    # partial forms: ^x.y -> >=x.y.0 <(x+1 | 0.y+1); ^x -> >=x.0.0 <x+1.0.0
    bound2 = f"{x + 1}.0.0" if x > 0 else f"0.{y + 1}.0"
    assert Constraint.parse(f"^{x}.{y}").check(v) is Constraint.parse(
        f">={x}.{y}.0 <{bound2}"
    ).check(v)
    assert Constraint.parse(f"^{x}.{y}.x").check(v) is Constraint.parse(f"^{x}.{y}").check(v)
    assert Constraint.parse(f"^{x}").check(v) is Constraint.parse(f">={x}.0.0 <{x + 1}.0.0").check(
        v
    )


@given(releases, any_versions)
def test_tilde_equals_range(op: tuple[int, int, int], text: str) -> None:
    v = Version.parse_strict(text)
    x, y, z = op
    if (x, y, z) == (0, 0, 0):
        expected = not v.is_prerelease  # ~0.0.0 accepts every release
    else:
        expected = Constraint.parse(f">={x}.{y}.{z} <{x}.{y + 1}.0").check(v)
    for form in (f"~{x}.{y}.{z}", f"~>{x}.{y}.{z}"):
        assert Constraint.parse(form).check(v) is expected
    two = Constraint.parse(f">={x}.{y}.0 <{x}.{y + 1}.0").check(v)
    for form in (f"~{x}.{y}", f"~{x}.{y}.x", f"~>{x}.{y}.*", f"{x}.{y}", f"={x}.{y}.X"):
        assert Constraint.parse(form).check(v) is two
    one = Constraint.parse(f">={x}.0.0 <{x + 1}.0.0").check(v)
    for form in (f"~{x}", f"~{x}.x", f"~{x}.x.x", f"{x}", f"{x}.*"):
        assert Constraint.parse(form).check(v) is one


@given(releases, releases)
def test_wildcard_comparisons(op: tuple[int, int, int], ver: tuple[int, int, int]) -> None:
    x, y, _ = op
    v = Version.parse_strict(vtext(ver))
    assert sat(f">{x}", str(v)) is (v >= Version(x + 1, 0, 0))
    assert sat(f">{x}.{y}", str(v)) is (v >= Version(x, y + 1, 0))
    assert sat(f"<={x}", str(v)) is (v < Version(x + 1, 0, 0))
    assert sat(f"<={x}.{y}", str(v)) is (v < Version(x, y + 1, 0))
    assert sat(f">={x}.{y}", str(v)) is (v >= Version(x, y, 0))
    assert sat(f"<{x}.{y}", str(v)) is (v < Version(x, y, 0))


operands = st.builds(
    lambda op, t: op + vtext(t),
    st.sampled_from(["", "=", "!=", ">", "<", ">=", "=>", "<=", "=<", "~", "~>", "^"]),
    releases,
)


@given(
    st.lists(st.lists(operands, min_size=1, max_size=3), min_size=1, max_size=3),
    prereleases,
)
def test_prerelease_rule_property(groups: list[list[str]], pre: tuple[int, int, int, str]) -> None:
    text = " || ".join(", ".join(g) for g in groups)
    v = Version.parse_strict(f"{vtext(pre[:3])}-{pre[3]}")
    release = Version.parse_strict(vtext(pre[:3]))
    # no operand has a prerelease: prereleases never satisfy
    assert not Constraint.parse(text).check(v)
    # adding a prerelease operand that accepts everything opens every alternative: then each
    # alternative is the AND of its terms, checked one by one
    opened = " || ".join(", ".join([">=0.0.0-0", *g]) for g in groups)
    expected = any(all(_opened_term(t, v) for t in g) for g in groups)
    assert Constraint.parse(opened).check(v) is expected
    # and for releases, the extra operand changes nothing
    assert Constraint.parse(opened).check(release) is Constraint.parse(text).check(release)


def _opened_term(term: str, v: Version) -> bool:
    return Constraint.parse(f">=0.0.0-0 {term}").check(v)


@given(st.lists(st.lists(operands, min_size=1, max_size=3), min_size=1, max_size=3), releases)
def test_or_and_structure(groups: list[list[str]], ver: tuple[int, int, int]) -> None:
    v = Version.parse_strict(vtext(ver))
    expected = any(all(Constraint.parse(t).check(v) for t in g) for g in groups)
    for and_sep, or_sep in ((", ", " || "), (" ", "||"), (",", " ||\t"), ("  ,  ", "||")):
        text = or_sep.join(and_sep.join(g) for g in groups)
        assert Constraint.parse(text).check(v) is expected


# --- differential test of the constraint grammar against the library's former regular expressions


_WS = r"[\t\n\f\r ]"
_OPS = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^"
_CV = (
    r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?"
    r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
    r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
)
_VALID_GROUP = re.compile(
    rf"({_WS}*({_OPS}){_WS}*({_CV}){_WS}*)((?:{_WS}+|,{_WS}*)({_OPS}){_WS}*({_CV}){_WS}*)*"
)
_FIND_TERM = re.compile(rf"({_OPS}){_WS}*({_CV})")
_ONE_TERM = re.compile(rf"{_WS}*({_OPS}){_WS}*({_CV}){_WS}*")
_RANGE = re.compile(rf"{_WS}*({_CV}){_WS}+-{_WS}+({_CV}){_WS}*")


def oracle_parse(text: str) -> list[list[tuple[str, str, bool]]] | None:
    """The accept/reject decision and the (operator, operand) terms of the regex-based parser the
    library used before v3.5 (the v3.5 scanner is documented to agree with it)."""
    if len(text.encode()) > 512:
        return None
    rewritten = text
    for m in _RANGE.finditer(text):
        rewritten = rewritten.replace(m.group(0), f">= {m.group(1)}, <= {m.group(11)} ", 1)
    groups = rewritten.split("||")
    if len(groups) > 32:
        return None
    result = []
    for group in groups:
        if not _VALID_GROUP.fullmatch(group):
            return None
        terms = []
        for atom in [found.group(0) for found in _FIND_TERM.finditer(group)]:
            one = _ONE_TERM.fullmatch(atom)
            assert one is not None
            op, orig, major, minor, patch, pre = one.group(1, 2, 3, 4, 5, 6)
            wild = ("x", "X", "*")
            if major in wild:
                ver = "0.0.0" + (pre or "")
            elif minor is None or minor[1:] in wild:
                ver = f"{major}.0.0" + (pre or "")
            elif patch is None or patch[1:] in wild:
                ver = f"{major}{minor}.0" + (pre or "")
            else:
                ver = orig
            try:
                Version.parse_lenient(ver)
            except VersionError:
                return None
            terms.append((op, orig, bool(pre)))
        result.append(terms)
    return result


TOKENS = [
    "1",
    "2",
    "0",
    "01",
    "10",
    ".",
    "x",
    "X",
    "*",
    "v",
    "-",
    "+",
    "a",
    "rc",
    "|",
    "||",
    ",",
    " ",
    "  ",
    "\t",
    " - ",
    "=",
    "!=",
    ">",
    "<",
    ">=",
    "=>",
    "<=",
    "=<",
    "~",
    "~>",
    "^",
    "1.2.3",
    "1.x",
    "-rc.1",
    "+b.1",
    "_",
]


@given(st.lists(st.sampled_from(TOKENS), max_size=14).map("".join))
def test_constraint_grammar_matches_regex_oracle(text: str) -> None:
    expected = oracle_parse(text)
    try:
        c = Constraint.parse(text)
    except VersionError:
        assert expected is None, f"{text!r} should parse as {expected}"
        return
    assert expected is not None, f"{text!r} should be rejected"
    # same number of alternatives; every term checks like the term parsed on its own
    assert len(c._groups) == len(expected)
    for (tests, _), terms in zip(c._groups, expected, strict=True):
        assert len(tests) == len(terms)
    for probe in ("0.0.0", "1.0.0", "1.2.3", "2.0.0", "1.2.3-rc.1", "10.1.0"):
        v = Version.parse_strict(probe)
        want = any(
            (not v.is_prerelease or any(pre for _, _, pre in g))
            and all(
                Constraint.parse(f"{op}{orig} >=0.0.0-0" if v.is_prerelease else op + orig).check(v)
                for op, orig, _ in g
            )
            for g in expected
        )
        assert c.check(v) is want, (text, probe)


@given(st.text(max_size=20))
def test_parsers_never_crash(text: str) -> None:
    for fn in (Version.parse_strict, Version.parse_lenient, Constraint.parse):
        with contextlib.suppress(VersionError):
            fn(text)
