"""Proxy mode through the read app, in-process, against a canned upstream on loopback.

Versions no local source has are looked up on the upstream: the package document is
re-rendered in the full form, files, zips and signatures are 301 redirects to the upstream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from http_driver import FIXTURES, ONE_SECOND, PrefixRegistry, load_index, request

from package_storage.registry.http.app import ASGIApp, create_app
from package_storage.registry.index import RegistryIndex as Index
from package_storage.registry.proxy import ProxyRegistry
from package_storage.registry.proxy_client import Upstream, UpstreamOptions
from proxy_upstream import NGINX_ENTRY, CannedUpstream

FAST = UpstreamOptions(timeout=2.0, retries=1, wait_min=0.01, wait_max=0.02, pause=60.0)

# An upstream document with its keys out of order, a null and a key outside the schema.
REMOTE_DOC = {
    "format_version": "1.0.0",
    "version": "2.0.0",
    "name": "remote",
    "title": "Remote",
    "unknown_field": {"x": 1},
    "description": None,
    "type": "integration",
    "download": "/epr/remote/remote-2.0.0.zip",
    "path": "/package/remote/2.0.0",
}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def local() -> Index:
    return load_index(FIXTURES / "second_package_path")


@pytest.fixture
def upstream() -> Iterator[CannedUpstream]:
    routes = {
        "/package/remote/2.0.0/": (200, JSON, json.dumps(REMOTE_DOC).encode()),
        "/package/broken/1.0.0/": (500, JSON, b"{}"),
        "/package/badversion/1.0.0/": (200, JSON, b'{"name": "badversion", "version": "x"}'),
    }
    with CannedUpstream(routes=routes) as canned:
        yield canned


def proxy_app(local: Index, upstream_url: str, *, strict: bool = False) -> ASGIApp:
    registry = ProxyRegistry(
        PrefixRegistry(local, {"production": local}), Upstream(upstream_url, FAST, strict=strict)
    )
    return create_app(registry, ONE_SECOND)


def test_package_document_from_the_upstream_is_rerendered(
    local: Index, upstream: CannedUpstream
) -> None:
    resp = request(proxy_app(local, upstream.url), "/package/remote/2.0.0/")
    assert resp.status == 200
    assert resp.values("cache-control") == ["max-age=1", "public"]
    assert list(json.loads(resp.body)) == [
        "name",
        "title",
        "version",
        "type",
        "download",
        "path",
        "format_version",
    ]
    assert resp.body.endswith(b"}\n") and b'  "name": "remote",\n' in resp.body


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/package/remote/2.0.0/docs/README.md", "/package/remote/2.0.0/docs/README.md"),
        ("/epr/remote/remote-2.0.0.zip", "/epr/package/remote-2.0.0.zip"),
        ("/epr/anything/remote-2.0.0.zip.sig", "/epr/package/remote-2.0.0.zip.sig"),
        ("/production/epr/remote/remote-2.0.0.zip", "/epr/package/remote-2.0.0.zip"),
    ],
)
def test_files_of_upstream_packages_redirect(
    local: Index, upstream: CannedUpstream, target: str, location: str
) -> None:
    resp = request(proxy_app(local, upstream.url), target)
    assert resp.status == 301
    assert resp.header("location") == upstream.url + location
    assert resp.values("cache-control") == ["max-age=1", "public"]
    assert resp.header("access-control-allow-origin") == "*"
    assert resp.text == f'<a href="{upstream.url + location}">Moved Permanently</a>.\n\n'
    head = request(proxy_app(local, upstream.url), target, method="HEAD")
    assert head.status == 301 and head.body == b""


def test_local_packages_never_ask_the_upstream(local: Index, upstream: CannedUpstream) -> None:
    app = proxy_app(local, upstream.url)
    assert request(app, "/package/multiversion/1.1.0/").status == 200
    assert request(app, "/epr/multiversion/multiversion-1.1.0.zip").status == 200
    assert upstream.count("/package/") == 0


@pytest.mark.parametrize(
    ("target", "text"),
    [
        ("/package/absent/1.0.0/", "package revision not found"),
        ("/package/absent/1.0.0/img/a.png", "package revision not found"),
        ("/epr/absent/absent-1.0.0.zip", "artifact not found"),
        ("/epr/absent/absent-1.0.0.zip.sig", "signature file not found"),
    ],
)
def test_versions_nobody_has_are_the_local_404(
    local: Index, upstream: CannedUpstream, target: str, text: str
) -> None:
    resp = request(proxy_app(local, upstream.url), target)
    assert (resp.status, resp.text) == (404, text + "\n")


@pytest.mark.parametrize("name", ["broken", "badversion"])
def test_an_upstream_that_fails_a_lookup_is_a_500(
    local: Index, upstream: CannedUpstream, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        resp = request(proxy_app(local, upstream.url), f"/package/{name}/1.0.0/")
    assert (resp.status, resp.text) == (500, "internal server error\n")
    [line] = [r for r in caplog.records if r.name.endswith("http.app")]
    assert line.getMessage().startswith(f"proxy mode: {name} 1.0.0: ")
    assert line.exc_info is None  # one line, no traceback


def test_search_merges_and_a_failed_upstream_falls_back(
    local: Index, upstream: CannedUpstream
) -> None:
    app = proxy_app(local, upstream.url)
    names = [e["name"] for e in json.loads(request(app, "/search").body)]
    assert names == ["datasources", "multiversion", "nginx"]
    upstream.mode = "fail"
    resp = request(app, "/search")
    assert resp.status == 200
    assert resp.body == local.search_body("")
    assert upstream.count("/search") == 3  # 1 + 2 attempts (one retry)
    # paused: the next request does not ask the upstream at all
    assert request(app, "/categories").body == local.categories_body("")
    assert upstream.count("/categories") == 0


def test_strict_mode_answers_500_when_the_upstream_fails(
    local: Index, upstream: CannedUpstream
) -> None:
    upstream.mode = "fail"
    app = proxy_app(local, upstream.url, strict=True)
    for target in ("/search", "/categories"):
        resp = request(app, target)
        assert (resp.status, resp.text) == (500, "internal server error\n")


def test_prefixed_distributions_proxy_the_unprefixed_route(
    local: Index, upstream: CannedUpstream
) -> None:
    resp = request(proxy_app(local, upstream.url), "/production/search?all=true")
    assert resp.status == 200
    assert "/search?all=true" in upstream.seen
    assert "nginx" in {e["name"] for e in json.loads(resp.body)}


def test_a_changed_upstream_answer_is_merged_again(local: Index, upstream: CannedUpstream) -> None:
    app = proxy_app(local, upstream.url)
    first = request(app, "/search")
    assert request(app, "/search").body == first.body  # the same merge, reused
    upstream.search = [dict(NGINX_ENTRY, version="1.16.0")]
    versions = {e["name"]: e["version"] for e in json.loads(request(app, "/search").body)}
    assert versions == {"multiversion": "1.1.0", "nginx": "1.16.0"}
