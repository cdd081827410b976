"""Tests of index.py: RegistryIndex bodies equal the plain search/categories rendering, caching,
lookup, and the setup-A goldens through the index.

Hand-made packages come from the helpers of ``test_search.py`` (same directory).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from test_search import FIXTURES, GOLDEN_CASES, _golden_loader, _setup_a, pkgs

from package_storage.errors import PackageError, QueryError
from package_storage.packages import render
from package_storage.packages.model import Package
from package_storage.registry import search
from package_storage.registry.index import BodyCache, RegistryIndex


def sample_sources() -> list[list[Package]]:
    zip_src = pkgs(
        {"name": "example", "version": "1.0.1", "title": "zip", "categories": ["web"]},
        "nodirentries@1.0.0",
    )
    folder = pkgs(
        {"name": "example", "version": "1.0.1", "title": "folder"},
        {
            "name": "example",
            "version": "1.1.0",
            "categories": ["crm"],
            "templates": [("logs", ["datastore"]), ("metrics", ["web"])],
        },
        {"name": "example", "version": "1.2.0-rc1", "categories": ["crm"]},
        {"name": "example", "version": "0.0.2", "categories": ["web"]},
        {"name": "traces", "version": "1.0.0", "release": "experimental", "kibana": ">=8.0.0"},
        {"name": "input", "version": "0.3.0", "type": "input", "capabilities": ["security"]},
        {"name": "nospec", "version": "2.0.0", "spec": None, "title": "é \u2028 <&>"},
    )
    return [zip_src, folder]


QUERIES = [
    "",
    "prerelease=true",
    "all=true",
    "experimental=true",
    "experimental=true&all=true",
    "category=web",
    "category=datastore",
    "category=observability&all=true",
    "package=example",
    "package=example&all=true&prerelease=true",
    "package=missing",
    "type=input",
    "kibana.version=7.0.0&prerelease=true",
    "capabilities=observability",
    "package=example&spec.min=1.0",
]


@pytest.fixture
def index() -> RegistryIndex:
    return RegistryIndex(sample_sources())


@pytest.mark.parametrize("raw", QUERIES)
def test_search_body_equals_plain_rendering(index: RegistryIndex, raw: str) -> None:
    query = search.parse_query(raw, "search")
    expected = render.search_body(search.search(sample_sources(), query))
    assert index.search_body(raw) == expected
    assert index.search(query) == search.search(sample_sources(), query)


@pytest.mark.parametrize(
    "raw", ["", "prerelease=true", "experimental=true", "include_policy_templates=true"]
)
def test_categories_body_equals_plain_rendering(index: RegistryIndex, raw: str) -> None:
    query = search.parse_query(raw, "categories")
    expected = render.categories_body(search.categories(sample_sources(), query))
    assert index.categories_body(raw) == expected


def test_empty_bodies(index: RegistryIndex) -> None:
    assert index.search_body("package=missing") == b"[]"
    assert RegistryIndex([]).categories_body("") == b"[]\n"
    assert RegistryIndex([[], []]).search_body("") == b"[]"


def test_fragments_match_render(index: RegistryIndex) -> None:
    for pkg in index.packages():
        assert index._fragment_of(pkg) == render.entry_fragment(pkg.search_entry)


def test_reduced_entries_do_not_leak_into_cache(index: RegistryIndex) -> None:
    body = index.search_body("category=datastore")
    assert b'"name": "logs"' in body and b'"name": "metrics"' not in body
    full = index.search_body("package=example")
    assert b'"name": "metrics"' in full


def test_bodies_are_cached(index: RegistryIndex) -> None:
    first = index.search_body("")
    assert index.cache.misses == 1
    assert index.search_body("") is first
    assert index.cache.hits == 1
    index.search_body("", allow_unknown=False)  # a different key
    assert index.cache.misses == 2
    cat = index.categories_body("")
    assert index.categories_body("") is cat
    assert index.search_body("prerelease=true") is index.search_body("prerelease=true")
    assert len(index.cache) == 4


def test_errors_are_raised_every_time_and_not_cached(index: RegistryIndex) -> None:
    for _ in range(2):
        with pytest.raises(QueryError, match="invalid 'prerelease' query param: 'foo'"):
            index.search_body("prerelease=foo")
        with pytest.raises(QueryError, match='unknown query parameter: "x"'):
            index.categories_body("x=1", allow_unknown=False)
        with pytest.raises(PackageError, match="can't compare spec version for nospec"):
            index.search_body("spec.min=1.0")
        with pytest.raises(PackageError, match="package spec version is not set"):
            index.categories_body("spec.max=3.0")
    assert len(index.cache) == 0
    assert index.categories_body("x=1") == index.categories_body("")


def test_package_narrowing_gives_the_same_answer(index: RegistryIndex) -> None:
    for name in ("example", "traces", "input", "nodirentries", "nospec", "zzz"):
        for extra in ("", "&all=true", "&prerelease=true", "&experimental=true&all=true"):
            raw = f"package={name}{extra}"
            query = search.parse_query(raw, "search")
            assert index.search(query) == search.search(sample_sources(), query), raw


def test_lookup_and_contents() -> None:
    sources = sample_sources()
    index = RegistryIndex(sources)
    found = index.lookup("example", "1.0.1")
    assert found is sources[0][0] and found.search_entry["title"] == "zip"
    assert index.lookup("example", "1.2.0-rc1") is sources[1][2]
    assert index.lookup("traces", "1.0.0") is not None
    assert index.lookup("example", "9.9.9") is None
    assert index.package_count == 8  # example 1.0.1 counted once
    served = list(index.packages())
    assert served[0] is sources[0][0] and sources[1][0] not in served
    assert len(index.sources) == 2
    for name, version in (("example", "1.0.1"), ("input", "0.3.0"), ("nope", "1.0.0")):
        assert index.lookup(name, version) is search.lookup(sources, name, version)


def test_document_body_cached(index: RegistryIndex) -> None:
    pkg = index.lookup("nospec", "2.0.0")
    assert pkg is not None
    body = index.document_body(pkg)
    assert body == render.dumps(pkg.document)
    assert index.document_body(pkg) is body
    assert b"\\u2028" in body  # rendered by render.dumps, not json.dumps


def test_document_bodies_are_shared_through_one_cache_and_kept_by_updated() -> None:
    sources = sample_sources()
    shared = BodyCache(16, 1 << 20)
    first = RegistryIndex(sources, documents=shared)
    other = RegistryIndex(sources[1:], documents=shared)
    pkg = sources[1][0]
    body = first.document_body(pkg)
    assert other.document_body(pkg) is body  # keyed by package: rendered once
    ordered = sorted(sources[1], key=lambda p: p.name)  # updated() wants sources by name
    old = RegistryIndex([ordered])
    kept = next(p for p in ordered if p.name == "input")
    kept_body = old.document_body(kept)
    (newer,) = pkgs({"name": "traces", "version": "1.0.1"})
    new = RegistryIndex.updated(
        old, [[newer if p.name == "traces" else p for p in ordered]], {"traces"}
    )
    assert new.document_body(kept) is kept_body
    assert new.document_body(newer) == render.dumps(newer.document)
    assert new.lookup("traces", "1.0.0") is None


def test_index_is_independent_of_later_changes_to_the_input() -> None:
    sources = sample_sources()
    index = RegistryIndex(sources)
    before = index.search_body("all=true&prerelease=true")
    sources[1].clear()
    sources.append(pkgs("late@1.0.0"))
    index.cache.clear()
    assert index.search_body("all=true&prerelease=true") == before


def test_concurrent_requests(index: RegistryIndex) -> None:
    expected = {raw: index.search_body(raw) for raw in QUERIES if "spec" not in raw}
    small = RegistryIndex(sample_sources(), cache_entries=3)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(30):
                for raw, body in expected.items():
                    assert small.search_body(raw) == body
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(small.cache) <= 3


# --- BodyCache ------------------------------------------------------------------------------


def test_cache_lru_by_entries() -> None:
    cache = BodyCache(max_entries=2, max_bytes=1000)
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") == b"1"  # "a" is now the most recent
    cache.put("c", b"3")
    assert cache.get("b") is None
    assert cache.get("a") == b"1" and cache.get("c") == b"3"
    assert len(cache) == 2


def test_cache_lru_by_bytes() -> None:
    cache = BodyCache(max_entries=100, max_bytes=10)
    cache.put("a", b"12345")
    cache.put("b", b"12345")
    assert cache.size_bytes == 10
    cache.put("c", b"1")
    assert cache.get("a") is None and cache.get("b") is not None
    cache.put("big", b"x" * 11)  # larger than the whole budget: not stored
    assert cache.get("big") is None and cache.get("c") == b"1"
    cache.put("b", b"123")  # replacing an entry adjusts the byte count
    assert cache.size_bytes == 4
    cache.clear()
    assert len(cache) == 0 and cache.size_bytes == 0


def test_cache_disabled_and_limits() -> None:
    cache = BodyCache(max_entries=0, max_bytes=100)
    cache.put("a", b"1")
    assert cache.get("a") is None
    with pytest.raises(ValueError, match="must not be negative"):
        BodyCache(max_entries=-1, max_bytes=1)
    index = RegistryIndex(sample_sources(), cache_entries=0)
    assert index.search_body("") == index.search_body("")
    assert len(index.cache) == 0


# --- goldens through the index ----------------------------------------------------------------


@pytest.fixture(scope="module")
def golden_index() -> RegistryIndex:
    if _golden_loader() is None:
        pytest.skip("manifest.read_package / trees are not available yet")
    return RegistryIndex(_setup_a())


@pytest.mark.parametrize(
    ("path", "raw", "golden", "status", "directives"),
    GOLDEN_CASES,
    ids=[f"{c[0]}?{c[1]}" for c in GOLDEN_CASES],
)
def test_golden_setup_a_through_index(
    golden_index: RegistryIndex, path: str, raw: str, golden: str, status: int, directives: str
) -> None:
    allow_unknown = "EPR_ALLOW_UNKNOWN_QUERY_PARAMETERS=false" not in directives
    expected = (FIXTURES / "generated" / golden).read_bytes()
    call: Any = golden_index.search_body if path == "/search" else golden_index.categories_body
    for _ in range(2):  # uncached, then cached
        try:
            body, got = call(raw, allow_unknown=allow_unknown), 200
        except QueryError as exc:
            body, got = (exc.message + "\n").encode(), 400
        assert got == status
        if status != 200 or golden.endswith(".txt"):
            assert body.strip() == expected.strip()
        else:
            assert body == expected


def test_golden_lookup_precedence(golden_index: RegistryIndex) -> None:
    # example 1.0.1 exists as zip and as folder: the zip one (with signature) is served
    pkg = golden_index.lookup("example", "1.0.1")
    assert pkg is not None and pkg.tree.kind == "zip"
    assert "signature_path" in pkg.search_entry
    # second_package_path/multiversion/1.1.0 overrides package/multiversion/1.1.0
    mv = golden_index.lookup("multiversion", "1.1.0")
    assert mv is not None and "second_package_path" in Path(mv.tree.location).parts
