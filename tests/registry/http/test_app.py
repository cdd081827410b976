"""The read API in process: routing quirks, headers, every endpoint (spec §1, §2, §8)."""

from __future__ import annotations

import asyncio
import email.utils
import io
import os
import shutil
import time
import zipfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from http_driver import (
    FIXTURES,
    GOLDENS,
    ONE_SECOND,
    PrefixRegistry,
    Result,
    load_index,
    request,
)
from prometheus_client import CollectorRegistry

from package_storage.errors import (
    NotFoundError,
    PackageError,
    QueryError,
    StorageError,
    ValidationError,
    VersionError,
)
from package_storage.packages.artifacts import zip_listing
from package_storage.packages.model import Package
from package_storage.registry.http import static
from package_storage.registry.http.app import (
    AppOptions,
    RequestRecord,
    SingleIndexRegistry,
    cache_headers,
    clean_path,
    create_app,
    service_name_from_env,
)
from package_storage.registry.http.errors import status_for
from package_storage.registry.http.metrics import Metrics, metrics_app
from package_storage.registry.index import RegistryIndex as Index

ASGI = Any

PUBLIC_1S = ["max-age=1", "public"]
NO_CACHE = ["max-age=0", "private, no-store"]


def golden(name: str) -> bytes:
    return (GOLDENS / name).read_bytes()


def assert_error(r: Result, status: int, message: str, cache: list[str] | None = None) -> None:
    assert r.status == status
    assert r.body == (message + "\n").encode()
    assert r.header("content-type") == "text/plain; charset=utf-8"
    assert r.header("x-content-type-options") == "nosniff"
    assert r.header("content-length") == str(len(r.body))
    if cache is not None:
        assert r.values("cache-control") == cache


# --- fixed routes ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/index.json"])
def test_service_info_matches_golden(setup_d: ASGI, path: str) -> None:
    r = request(setup_d, path)
    assert r.status == 200
    assert r.body == golden("index.json")
    assert r.header("content-type") == "application/json"
    assert r.values("cache-control") == PUBLIC_1S
    assert r.header("access-control-allow-origin") == "*"


def test_service_info_name_and_version_are_configurable() -> None:
    app = create_app(PrefixRegistry(None, {}), AppOptions(service_name="x", service_version="9"))
    assert request(app, "/").body == b'{\n  "service.name": "x",\n  "service.version": "9"\n}\n'
    assert service_name_from_env({"ELASTIC_APM_SERVICE_NAME": "apm"}) == "apm"
    assert service_name_from_env({"ELASTIC_APM_SERVICE_NAME": ""}) == "package-registry"
    assert service_name_from_env({}) == "package-registry"


def test_health_is_empty_with_cors_only(setup_d: ASGI) -> None:
    r = request(setup_d, "/health?ready=true")
    assert (r.status, r.body) == (200, b"")
    assert r.header("content-length") == "0"
    assert r.header("content-type") is None
    assert r.values("cache-control") == []
    assert r.header("access-control-allow-origin") == "*"


def test_favicon(setup_d: ASGI) -> None:
    r = request(setup_d, "/favicon.ico")
    assert r.status == 200
    assert r.body == golden("favicon.ico")
    assert r.header("content-type") == "image/x-icon"
    assert r.values("cache-control") == PUBLIC_1S


def test_cache_control_rounds_half_to_even() -> None:
    assert cache_headers(1.5)[0] == (b"cache-control", b"max-age=2")
    assert cache_headers(2.5)[0] == (b"cache-control", b"max-age=2")
    assert cache_headers(600.0) == [
        (b"cache-control", b"max-age=600"),
        (b"cache-control", b"public"),
    ]
    app = create_app(PrefixRegistry(None, {}), AppOptions(cache_time_index=0.4))
    assert request(app, "/").values("cache-control") == ["max-age=0", "public"]


# --- search and categories ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("/search?kibana.version=6.5.2", "search-kibana652.json"),
        ("/search?package=example", "search-package-example.json"),
        ("/search?category=web&all=true", "search-category-web-all.json"),
        ("/categories", "categories.json"),
        ("/categories?prerelease=true", "categories-prerelease.json"),
    ],
)
def test_search_and_categories_match_goldens(setup_a: ASGI, target: str, name: str) -> None:
    r = request(setup_a, target)
    assert r.status == 200
    assert r.body == golden(name)
    assert r.header("content-type") == "application/json"
    assert r.values("cache-control") == PUBLIC_1S
    assert r.header("access-control-allow-origin") == "*"


def test_empty_search_is_two_bytes(setup_a: ASGI) -> None:
    assert request(setup_a, "/search?package=nothing_like_this").body == b"[]"


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("/search?prerelease=foo", "search-package-prerelease-error.txt"),
        ("/categories?experimental=foo", "categories-experimental-error.txt"),
    ],
)
def test_query_errors_are_400_no_cache(setup_a: ASGI, target: str, name: str) -> None:
    r = request(setup_a, target)
    assert_error(r, 400, golden(name).decode().strip(), NO_CACHE)
    assert r.header("access-control-allow-origin") == "*"


def test_unknown_parameters_follow_the_option(setup_a_index: Index) -> None:
    strict = AppOptions(allow_unknown_query_parameters=False)
    app = create_app(PrefixRegistry(setup_a_index, {}), strict)
    r = request(app, "/search?package=yamlpipeline&unknown=true")
    assert_error(r, 400, golden("search-unknown-query-parameter-error.txt").decode().strip())
    lax = create_app(PrefixRegistry(setup_a_index, {}), ONE_SECOND)
    r = request(lax, "/search?package=yamlpipeline&unknown=true")
    assert r.body == golden("search-allowed-unknown-query-parameter.json")


class FailingIndex:
    """An index whose package source fails."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def search_body(self, raw_query: str, *, allow_unknown: bool) -> bytes:
        raise self.exc

    def categories_body(self, raw_query: str, *, allow_unknown: bool) -> bytes:
        raise self.exc

    def lookup(self, name: str, version: str) -> Package | None:
        raise self.exc

    def document_body(self, pkg: Package) -> bytes:
        raise AssertionError("unreachable")


def test_source_failures_use_the_reference_texts() -> None:
    app = create_app(PrefixRegistry(FailingIndex(PackageError("disk on fire")), {}))
    assert_error(request(app, "/search"), 404, "fetching package failed: disk on fire", NO_CACHE)
    assert_error(request(app, "/categories"), 404, "disk on fire", NO_CACHE)
    assert_error(request(app, "/package/a/1.0.0/"), 500, "internal server error")
    assert_error(request(app, "/epr/a/a-1.0.0.zip"), 500, "internal server error")
    app = create_app(PrefixRegistry(FailingIndex(RuntimeError("bug")), {}))
    r = request(app, "/search")
    assert_error(r, 500, "internal server error")
    assert b"bug" not in r.body


def test_raw_query_reaches_the_index_unchanged() -> None:
    seen: list[str] = []

    class Recording(FailingIndex):
        def search_body(self, raw_query: str, *, allow_unknown: bool) -> bytes:
            seen.append(raw_query)
            return b"[]"

    app = create_app(PrefixRegistry(Recording(PackageError("x")), {}))
    request(app, "/search?a=%20b&c=d+e")
    request(app, b"/search?k=\xc3\xa9\xff")
    assert seen == ["a=%20b&c=d+e", "k=%C3%A9%FF"]


# --- package index -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("/package/example/1.0.0/", "package.json"),
        ("/package/nodirentries/1.0.0/", "package-zip-nodirentries.json"),
        ("/package/datasources/1.0.0/", "datasources-1.0.0-package.json"),
    ],
)
def test_package_index_matches_goldens(setup_d: ASGI, target: str, name: str) -> None:
    r = request(setup_d, target)
    assert r.status == 200
    assert r.body == golden(name)
    assert r.header("content-type") == "application/json"
    assert r.values("cache-control") == PUBLIC_1S


@pytest.mark.parametrize(
    ("target", "status", "name"),
    [
        ("/package/missing/1.0.0/", 404, "index-package-not-found.txt"),
        ("/package/example/999.0.0/", 404, "index-package-revision-not-found.txt"),
        ("/package/example/a.b.c/", 400, "index-package-invalid-version.txt"),
        ("/package/sql_input/1.0.1/", 404, "sql-input-package-not-found.json"),
    ],
)
def test_package_index_errors(setup_d: ASGI, target: str, status: int, name: str) -> None:
    r = request(setup_d, target)
    assert_error(r, status, golden(name).decode().strip(), NO_CACHE)
    assert r.header("access-control-allow-origin") == "*"


@pytest.mark.parametrize("version", ["1.0", "01.0.0", "v1.0.0", "1.0.0-", "1.0.0-01", "1.0.0+a+b"])
def test_versions_must_be_strict_semver(setup_d: ASGI, version: str) -> None:
    for target in (
        f"/package/example/{version}/",
        f"/package/example/{version}/manifest.yml",
        f"/epr/example/example-{version}.zip",
        f"/epr/example/example-{version}.zip.sig",
    ):
        assert_error(request(setup_d, target), 400, "invalid package version", NO_CACHE)


# --- static files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("/package/example/1.0.0/docs/README.md", "example-1.0.0-README.md"),
        ("/package/example/1.0.0/img/kibana-envoyproxy.jpg", "example-1.0.0-screenshot.jpg"),
        ("/package/example/1.0.1/docs/README.md", "example-1.0.1-README.md"),
        ("/package/example/1.0.1/img/kibana-envoyproxy.jpg", "example-1.0.1-screenshot.jpg"),
    ],
)
def test_static_files_match_goldens(setup_d: ASGI, target: str, name: str) -> None:
    r = request(setup_d, target)
    assert r.status == 200
    if name.endswith(".md"):
        assert r.body.strip() == golden(name).strip()
    else:
        assert r.body == golden(name)
    assert r.values("cache-control") == PUBLIC_1S
    assert r.header("accept-ranges") == "bytes"
    assert r.header("content-length") == str(len(r.body))
    assert r.header("last-modified") is not None


@pytest.mark.parametrize(
    ("target", "ctype"),
    [
        ("/package/example/1.0.0/manifest.yml", "text/yaml; charset=UTF-8"),
        ("/package/example/1.0.1/manifest.yml", "text/yaml; charset=UTF-8"),
        ("/package/example/1.0.0/docs/README.md", "text/markdown; charset=utf-8"),
        ("/package/example/1.0.0/img/kibana-envoyproxy.jpg", "image/jpeg"),
        ("/package/example/1.0.0/img/icon.png", "image/png"),
        (
            "/package/example/1.0.0/kibana/dashboard/0c610510-5cbd-11e9-8477-077ec9664dbd.json",
            "application/json",
        ),
        (
            "/package/example/1.0.0/data_stream/foo/agent/stream/stream.yml.hbs",
            "text/plain; charset=utf-8",
        ),
    ],
)
def test_content_types(setup_d: ASGI, target: str, ctype: str) -> None:
    r = request(setup_d, target)
    assert r.status == 200
    assert r.header("content-type") == ctype


def test_static_lookup_errors(setup_d: ASGI) -> None:
    r = request(setup_d, "/package/none/1.0.0/img/foo.jpg")
    assert_error(r, 404, "package revision not found", NO_CACHE)
    r = request(setup_d, "/package/example/1.0.0/img/nope.jpg")
    assert_error(r, 404, "resource not found", PUBLIC_1S)  # public headers kept (spec §2.7)
    r = request(setup_d, "/package/example/1.0.0/docs")
    assert_error(r, 404, "resource not found", PUBLIC_1S)
    r = request(setup_d, "/package/example/1.0.1/docs")
    assert_error(r, 404, "resource not found", PUBLIC_1S)


def test_percent_encoded_file_names(tmp_path: Path) -> None:
    app, root = package_copy(tmp_path)
    (root / "img" / "[Logs Cassandra] System Logs.jpg").write_bytes(b"\xff\xd8\xffjpeg")
    r = request(app, "/package/example/1.0.0/img/%5BLogs%20Cassandra%5D%20System%20Logs.jpg")
    assert (r.status, r.body) == (200, b"\xff\xd8\xffjpeg")


@pytest.mark.parametrize("version", ["1.0.0", "1.0.1"])
def test_if_modified_since(setup_d: ASGI, version: str) -> None:
    target = f"/package/example/{version}/img/kibana-envoyproxy.jpg"
    now = email.utils.formatdate(time.time() + 5, usegmt=True)
    r = request(setup_d, target, headers=[("If-Modified-Since", now)])
    assert (r.status, r.body) == (304, b"")
    assert r.header("last-modified") is not None
    assert r.header("content-type") is None
    assert r.header("content-length") is None
    r = request(setup_d, target, headers=[("If-Modified-Since", "Mon, 01 Jan 0001 00:00:00 GMT")])
    assert r.status == 200
    last = r.header("last-modified")
    assert last is not None
    assert request(setup_d, target, headers=[("If-Modified-Since", last)]).status == 304
    assert request(setup_d, target, headers=[("If-Modified-Since", "garbage")]).status == 200
    # If-None-Match takes precedence over If-Modified-Since; with no ETag only "*" matches.
    r = request(setup_d, target, headers=[("If-None-Match", '"x"'), ("If-Modified-Since", last)])
    assert r.status == 200
    assert request(setup_d, target, headers=[("If-None-Match", "*")]).status == 304
    r = request(setup_d, target, method="POST", headers=[("If-None-Match", "*")])
    assert r.status == 412


def test_if_match_and_if_unmodified_since(setup_d: ASGI) -> None:
    target = "/package/example/1.0.0/docs/README.md"
    assert request(setup_d, target, headers=[("If-Match", "*")]).status == 200
    assert request(setup_d, target, headers=[("If-Match", '"abc"')]).status == 412
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert request(setup_d, target, headers=[("If-Unmodified-Since", old)]).status == 412
    future = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert request(setup_d, target, headers=[("If-Unmodified-Since", future)]).status == 200


def test_single_range(setup_d: ASGI) -> None:
    target = "/package/example/1.0.0/img/kibana-envoyproxy.jpg"
    whole = golden("example-1.0.0-screenshot.jpg")
    r = request(setup_d, target, headers=[("Range", "bytes=10-109")])
    assert r.status == 206
    assert r.body == whole[10:110]
    assert r.header("content-range") == f"bytes 10-109/{len(whole)}"
    assert r.header("content-length") == "100"
    assert r.header("content-type") == "image/jpeg"
    r = request(setup_d, target, headers=[("Range", "bytes=-5")])
    assert (r.status, r.body) == (206, whole[-5:])
    r = request(setup_d, target, headers=[("Range", f"bytes={len(whole) - 3}-")])
    assert (r.status, r.body) == (206, whole[-3:])


def test_range_downloads_reassemble(setup_d: ASGI) -> None:
    """cases.md TestRangeDownloads: HEAD, then 100 KiB ranges until a short chunk."""
    for target, expected in [
        (
            "/package/example/1.0.0/img/kibana-envoyproxy.jpg",
            golden("example-1.0.0-screenshot.jpg"),
        ),
        (
            "/package/example/1.0.1/img/kibana-envoyproxy.jpg",
            golden("example-1.0.1-screenshot.jpg"),
        ),
        (
            "/epr/example/example-1.0.1.zip",
            (FIXTURES / "local-storage" / "example-1.0.1.zip").read_bytes(),
        ),
    ]:
        head = request(setup_d, target, method="HEAD")
        assert head.status == 200 and head.body == b""
        assert head.header("accept-ranges") == "bytes"
        assert head.header("content-length") == str(len(expected))
        got = b""
        while True:
            r = request(
                setup_d, target, headers=[("Range", f"bytes={len(got)}-{len(got) + 102400}")]
            )
            assert r.status == 206
            got += r.body
            if len(r.body) < 102400:
                break
        assert got == expected


def test_multiple_ranges_are_multipart(setup_d: ASGI) -> None:
    target = "/package/example/1.0.0/docs/README.md"
    whole = request(setup_d, target).body
    r = request(setup_d, target, headers=[("Range", "bytes=0-1,5-7")])
    assert r.status == 206
    ctype = r.header("content-type")
    assert ctype is not None and ctype.startswith("multipart/byteranges; boundary=")
    assert r.header("content-length") == str(len(r.body))
    boundary = ctype.partition("boundary=")[2].encode()
    parts = r.body.split(b"--" + boundary)
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    bodies = []
    for part in parts[1:-1]:
        head, _, body = part.partition(b"\r\n\r\n")
        assert b"Content-Type: text/markdown; charset=utf-8" in head
        bodies.append((head, body.removesuffix(b"\r\n")))
    assert [b for _, b in bodies] == [whole[0:2], whole[5:8]]
    assert f"Content-Range: bytes 5-7/{len(whole)}".encode() in bodies[1][0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bytes=999999-", "invalid range: failed to overlap"),
        ("bytes=5-1", "invalid range"),
        ("items=0-1", "invalid range"),
        ("bytes=x-1", "invalid range"),
        ("bytes=--1", "invalid range"),
        ("bytes=0-99999999999999999999999", "invalid range"),
    ],
)
def test_bad_ranges_are_416_without_cache_headers(setup_d: ASGI, value: str, message: str) -> None:
    target = "/package/example/1.0.0/docs/README.md"
    r = request(setup_d, target, headers=[("Range", value)])
    assert_error(r, 416, message, [])
    assert r.header("last-modified") is None
    assert r.header("access-control-allow-origin") == "*"
    if "overlap" in message:
        size = len(request(setup_d, target).body)
        assert r.header("content-range") == f"bytes */{size}"


def test_ranges_larger_than_the_file_are_ignored(setup_d: ASGI) -> None:
    target = "/package/example/1.0.0/docs/README.md"
    size = len(request(setup_d, target).body)
    r = request(setup_d, target, headers=[("Range", ",".join(["bytes=0-"] + ["0-"] * 3))])
    assert (r.status, len(r.body)) == (200, size)


def test_if_range(setup_d: ASGI) -> None:
    target = "/package/example/1.0.0/docs/README.md"
    last = request(setup_d, target).header("last-modified")
    assert last is not None
    headers = [("Range", "bytes=0-1"), ("If-Range", last)]
    assert request(setup_d, target, headers=headers).status == 206
    headers = [("Range", "bytes=0-1"), ("If-Range", "Mon, 01 Jan 2001 00:00:00 GMT")]
    assert request(setup_d, target, headers=headers).status == 200
    headers = [("Range", "bytes=0-1"), ("If-Range", '"etag"')]
    assert request(setup_d, target, headers=headers).status == 200


def test_large_files_are_streamed_in_chunks(tmp_path: Path) -> None:
    app, root = package_copy(tmp_path)
    data = os.urandom(static.SMALL_BODY + 3 * static.CHUNK_SIZE + 7)
    (root / "img" / "big.bin").write_bytes(data)
    r = request(app, "/package/example/1.0.0/img/big.bin")
    assert r.status == 200 and r.body == data
    assert r.messages > 3
    assert r.header("content-type") == "application/octet-stream"
    r = request(app, "/package/example/1.0.0/img/big.bin", headers=[("Range", "bytes=1-")])
    assert r.status == 206 and r.body == data[1:]
    r = request(app, "/package/example/1.0.0/img/big.bin", method="HEAD")
    assert r.body == b"" and r.header("content-length") == str(len(data))


def test_pathsend_hands_large_whole_files_to_the_server(tmp_path: Path) -> None:
    app, root = package_copy(tmp_path)
    data = os.urandom(static.SMALL_BODY + 1)
    (root / "img" / "big.bin").write_bytes(data)
    ext = {"http.response.pathsend": {}}
    r = request(app, "/package/example/1.0.0/img/big.bin", extensions=ext)
    assert r.status == 200 and r.body == data
    assert r.pathsend == str((root / "img" / "big.bin").resolve())
    assert r.header("content-length") == str(len(data))
    ranged = request(
        app, "/package/example/1.0.0/img/big.bin", extensions=ext, headers=[("Range", "bytes=1-")]
    )
    assert ranged.pathsend is None and ranged.body == data[1:]
    small = request(app, "/package/example/1.0.0/docs/README.md", extensions=ext)
    assert small.pathsend is None and small.status == 200


# --- artifacts and signatures --------------------------------------------------------------------


def test_folder_artifact_is_generated(setup_d: ASGI) -> None:
    r = request(setup_d, "/epr/example/example-0.0.2.zip")
    assert r.status == 200
    listing = "\n".join(f"{s} {n}" for s, n in zip_listing(r.body))
    assert listing == golden("example-0.0.2.zip-preview.txt").decode().strip()
    assert r.header("content-type") == "application/zip"
    assert r.header("accept-ranges") is None
    assert r.header("last-modified") is None
    assert r.values("cache-control") == PUBLIC_1S
    ranged = request(setup_d, "/epr/anything/example-0.0.2.zip", headers=[("Range", "bytes=0-9")])
    assert (ranged.status, ranged.body) == (200, r.body)  # no ranges, same deterministic bytes
    head = request(setup_d, "/epr/example/example-0.0.2.zip", method="HEAD")
    assert head.body == b"" and head.header("accept-ranges") is None


def test_zip_artifact_is_the_file(setup_d: ASGI) -> None:
    r = request(setup_d, "/epr/example/example-1.0.1.zip")
    assert r.status == 200
    assert r.body == (FIXTURES / "local-storage" / "example-1.0.1.zip").read_bytes()
    listing = "\n".join(f"{s} {n}" for s, n in zip_listing(r.body))
    assert listing == golden("example-1.0.1.zip-preview.txt").decode().strip()
    assert r.header("content-type") == "application/zip"
    assert r.header("accept-ranges") == "bytes"
    assert r.header("last-modified") is not None


def test_artifact_not_found_and_dir_is_ignored(setup_d: ASGI) -> None:
    r = request(setup_d, "/epr/example/example-999.0.2.zip")
    assert_error(
        r, 404, golden("artifact-package-version-not-found.txt").decode().strip(), NO_CACHE
    )
    r = request(setup_d, "/epr/whatever/nodirentries-1.0.0.zip")
    assert r.status == 200
    assert_error(request(setup_d, "/epr/example/example-a.b.c.zip"), 400, "invalid package version")


def test_signatures(setup_d: ASGI) -> None:
    r = request(setup_d, "/epr/example/example-1.0.1.zip.sig")
    assert (r.status, r.body) == (200, golden("example-1.0.1.zip.sig"))
    assert r.values("cache-control") == PUBLIC_1S
    r = request(setup_d, "/epr/example/example-0.0.1.zip.sig")
    assert_error(r, 404, golden("missing-signature.txt").decode().strip(), NO_CACHE)
    # The package exists but has no .sig on disk: the reference's 500 quirk, public headers kept.
    r = request(setup_d, "/epr/example/example-1.0.0.zip.sig")
    assert_error(r, 500, "internal server error", PUBLIC_1S)


def test_vanished_zip_is_500(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "local-storage" / "example-1.0.1.zip", tmp_path / "example-1.0.1.zip")
    app = create_app(PrefixRegistry(load_index(tmp_path), {}), ONE_SECOND)
    assert request(app, "/epr/example/example-1.0.1.zip").status == 200
    (tmp_path / "example-1.0.1.zip").unlink()
    assert_error(
        request(app, "/epr/example/example-1.0.1.zip"), 500, "internal server error", PUBLIC_1S
    )


# --- routing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/search/", "/search"),
        ("/search/?package=x", "/search?package=x"),
        ("/index.json/", "/index.json"),
        ("/package/example/1.0.0", "/package/example/1.0.0/"),
        ("/epr/example/example-1.0.0.zip/", "/epr/example/example-1.0.0.zip"),
        ("/package/example/1.0.0/docs/", "/package/example/1.0.0/docs"),
        ("/package/a%20b/1.0.0/x/", "/package/a%20b/1.0.0/x"),
    ],
)
def test_strict_slash_redirects(setup_d: ASGI, target: str, location: str) -> None:
    r = request(setup_d, target)
    assert r.status == 301
    assert r.header("location") == location
    assert r.header("access-control-allow-origin") == "*"
    assert r.header("content-type") == "text/html; charset=utf-8"
    assert r.body == f'<a href="{location}">Moved Permanently</a>.\n\n'.encode()
    assert r.values("cache-control") == []
    head = request(setup_d, target, method="HEAD")
    assert (head.status, head.body) == (301, b"")
    post = request(setup_d, target, method="POST")
    assert (post.status, post.body, post.header("content-type")) == (301, b"", None)


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("//search", "/search"),
        ("/./search", "/search"),
        ("/x/../search?a=1", "/search?a=1"),
        ("/package/example/1.0.0/docs/./README.md", "/package/example/1.0.0/docs/README.md"),
        ("/package/example/1.0.0/docs//", "/package/example/1.0.0/docs/"),
        ("/search/.", "/search"),
        ("/..", "/"),
        ("/a%20b/../c%3Fd", "/c%3Fd"),
    ],
)
def test_path_cleaning_redirects(setup_d: ASGI, target: str, location: str) -> None:
    r = request(setup_d, target)
    assert r.status == 301
    assert r.header("location") == location
    assert r.header("access-control-allow-origin") is None  # router level: no CORS
    assert r.body == b""


def test_clean_path_like_go() -> None:
    assert clean_path("") == "/"
    assert clean_path("a/b") == "/a/b"
    assert clean_path("/a/b/../../..") == "/"
    assert clean_path("/a/./b/") == "/a/b/"
    assert clean_path("/.well-known/x") == "/.well-known/x"
    assert clean_path("/a/..b/") == "/a/..b/"


@pytest.mark.parametrize(
    "target", ["/nope", "/metrics", "/epr", "/epr/x", "/package/x", "/search/x"]
)
def test_unknown_paths(setup_d: ASGI, target: str) -> None:
    r = request(setup_d, target)
    assert_error(r, 404, "404 page not found", [])
    assert r.header("access-control-allow-origin") is None


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "OPTIONS", "DELETE", "BREW"])
def test_any_method_gets_the_same_answer(setup_d: ASGI, method: str) -> None:
    get = request(setup_d, "/package/example/1.0.0/")
    r = request(setup_d, "/package/example/1.0.0/", method=method)
    assert r.status == 200
    assert r.headers == get.headers
    assert r.body == (b"" if method == "HEAD" else get.body)


def test_head_has_no_body_everywhere(setup_d: ASGI) -> None:
    for target in [
        "/",
        "/search",
        "/nope",
        "/package/example/1.0.0/docs/README.md",
        "/favicon.ico",
    ]:
        get = request(setup_d, target)
        head = request(setup_d, target, method="HEAD")
        assert head.body == b""
        assert head.header("content-length") == get.header("content-length")


def test_path_without_raw_path_uses_the_decoded_path(setup_d: ASGI) -> None:
    r = request(setup_d, "/package/example/1.0.0/docs/README.md", raw_path=False)
    assert r.status == 200


# --- prefixes ------------------------------------------------------------------------------------


class RecordingRegistry(PrefixRegistry):
    def __init__(self, default: Any, prefixes: dict[str, Any]) -> None:
        super().__init__(default, prefixes)
        self.asked: list[str | None] = []

    def resolve(self, prefix: str | None) -> Any:
        self.asked.append(prefix)
        return super().resolve(prefix)


def test_prefixes_route_to_their_index(setup_a_index: Index, setup_d_index: Index) -> None:
    registry = RecordingRegistry(
        setup_d_index, {"production": setup_a_index, "production@8.12.0": setup_d_index}
    )
    app = create_app(registry, ONE_SECOND)
    r = request(app, "/production/search?package=example")
    assert (r.status, r.body) == (200, golden("search-package-example.json"))
    r = request(app, "/production%408.12.0/package/example/1.0.0/")
    assert (r.status, r.body) == (200, golden("package.json"))
    r = request(app, "/production/epr/x/example-1.0.1.zip.sig")
    assert r.status == 200
    assert request(app, "/production/").body == golden("index.json")
    assert request(app, "/production/health").status == 200
    r = request(app, "/production")
    assert (r.status, r.header("location")) == (301, "/production/")
    r = request(app, "/production/search/?a=1")
    assert (r.status, r.header("location")) == (301, "/production/search?a=1")
    r = request(app, "/production/package/example/1.0.0")
    assert r.header("location") == "/production/package/example/1.0.0/"
    assert_error(request(app, "/staging/search"), 404, "404 page not found")
    assert_error(request(app, "/production/nope"), 404, "404 page not found")
    registry.asked.clear()
    for target in ["/search", "/package/nope/1.0.0/", "/epr/nope", "/health", "/"]:
        request(app, target)
    assert set(registry.asked) <= {None}  # route heads are never taken for prefixes


def test_no_default_index() -> None:
    app = create_app(PrefixRegistry(None, {}), ONE_SECOND)
    assert_error(request(app, "/search"), 404, "404 page not found")
    assert_error(request(app, "/package/a/1.0.0/"), 404, "404 page not found")
    assert request(app, "/health").status == 200
    assert request(app, "/").status == 200


def test_single_index_registry_swaps(setup_a_index: Index, setup_d_index: Index) -> None:
    registry = SingleIndexRegistry(setup_d_index)
    app = create_app(registry, ONE_SECOND)
    assert request(app, "/package/nodirentries/1.0.0/").status == 200
    assert registry.resolve("x") is None
    registry.swap(Index([]))
    assert request(app, "/package/nodirentries/1.0.0/").status == 404


def test_resolve_errors_are_mapped() -> None:
    class Broken:
        def resolve(self, prefix: str | None) -> Any:
            raise NotFoundError(f"no tag {prefix!r}")

    app = create_app(Broken(), ONE_SECOND)
    assert_error(request(app, "/production@9.9.9/search"), 404, "no tag 'production@9.9.9'")


# --- errors, metrics, logging, lifespan ----------------------------------------------------------


def test_status_for() -> None:
    assert status_for(QueryError("bad")) == (400, "bad")
    assert status_for(VersionError("v")) == (400, "v")
    assert status_for(PackageError("p"), endpoint="search") == (404, "fetching package failed: p")
    assert status_for(ValidationError("p"), endpoint="categories") == (404, "p")
    assert status_for(PackageError("p")) == (500, "internal server error")
    assert status_for(NotFoundError("gone")) == (404, "gone")
    assert status_for(StorageError("db")) == (500, "internal server error")
    assert status_for(OSError("disk")) == (500, "internal server error")
    assert status_for(ValueError("bug")) == (500, "internal server error")


def test_metrics_are_recorded_with_route_templates(setup_d_index: Index) -> None:
    prom = CollectorRegistry()
    metrics = Metrics(prom, version="1.40.1", instance="test")
    app = create_app(PrefixRegistry(setup_d_index, {}), AppOptions(metrics=metrics))
    request(app, "/search")
    request(app, "/package/example/1.0.0/")
    request(app, "/package/nope/1.0.0/")
    request(app, "/nope")
    request(app, "/epr/example/example-1.0.1.zip")
    request(app, "/package/example/1.0.0/docs/README.md")
    value = prom.get_sample_value
    storage = "epr_storage_requests_total"
    assert value(storage, {"location": "local", "component": "artifacts"}) == 1
    assert value(storage, {"location": "local", "component": "statics"}) == 1
    assert (
        value("epr_http_requests_total", {"code": "200", "method": "get", "path": "/search"}) == 1
    )
    labels = {
        "code": "200",
        "method": "get",
        "path": "/package/{packageName:[a-z0-9_]+}/{packageVersion}/",
    }
    assert value("epr_http_requests_total", labels) == 1
    labels["code"] = "404"
    assert value("epr_http_requests_total", labels) == 1
    assert value("epr_service_info", {"version": "1.40.1", "instance": "test"}) == 1
    assert value("epr_in_flight_requests") == 0
    sizes = value(
        "epr_http_response_size_bytes_sum", {"code": "200", "method": "get", "path": "/search"}
    )
    assert sizes is not None and sizes > 0

    metrics_asgi = metrics_app(prom)
    r = request(metrics_asgi, "/metrics")
    assert r.status == 200
    assert b'epr_http_requests_total{code="200",method="get",path="/search"} 1.0' in r.body
    assert_error(request(metrics_asgi, "/"), 404, "404 page not found")


def test_request_logger_skips_health(setup_d_index: Index) -> None:
    records: list[RequestRecord] = []
    app = create_app(PrefixRegistry(setup_d_index, {}), AppOptions(request_logger=records.append))
    request(app, "/health")
    request(app, "/search?package=example", headers=[("User-Agent", "ua")])
    assert [(r.route, r.status, r.url, r.user_agent) for r in records] == [
        ("/search", 200, "/search?package=example", "ua")
    ]
    assert records[0].body_bytes > 0


def test_lifespan(setup_d: ASGI) -> None:
    async def run() -> list[str]:
        incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[str] = []

        async def receive() -> MutableMapping[str, Any]:
            return incoming.pop(0)

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message["type"])

        await setup_d({"type": "lifespan"}, receive, send)
        return sent

    assert asyncio.run(run()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_generated_zip_is_cached(setup_d_index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    from package_storage.registry.http import app as app_module

    calls: list[str] = []
    real = app_module.build_zip

    def counting(tree: Any, name: str, version: str) -> bytes:
        calls.append(name)
        return real(tree, name, version)

    monkeypatch.setattr(app_module, "build_zip", counting)
    app = create_app(PrefixRegistry(setup_d_index, {}), ONE_SECOND)
    first = request(app, "/epr/example/example-0.0.2.zip").body
    assert request(app, "/epr/example/example-0.0.2.zip").body == first
    assert calls == ["example"]
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.testzip() is None


# --- helpers -------------------------------------------------------------------------------------


def package_copy(tmp_path: Path) -> tuple[ASGI, Path]:
    """An app over a writable copy of package/example/1.0.0 (as <tmp>/packages/example/1.0.0)."""
    root = tmp_path / "packages" / "example" / "1.0.0"
    shutil.copytree(FIXTURES / "package" / "example" / "1.0.0", root)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    index = load_index(tmp_path / "packages")
    return create_app(PrefixRegistry(index, {}), ONE_SECOND), root
