"""ETags, 304 and gzip of the JSON answers (in-process, and through a real server)."""

from __future__ import annotations

import gzip
import socket

import pytest
from http_driver import GOLDENS, request
from hypothesis import given
from hypothesis import strategies as st

from package_storage.registry.bodies import Body
from package_storage.registry.http.app import ASGIApp, accepts_gzip, etag_matches
from package_storage.registry.http.server import Listener, bind_socket

JSON_TARGETS = [
    "/",
    "/index.json",
    "/search",
    "/search?package=example",
    "/categories",
    "/categories?prerelease=true",
    "/package/example/1.0.0/",
]
GZIP = [("Accept-Encoding", "gzip, deflate, br")]


@pytest.mark.parametrize("target", JSON_TARGETS)
def test_plain_answer_is_unchanged_and_carries_etag_and_vary(setup_a: ASGIApp, target: str) -> None:
    plain = request(setup_a, target)
    assert plain.status == 200
    assert plain.header("content-encoding") is None
    assert plain.header("content-length") == str(len(plain.body))
    etag = plain.header("etag")
    assert etag is not None and etag.startswith('"') and etag.endswith('"')
    assert plain.header("vary") == "Accept-Encoding"
    # the reference's headers come first, in its order
    names = [k for k, _ in plain.headers]
    assert names[-2:] == ["etag", "vary"]
    assert request(setup_a, target).header("etag") == etag  # stable


def test_plain_answers_equal_the_goldens(setup_a: ASGIApp) -> None:
    assert (
        request(setup_a, "/search?kibana.version=8.0.0").body
        == (GOLDENS / "search-kibana800.json").read_bytes()
    )
    assert request(setup_a, "/categories").body == (GOLDENS / "categories.json").read_bytes()


@pytest.mark.parametrize("target", JSON_TARGETS)
def test_gzip_answer_decompresses_to_the_plain_body(setup_a: ASGIApp, target: str) -> None:
    plain = request(setup_a, target)
    packed = request(setup_a, target, headers=GZIP)
    assert packed.status == 200
    assert packed.header("vary") == "Accept-Encoding"
    if packed.header("content-encoding") == "gzip":
        assert gzip.decompress(packed.body) == plain.body
        assert packed.header("content-length") == str(len(packed.body))
        assert packed.header("etag") != plain.header("etag")
        assert packed.header("content-type") == "application/json"
    else:  # too small to gain anything: the plain answer
        assert packed.body == plain.body
    again = request(setup_a, target, headers=GZIP)
    assert again.body == packed.body  # computed once, the same bytes


def test_search_body_is_compressed_once(setup_a: ASGIApp, setup_a_index: object) -> None:
    first = request(setup_a, "/search?all=true", headers=GZIP)
    assert first.header("content-encoding") == "gzip"
    body = setup_a_index.search_body("all=true")  # type: ignore[attr-defined]
    assert isinstance(body, Body)
    assert body.gzipped() is body.gzipped()


@pytest.mark.parametrize("target", JSON_TARGETS)
@pytest.mark.parametrize("headers", [[], GZIP])
def test_if_none_match_gives_304(setup_a: ASGIApp, target: str, headers: list) -> None:
    full = request(setup_a, target, headers=headers)
    etag = full.header("etag")
    assert etag
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        answer = request(setup_a, target, headers=[*headers, ("If-None-Match", value)])
        assert answer.status == 304, value
        assert answer.body == b""
        assert answer.header("etag") == etag
        assert answer.header("vary") == "Accept-Encoding"
        assert answer.header("access-control-allow-origin") == "*"
        assert answer.values("cache-control") == full.values("cache-control")
        assert answer.header("content-length") is None
    stale = request(setup_a, target, headers=[*headers, ("If-None-Match", '"stale"')])
    assert stale.status == 200 and stale.body == full.body


def test_head_with_gzip_sends_headers_only(setup_a: ASGIApp) -> None:
    get = request(setup_a, "/search", headers=GZIP)
    head = request(setup_a, "/search", method="HEAD", headers=GZIP)
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") == get.header("content-length")
    assert head.header("etag") == get.header("etag")


def test_errors_carry_no_etag(setup_a: ASGIApp) -> None:
    answer = request(setup_a, "/search?prerelease=foo", headers=GZIP)
    assert answer.status == 400
    assert answer.header("etag") is None and answer.header("content-encoding") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"gzip", True),
        (b"GZIP", True),
        (b"deflate, gzip;q=0.5", True),
        (b"x-gzip", True),
        (b"*", True),
        (b"gzip;q=0", False),
        (b"gzip; q=0.000", False),
        (b"deflate, br", False),
        (b"identity", False),
        (b"gzip;q=bad", False),
        (b"", False),
    ],
)
def test_accepts_gzip(value: bytes, expected: bool) -> None:
    assert accepts_gzip(value) is expected


@given(st.binary(max_size=60))
def test_accepts_gzip_never_fails(value: bytes) -> None:
    assert accepts_gzip(value) in (True, False)


@given(st.lists(st.sampled_from(['"a"', 'W/"a"', '"b"', "*", " ", '"a-gzip"']), max_size=4))
def test_etag_matches(tags: list[str]) -> None:
    header = ", ".join(tags).encode()
    expected = any(t.strip() in ('"a"', 'W/"a"', "*") for t in tags)
    assert etag_matches(header, b'"a"') is expected


def test_body_gzip_is_deterministic_and_only_when_smaller() -> None:
    big = Body(b"[" + b'{"name":"x"},' * 200 + b"{}]")
    packed = big.gzipped()
    assert packed is not None and gzip.decompress(packed) == big
    assert Body(bytes(big)).gzipped() == packed  # no timestamp inside
    assert Body(bytes(big)).etag == big.etag
    assert Body(b"[]").gzipped() is None
    assert Body(b"[]") == b"[]"


# --- through a real server --------------------------------------------------------------------


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_real_server_gzip_and_304(setup_a: ASGIApp) -> None:
    from test_server import Running

    server = Running(Listener(setup_a, bind_socket("127.0.0.1:0")))
    try:
        answer = _exchange(
            server.port,
            b"GET /search?kibana.version=8.0.0 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        )
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"\r\ncontent-encoding: gzip" in head.lower()
        assert gzip.decompress(body) == (GOLDENS / "search-kibana800.json").read_bytes()
        etag = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"etag:")
        )
        answer = _exchange(
            server.port,
            b"GET /search?kibana.version=8.0.0 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nIf-None-Match: "
            + etag
            + b"\r\nConnection: close\r\n\r\n",
        )
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 304 Not Modified")
        assert body == b""
        assert b"transfer-encoding" not in head.lower()
    finally:
        server.stop()
