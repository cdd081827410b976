"""plan_response with an entity tag (files of immutable store revisions) and without one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from package_storage.registry.http.static import (
    BytesContent,
    FileContent,
    plan_response,
)

ETAG = '"abc123"'
MTIME = 1_700_000_000.0


def plan(
    headers: dict[str, str], etag: str | None = ETAG, method: str = "GET"
) -> tuple[int, dict[bytes, bytes]]:
    planned = plan_response(
        method=method,
        request_headers=headers,
        name="x.zip",
        content=BytesContent(b"0123456789"),
        mtime=MTIME,
        headers=[],
        etag=etag,
    )
    return planned.status, dict(planned.headers)


def test_the_etag_is_sent_with_every_answer() -> None:
    assert plan({}) == (200, plan({})[1])
    assert plan({})[1][b"etag"] == ETAG.encode()
    status, headers = plan({"range": "bytes=0-1"})
    assert status == 206 and headers[b"etag"] == ETAG.encode()


@pytest.mark.parametrize("value", [ETAG, f"W/{ETAG}", f'"other", {ETAG}', "*", f" {ETAG} "])
def test_if_none_match_naming_the_tag_answers_304(value: str) -> None:
    status, headers = plan({"if-none-match": value})
    assert status == 304 and headers[b"etag"] == ETAG.encode()
    # not for other methods: 412
    assert plan({"if-none-match": value}, method="POST")[0] == 412


@pytest.mark.parametrize("value", ['"other"', 'W/"other"', "garbage"])
def test_if_none_match_naming_another_tag_answers_200(value: str) -> None:
    assert plan({"if-none-match": value})[0] == 200


def test_if_match_compares_strongly() -> None:
    assert plan({"if-match": ETAG})[0] == 200
    assert plan({"if-match": f"W/{ETAG}"})[0] == 412
    assert plan({"if-match": '"other"'})[0] == 412


def test_if_range_with_the_tag_keeps_the_range_another_tag_drops_it() -> None:
    assert plan({"range": "bytes=0-1", "if-range": ETAG})[0] == 206
    assert plan({"range": "bytes=0-1", "if-range": '"other"'})[0] == 200
    assert plan({"range": "bytes=0-1", "if-range": f"W/{ETAG}"})[0] == 200


def test_without_an_etag_nothing_changes() -> None:
    """Plain EPR files carry no ETag (as the reference's): tags never match but ``*``."""
    status, headers = plan({}, etag=None)
    assert status == 200 and b"etag" not in headers
    assert plan({"if-none-match": '"abc123"'}, etag=None)[0] == 200
    assert plan({"if-none-match": "*"}, etag=None)[0] == 304
    assert plan({"if-match": '"abc123"'}, etag=None)[0] == 412


def test_an_immutable_file_maps(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(200_000))
    content = FileContent.open(str(path), immutable=True)
    try:
        mapped = content.mapped()
        assert mapped is not None and mapped[:10] == path.read_bytes()[:10]
        mapped.close()
    finally:
        content.close()
    assert content.mapped() is None  # closed
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    content = FileContent.open(str(empty), immutable=True)
    assert content.mapped() is None
    content.close()
