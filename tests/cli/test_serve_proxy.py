"""``serve`` in proxy mode, live: flags, drop-in mode in front of our own drop-in server, store
distributions in front of a canned upstream, and an upstream that goes away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_serve import SETUP_A, _config, _lines, run_cli
from test_serve_store import Server, make_store, publish, start, stop

from proxy_upstream import SEARCH_BODY, CannedUpstream, wait_until

FIXTURES = SETUP_A[0].parent
NO_SIGS = {"EPR_REQUIRE_PACKAGE_SIGNATURES": "false"}


def proxy_flags(url: str) -> list[str]:
    return [
        "--feature-proxy-mode",
        "--proxy-to",
        url,
        "--proxy-allow-insecure",
        "--proxy-timeout=1s",
        "--proxy-retries=1",
    ]


# --- flags -------------------------------------------------------------------------------------


def test_http_upstream_needs_allow_insecure(tmp_path: Path) -> None:
    cfg = _config(tmp_path, [FIXTURES / "second_package_path"])
    result = run_cli(
        ["serve", "--config", str(cfg), "--feature-proxy-mode", "--proxy-to", "http://x:1"],
        NO_SIGS,
    )
    assert result.returncode == 1
    assert _lines(result.stderr) == [
        '-proxy-to must use HTTPS (got "http://x:1"); use -proxy-allow-insecure to allow HTTP'
    ]


def test_upstream_that_is_no_url_is_refused(tmp_path: Path) -> None:
    cfg = _config(tmp_path, [FIXTURES / "second_package_path"])
    result = run_cli(
        ["serve", "--config", str(cfg), *proxy_flags("ftp://x")[:3], "--proxy-allow-insecure"],
        NO_SIGS,
    )
    assert result.returncode == 1
    [line] = _lines(result.stderr)
    assert line.startswith('invalid -proxy-to URL: parse "ftp://x"')


def test_proxy_to_without_the_feature_flag_is_named_and_ignored(tmp_path: Path) -> None:
    cfg = _config(tmp_path, [FIXTURES / "second_package_path"])
    result = run_cli(
        ["serve", "--config", str(cfg), "--dry-run", "--proxy-to", "http://x:1"], NO_SIGS
    )
    assert result.returncode == 0, result.stderr
    assert "-proxy-to is ignored without -feature-proxy-mode" in result.stderr


def test_no_local_packages_is_fine_in_proxy_mode(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = _config(tmp_path, [empty])
    result = run_cli(["serve", "--config", str(cfg), "--dry-run", *proxy_flags("http://x:1")])
    assert result.returncode == 0, result.stderr
    assert "proxy mode serves the upstream's packages" in result.stderr


# --- drop-in mode in front of our own drop-in server -------------------------------------------


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """(upstream: drop-in server over local-storage, proxy over second_package_path)."""
    root = tmp_path_factory.mktemp("chain")
    (root / "up").mkdir()
    (root / "proxy").mkdir()
    upstream = start(["--config", str(_config(root / "up", [FIXTURES / "local-storage"]))], NO_SIGS)
    try:
        cfg = _config(root / "proxy", [FIXTURES / "second_package_path"])
        proxy = start(["--config", str(cfg), *proxy_flags(upstream.base)], NO_SIGS)
        try:
            yield upstream, proxy
        finally:
            stop(proxy)
    finally:
        if upstream.proc.poll() is None:
            stop(upstream)


def test_upstream_package_document_is_the_upstreams(chain: tuple[Server, Server]) -> None:
    upstream, proxy = chain
    direct = upstream.get("/package/example/1.0.1/")
    via = proxy.get("/package/example/1.0.1/")
    assert (via.status_code, via.content) == (200, direct.content)


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/epr/example/example-1.0.1.zip", "/epr/package/example-1.0.1.zip"),
        ("/epr/example/example-1.0.1.zip.sig", "/epr/package/example-1.0.1.zip.sig"),
        ("/package/example/1.0.1/img/kibana-envoyproxy.jpg", None),
        ("/package/nodirentries/1.0.0/manifest.yml", None),
    ],
)
def test_files_redirect_to_the_upstream_and_arrive(
    chain: tuple[Server, Server], target: str, location: str | None
) -> None:
    upstream, proxy = chain
    resp = proxy.get(target)
    assert resp.status_code == 301
    assert resp.headers["location"] == upstream.base + (location or target)
    assert resp.headers["cache-control"] == "max-age=1, public"
    followed = httpx.get(resp.headers["location"], timeout=5)
    direct = upstream.get(target)
    assert (followed.status_code, followed.content) == (200, direct.content)


def test_search_joins_local_and_upstream(chain: tuple[Server, Server]) -> None:
    _, proxy = chain
    resp = proxy.get("/search?all=true")
    found = [(e["name"], e["version"]) for e in resp.json()]
    assert found == [("example", "1.0.1"), ("multiversion", "1.1.0"), ("nodirentries", "1.0.0")]


# --- store distributions, an upstream that fails and comes back ---------------------------------


def test_store_distributions_proxy_and_fall_back(tmp_path: Path) -> None:
    root = tmp_path / "store"
    catalog, blobs = make_store(root)
    publish(catalog, blobs, "production", "hello_nginx", "1.0.0")
    catalog.close()
    with CannedUpstream() as canned:
        server = start(["--store", str(root), *proxy_flags(canned.url)], cwd=tmp_path)
        try:
            for prefix in ("", "/production", "/snapshot"):
                names = [e["name"] for e in server.get(prefix + "/search").json()]
                assert names == ["datasources", "hello_nginx", "nginx"], prefix
            canned.search = []
            local = server.get("/search").content

            canned.mode = "fail"  # retried, then the local answer
            resp = server.get("/search")
            assert (resp.status_code, resp.content) == (200, local)
            assert server.get("/package/nginx/1.15.0/").status_code == 500

            canned.mode = "ok"
            canned.search = SEARCH_BODY
            assert wait_until(lambda: b'"nginx"' in server.get("/search").content)
        finally:
            out = stop(server)
    assert "proxy mode: upstream http://127.0.0.1:" in out and "unavailable" in out
    assert "answers again" in out
