"""The merging rules of the proxy mode (pure functions of ``registry/proxy.py``)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from package_storage.errors import UpstreamError
from package_storage.packages import render
from package_storage.packages.versions import Version
from package_storage.registry.proxy import merge_categories, merge_search, split_search_body
from package_storage.registry.proxy_client import (
    UpstreamCategory,
    decode_categories,
    decode_package,
    decode_search,
)


def entry(name: str, version: str, **extra: object) -> dict[str, object]:
    return {"name": name, "title": name.title(), "version": version, **extra}


def local_parts(*entries: dict[str, object]) -> list[tuple[str, str, bytes]]:
    return split_search_body(render.search_body([dict(e) for e in entries]))


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
versions = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (f"-{pre}" if pre else ""),
    st.integers(0, 20),
    st.integers(0, 20),
    st.integers(0, 20),
    st.sampled_from(["", "rc1", "beta.2"]),
)
texts = st.text(max_size=30)


@given(
    st.lists(
        st.builds(
            lambda n, v, d, t: entry(n, v, description=d, tags=t),
            names,
            versions,
            texts,
            st.lists(texts, max_size=3),
        ),
        max_size=8,
    )
)
def test_split_search_body_gives_back_every_element(entries: list[dict[str, object]]) -> None:
    body = render.search_body(entries)
    parts = split_search_body(body)
    assert [(n, v) for n, v, _ in parts] == [(e["name"], e["version"]) for e in entries]
    assert render.search_body([f for _, _, f in parts]) == body


def test_local_wins_on_equal_name_and_version_and_newest_per_name_is_kept() -> None:
    local = local_parts(entry("a", "1.0.0", title="local"), entry("b", "2.0.0"))
    upstream = [
        ("a", Version.parse_lenient("1.0.0"), entry("a", "1.0.0", title="upstream")),
        ("a", Version.parse_lenient("0.9.0"), entry("a", "0.9.0")),
        ("b", Version.parse_lenient("3.0.0"), entry("b", "3.0.0")),
        ("aa", Version.parse_lenient("1.0.0"), entry("aa", "1.0.0")),
    ]
    latest = json.loads(merge_search(local, upstream, all_versions=False))
    assert [(e["name"], e["version"], e["title"]) for e in latest] == [
        ("a", "1.0.0", "local"),
        ("aa", "1.0.0", "Aa"),
        ("b", "3.0.0", "B"),
    ]
    every = json.loads(merge_search(local, upstream, all_versions=True))
    assert [(e["name"], e["version"]) for e in every] == [
        ("a", "0.9.0"),
        ("a", "1.0.0"),
        ("aa", "1.0.0"),
        ("b", "2.0.0"),
        ("b", "3.0.0"),
    ]


def test_categories_merge_by_id_and_resolve_upstream_titles() -> None:
    local = [{"id": "custom", "title": "Custom", "count": 1}]
    upstream = [
        UpstreamCategory("custom", "Custom", 10),
        UpstreamCategory("only_up", "Only Up", 2, "custom", "Custom"),
        UpstreamCategory("elsewhere", "web", 4),  # a known id as title: re-resolved
    ]
    merged = merge_categories(local, upstream)
    assert merged == [
        {"id": "custom", "title": "Custom", "count": 11},
        {
            "id": "elsewhere",
            "title": "Web Server",
            "count": 4,
            "parent_id": "observability",
            "parent_title": "Observability",
        },
        {
            "id": "only_up",
            "title": "Only Up",
            "count": 2,
            "parent_id": "custom",
            "parent_title": "Custom",
        },
    ]


def test_decoders_keep_the_schema_and_refuse_what_does_not_parse() -> None:
    [found] = decode_search([{"version": "1.0", "name": "x", "extra": 1, "title": None}])
    assert (found.name, str(found.version), list(found.entry)) == (
        "x",
        "1.0",
        ["name", "version"],
    )
    name, version, doc = decode_package(
        {"format_version": "3.0.0", "name": "y", "version": "2.0.0"}
    )
    assert (name, str(version), list(doc)) == ("y", "2.0.0", ["name", "version", "format_version"])
    for bad in ({"name": "x"}, {"name": "x", "version": "not-a-version"}, ["x"], {"version": "1"}):
        with pytest.raises(UpstreamError):
            decode_search([bad])
    with pytest.raises(UpstreamError):
        decode_search({"not": "a list"})
    with pytest.raises(UpstreamError, match="count of custom"):
        decode_categories([{"id": "custom", "title": "Custom", "count": "10"}])
