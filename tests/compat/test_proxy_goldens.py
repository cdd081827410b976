"""Proxy mode against the reference's proxy goldens (spec §10), live servers on loopback.

The proxy is a real ``package-storage serve --config`` (drop-in mode, the flags as
``EPR_*`` variables) in front of a canned upstream (``tests/proxy_upstream.py``); the bodies
must be byte-identical to the goldens, as in the conformance suite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from epr_cases import GOLDEN_DIR
from epr_server import RunningServer, start_server, stop_server

from proxy_upstream import CannedUpstream

OWN_GOLDENS = Path(__file__).parent / "proxy_goldens"


def golden(name: str) -> bytes:
    shared = GOLDEN_DIR / name
    return (shared if shared.is_file() else OWN_GOLDENS / name).read_bytes()


def proxy_env(upstream: CannedUpstream, **extra: str) -> dict[str, str]:
    return {
        "EPR_FEATURE_PROXY_MODE": "true",
        "EPR_PROXY_TO": upstream.url,
        "EPR_PROXY_ALLOW_INSECURE": "true",
        "PACKAGE_STORAGE_PROXY_TIMEOUT": "2s",
        "PACKAGE_STORAGE_PROXY_RETRIES": "1",
        **extra,
    }


def assert_golden(body: bytes, name: str) -> None:
    expected = golden(name)
    if body != expected:
        same = json.loads(body) == json.loads(expected)
        pytest.fail(
            f"{name}: body not byte-identical (parsed JSON {'equal' if same else 'differs'});"
            f" got {len(body)} bytes, golden {len(expected)}:\n{body.decode()[:3000]}"
        )


@pytest.fixture(scope="module")
def search_proxy(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, CannedUpstream]]:
    with CannedUpstream() as upstream:
        root = tmp_path_factory.mktemp("proxy-search")
        server = start_server(
            "proxy-A",
            root,
            ["local-storage", "second_package_path", "package"],
            proxy_env(upstream),
        )
        try:
            yield server, upstream
        finally:
            stop_server(server)


@pytest.fixture(scope="module")
def categories_proxy(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, CannedUpstream]]:
    with CannedUpstream() as upstream:
        root = tmp_path_factory.mktemp("proxy-categories")
        server = start_server("proxy-second", root, ["second_package_path"], proxy_env(upstream))
        try:
            yield server, upstream
        finally:
            stop_server(server)


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("/search?all=true", "search-all-proxy.json"),
        ("/search", "search-just-latest-proxy.json"),
    ],
)
def test_search_goldens(
    search_proxy: tuple[RunningServer, CannedUpstream], target: str, name: str
) -> None:
    server, upstream = search_proxy
    resp = server.request("GET", target)
    assert resp.status == 200, resp.body
    assert resp.values("Content-Type") == ["application/json"]
    assert resp.values("Cache-Control") in (["max-age=1", "public"], ["max-age=1, public"])
    assert_golden(resp.body, name)
    assert target in upstream.seen  # same path and raw query upstream


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("/categories", "categories-proxy.json"),
        ("/categories?kibana.version=6.5.0", "categories-proxy-kibana-filter.json"),
    ],
)
def test_categories_goldens(
    categories_proxy: tuple[RunningServer, CannedUpstream], target: str, name: str
) -> None:
    server, upstream = categories_proxy
    resp = server.request("GET", target)
    assert resp.status == 200, resp.body
    assert_golden(resp.body, name)
    assert target in upstream.seen


def test_bad_query_is_refused_before_the_upstream_is_asked(
    search_proxy: tuple[RunningServer, CannedUpstream],
) -> None:
    server, upstream = search_proxy
    before = upstream.count("/search?kibana.version=x")
    resp = server.request("GET", "/search?kibana.version=x")
    assert resp.status == 400
    assert upstream.count("/search?kibana.version=x") == before
