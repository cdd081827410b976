"""Requests never read outside a package, and abuse never produces a 500."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from http_driver import FIXTURES, ONE_SECOND, PrefixRegistry, Result, load_index, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from package_storage.registry.http.app import create_app

SECRET = b"TOP-SECRET-CONTENT-0123456789"


@pytest.fixture(scope="module")
def jail(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A folder package with symlinks in and out of it and a secret file just outside it.

    Layout: <tmp>/packages/example/1.0.0/ (the package), <tmp>/packages/example/secret.txt,
    <tmp>/secret.txt, plus the zip package example-1.0.1 in <tmp>/packages.
    """
    base = tmp_path_factory.mktemp("jail")
    packages = base / "packages"
    root = packages / "example" / "1.0.0"
    shutil.copytree(FIXTURES / "package" / "example" / "1.0.0", root)
    shutil.copy(FIXTURES / "local-storage" / "example-1.0.1.zip", packages / "example-1.0.1.zip")
    # Signatures present: a package without one is the spec's prescribed 500 (§2.9).
    shutil.copy(FIXTURES / "local-storage" / "example-1.0.1.zip.sig", packages)
    (packages / "example" / "1.0.0.sig").write_bytes(b"signature\n")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (base / "secret.txt").write_bytes(SECRET)
    (packages / "example" / "secret.txt").write_bytes(SECRET)
    (root / "docs" / "evil.md").symlink_to(base / "secret.txt")
    (root / "docs" / "evil_rel.md").symlink_to("../../secret.txt")
    (root / "docs" / "outside").symlink_to(base)
    (root / "docs" / "inside.md").symlink_to("README.md")
    (root / "docs" / "etc").symlink_to("/etc")
    (root / "docs" / "back\\slash.md").write_bytes(b"backslash file")
    app = create_app(PrefixRegistry(load_index(packages), {}), ONE_SECOND)
    return app, root


def follow(app: Any, target: str | bytes, hops: int = 5) -> Result:
    r = request(app, target)
    while r.status == 301 and hops:
        location = r.header("location")
        assert location is not None and location.startswith("/")
        assert "\r" not in location and "\n" not in location
        r = request(app, location)
        hops -= 1
    return r


def assert_safe(r: Result) -> None:
    assert r.status < 500, (r.status, r.body[:200])
    assert SECRET not in r.body
    assert b"root:" not in r.body


@pytest.mark.parametrize(
    "target",
    [
        "/package/example/1.0.0/../../../../secret.txt",
        "/package/example/1.0.0/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/package/example/1.0.0/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/package/example/1.0.0/docs/..%2f..%2f..%2fsecret.txt",
        "/package/example/1.0.0/..%252f..%252fsecret.txt",
        "/package/example/1.0.0//etc/passwd",
        "/package/example/1.0.0/%2fetc%2fpasswd",
        "/package/example/1.0.0/..%5c..%5csecret.txt",
        "/package/example/1.0.0/docs%5c..%5c..%5c..%5csecret.txt",
        "/package/example/1.0.0/docs/evil.md",
        "/package/example/1.0.0/docs/evil_rel.md",
        "/package/example/1.0.0/docs/outside/secret.txt",
        "/package/example/1.0.0/docs/etc/passwd",
        "/package/example/1.0.0/docs/README.md%00.png",
        "/package/example/1.0.0/%00",
        "/package/example/1.0.1/../../example/secret.txt",
        "/package/example/1.0.1/%2e%2e/secret.txt",
        "/epr/example/..%2f..%2fsecret.txt",
        "/epr/../../secret.txt",
    ],
)
def test_traversal_never_leaves_the_package(jail: tuple[Any, Path], target: str) -> None:
    app, _ = jail
    r = follow(app, target)
    assert_safe(r)
    assert r.status in (400, 404)


@pytest.mark.parametrize(
    "target",
    [
        "/package/example/1.0.0/docs/evil.md",
        "/package/example/1.0.0/docs/outside/secret.txt",
        "/package/example/1.0.0/docs/back%5Cslash.md",
        "/package/example/1.0.0/docs/README.md%00",
        "/package/example/1.0.0/docs/README.md%0a",
        "/package/example/1.0.0/docs",
        "/package/example/1.0.0/docs/outside",
        "/package/example/1.0.1/docs",
        "/package/example/1.0.0/docs/%ff%fe.md",
    ],
)
def test_refused_files_are_resource_not_found(jail: tuple[Any, Path], target: str) -> None:
    app, _ = jail
    r = request(app, target)
    assert (r.status, r.body) == (404, b"resource not found\n")


def test_symlinks_inside_the_package_are_served(jail: tuple[Any, Path]) -> None:
    app, root = jail
    r = request(app, "/package/example/1.0.0/docs/inside.md")
    assert (r.status, r.body) == (200, (root / "docs" / "README.md").read_bytes())


def test_encoded_slash_inside_the_package_is_a_path(jail: tuple[Any, Path]) -> None:
    app, root = jail
    r = request(app, "/package/example/1.0.0/docs%2fREADME.md")
    assert (r.status, r.body) == (200, (root / "docs" / "README.md").read_bytes())


def test_long_paths_and_queries_are_414(jail: tuple[Any, Path]) -> None:
    app, _ = jail
    r = request(app, "/package/example/1.0.0/" + "a" * 9000)
    assert (r.status, r.body) == (414, b"request URI too long\n")
    r = request(app, "/search?" + "a=b&" * 3000)
    assert r.status == 414
    r = request(app, "/search", raw_path=False)
    assert r.status == 200


def test_malformed_escapes_are_400(jail: tuple[Any, Path]) -> None:
    app, _ = jail
    for target in ["/search%zz", "/package/example/1.0.0/docs/%", "/%2"]:
        r = request(app, target)
        assert (r.status, r.body) == (400, b"invalid URL escape\n")


@pytest.mark.parametrize(
    "target",
    [
        b"/\xff\xfe",
        b"/%ff",
        b"/search\xff",
        b"/package/example/1.0.\xff/",
        b"/package/\xc3\x28/1.0.0/x",
    ],
)
def test_invalid_utf8_never_500(jail: tuple[Any, Path], target: bytes) -> None:
    app, _ = jail
    r = request(app, target)
    assert r.status in (400, 404)


def test_redirect_location_cannot_inject_headers(jail: tuple[Any, Path]) -> None:
    app, _ = jail
    r = request(app, b"/search/?a=1\r\nSet-Cookie: x=y")
    assert r.status == 301
    assert r.header("location") == "/search?a=1%0D%0ASet-Cookie:%20x=y"
    r = request(app, "/a/../search?x=%0d%0a")
    assert r.header("location") == "/search?x=%0d%0a"
    r = request(app, "/a/..//x%0d%0ay")
    assert r.header("location") == "/x%0D%0Ay"


def test_range_abuse(jail: tuple[Any, Path]) -> None:
    app, _ = jail
    target = "/package/example/1.0.0/docs/README.md"
    many = "bytes=" + ",".join(f"{i}-{i}" for i in range(200))
    assert request(app, target, headers=[("Range", many)]).status == 416
    overlapping = "bytes=" + ",".join(["0-"] * 50)
    assert request(app, target, headers=[("Range", overlapping)]).status == 200
    for value in ["bytes=1_0-20", "bytes= 0x10-20", "bytes=0-1e3", "bytes=-", "bytes=--5", "bytes"]:
        assert request(app, target, headers=[("Range", value)]).status == 416, value


def test_conditional_header_garbage(jail: tuple[Any, Path]) -> None:
    app, _ = jail
    target = "/package/example/1.0.0/docs/README.md"
    for name in [
        "If-Modified-Since",
        "If-Unmodified-Since",
        "If-Range",
        "If-None-Match",
        "If-Match",
    ]:
        for value in ["", "x" * 5000, "Mon, 99 Foo 9999 99:99:99 GMT", "W/", '"', "\x7f"]:
            r = request(app, target, headers=[(name, value), ("Range", "bytes=0-1")])
            assert r.status in (200, 206, 304, 412), (name, value, r.status)


SEGMENTS = st.sampled_from(
    [
        "",
        ".",
        "..",
        "%2e",
        "%2e%2e",
        "%2E%2e",
        "%2f",
        "%5c",
        "%00",
        "%ff",
        "%",
        "%zz",
        "\\",
        "docs",
        "README.md",
        "evil.md",
        "outside",
        "secret.txt",
        "etc",
        "passwd",
        "example",
        "1.0.0",
        "1.0.1",
        "package",
        "epr",
        "example-1.0.1.zip",
        "example-1.0.1.zip.sig",
        "search",
        "~",
        "%20",
        "a" * 100,
    ]
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(["", "/package/example/1.0.0", "/package/example/1.0.1", "/epr/example"]),
    st.lists(SEGMENTS, min_size=0, max_size=9),
    st.sampled_from(["GET", "HEAD", "POST"]),
)
def test_fuzzed_paths_are_safe(
    jail: tuple[Any, Path], base: str, segments: list[str], method: str
) -> None:
    app, root = jail
    target = base + "/" + "/".join(segments)
    r = request(app, target, method=method)
    assert_safe(r)
    if r.status == 301:
        assert_safe(follow(app, target))
    if r.status == 200 and method == "GET" and r.header("content-type") != "application/json":
        allowed = {p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}
        allowed.add((FIXTURES / "local-storage" / "example-1.0.1.zip").read_bytes())
        if r.body not in allowed:
            # generated zip or an entry of the zip package: must not contain the secret
            assert SECRET not in r.body


def test_fixture_secret_is_really_outside(jail: tuple[Any, Path]) -> None:
    _, root = jail
    assert (root / "docs" / "evil.md").read_bytes() == SECRET  # the symlink does work on disk
    assert os.path.realpath(root / "docs" / "evil.md").endswith("secret.txt")
