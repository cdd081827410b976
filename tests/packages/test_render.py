"""Go encoding/json style rendering (spec §1.5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from package_storage.packages import render

GENERATED = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "epr" / "generated"


def _json_goldens() -> list[str]:
    names = []
    for p in sorted(GENERATED.rglob("*")):
        if p.suffix not in (".json", ".txt") or not p.is_file():
            continue
        try:
            value = json.loads(p.read_bytes())
        except ValueError:
            continue
        if isinstance(value, (dict, list)) and value:
            names.append(str(p.relative_to(GENERATED)))
    return names


@pytest.mark.parametrize("rel", _json_goldens())
def test_golden_round_trip(rel: str) -> None:
    raw = (GENERATED / rel).read_bytes()
    assert render.dumps(json.loads(raw)) == raw


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.5, "0.5"),
        (-2.25, "-2.25"),
        (0.1 + 0.2, "0.30000000000000004"),
        (123456789.0, "123456789"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e22, "1.5e+22"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-10, "1.5e-10"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (0.0, "0"),
        (-0.0, "-0"),
        (1e16, "10000000000000000"),
        (12.5e-5, "0.000125"),
    ],
)
def test_float_formatting(value: float, text: str) -> None:
    assert render.format_float(value) == text
    assert render.dumps(value) == text.encode() + b"\n"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_refused(value: float) -> None:
    with pytest.raises(ValueError):
        render.dumps({"x": value})


def test_string_escaping() -> None:
    value = 'a<b>&"\\ é 😀 \u2028\u2029 \x00\x01\x08\x0c\n\r\t\x1f\x7f'
    expected = (
        '"a<b>&\\"\\\\ é 😀 \\u2028\\u2029 \\u0000\\u0001\\b\\f\\n\\r\\t\\u001f\x7f"\n'
    ).encode()
    assert render.dumps(value) == expected


def test_lone_surrogate_becomes_replacement_character() -> None:
    assert render.dumps("a\ud800b") == '"a\ufffdb"\n'.encode()


def test_layout() -> None:
    obj = {"b": [], "a": {}, "c": [1, True, None, "x", (2, 3)], 5: {"k": False}}
    assert render.dumps(obj) == (
        b'{\n  "b": [],\n  "a": {},\n  "c": [\n    1,\n    true,\n    null,\n    "x",\n'
        b'    [\n      2,\n      3\n    ]\n  ],\n  "5": {\n    "k": false\n  }\n}\n'
    )


def test_unsupported_type() -> None:
    with pytest.raises(TypeError):
        render.dumps({"x": object()})


def test_search_body_empty_and_joined() -> None:
    assert render.search_body([]) == b"[]"
    entries = [{"name": "a", "n": [1]}, {"name": "b"}]
    assert render.search_body(entries) == render.dumps(entries)
    fragments = [render.entry_fragment(e) for e in entries]
    assert render.search_body(fragments) == render.dumps(entries)
    assert render.search_body([fragments[0], entries[1]]) == render.dumps(entries)


def test_categories_body() -> None:
    assert render.categories_body([]) == b"[]\n"
    cats = [{"id": "web", "title": "Web", "count": 3}]
    assert render.categories_body(cats) == render.dumps(cats)


def test_fragment_cache_is_per_object() -> None:
    entry = {"name": "a", "version": "1.0.0"}
    first = render.entry_fragment(entry)
    assert render.entry_fragment(entry) is first
    copy = dict(entry)
    copy["version"] = "2.0.0"
    assert b"2.0.0" in render.entry_fragment(copy)
    render.clear_fragment_cache()
    assert render.entry_fragment(entry) == first


def test_fragment_cache_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "_FRAGMENT_CACHE_MAX", 10)
    render.clear_fragment_cache()
    keep = [{"i": i} for i in range(25)]
    for e in keep:
        render.entry_fragment(e)
    assert len(render._fragment_cache) <= 10
    assert render.search_body(keep) == render.dumps(keep)
