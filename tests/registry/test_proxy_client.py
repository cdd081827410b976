"""The upstream client of the proxy mode against a canned upstream on loopback: the
reference's retry policy, bounded attempts, the pause after a failure and the recovery."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from package_storage.errors import UpstreamError
from package_storage.registry.proxy_client import Upstream, UpstreamOptions, UpstreamUnavailable
from proxy_upstream import CannedUpstream, wait_until

FAST = UpstreamOptions(timeout=0.5, retries=2, wait_min=0.01, wait_max=0.04, pause=0.3)


@pytest.fixture
def upstream() -> Iterator[CannedUpstream]:
    routes = {
        "/moved": (302, {"location": "/search"}, b""),
        "/package/x/1.0.0/": (200, {"content-type": "application/json"}, b"{}"),
    }
    with CannedUpstream(routes=routes, hang_seconds=3.0) as canned:
        yield canned


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_5xx_is_retried_then_answers(upstream: CannedUpstream) -> None:
    upstream.mode = "fail:2"
    client = Upstream(upstream.url, FAST)
    entries = run(client.search("/search", "all=true"))
    assert [e.name for e in entries] == ["nginx", "datasources"]
    assert upstream.seen == ["/search?all=true"] * 3


def test_attempts_are_bounded_then_paused(
    upstream: CannedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.mode = "fail"
    client = Upstream(upstream.url, FAST)
    with caplog.at_level(logging.WARNING), pytest.raises(UpstreamError, match="3 attempts"):
        run(client.categories("/categories", ""))
    assert upstream.count("/categories") == 3
    assert any("unavailable" in r.getMessage() for r in caplog.records)
    with pytest.raises(UpstreamUnavailable):
        run(client.categories("/categories", ""))
    assert upstream.count("/categories") == 3  # paused: not asked again
    upstream.mode = "ok"

    def answers() -> bool:
        try:
            return len(run(client.categories("/categories", ""))) == 2
        except UpstreamUnavailable:
            return False

    assert wait_until(answers)
    assert not client.down


def test_non_json_success_is_retried(upstream: CannedUpstream) -> None:
    upstream.mode = "text"
    with pytest.raises(UpstreamError, match="unexpected content type: text/html"):
        run(Upstream(upstream.url, FAST).search("/search", ""))
    assert upstream.count("/search") == 3


def test_time_outs_are_retried_and_bounded(upstream: CannedUpstream) -> None:
    upstream.mode = "hang"
    options = UpstreamOptions(timeout=0.2, retries=1, wait_min=0.01, wait_max=0.01, pause=1.0)
    with pytest.raises(UpstreamError, match=r"2 attempts.*Timeout"):
        run(Upstream(upstream.url, options).search("/search", ""))
    assert upstream.count("/search") == 2


def test_redirects_are_followed_and_404_is_none(upstream: CannedUpstream) -> None:
    client = Upstream(upstream.url, FAST)
    assert len(run(client.search("/moved", ""))) == 2
    assert run(client.package("absent", "1.0.0")) is None
    assert upstream.count("/package/absent/1.0.0/") == 1  # a 404 is not retried
    with pytest.raises(UpstreamError, match="no package name"):
        run(client.package("x", "1.0.0"))


def test_strict_client_is_never_paused(upstream: CannedUpstream) -> None:
    upstream.mode = "fail:3"
    client = Upstream(upstream.url, FAST, strict=True)
    with pytest.raises(UpstreamError):
        run(client.search("/search", ""))
    assert len(run(client.search("/search", ""))) == 2  # asked again at once


def test_the_origin_alone_is_used_and_user_info_kept_out_of_logs() -> None:
    client = Upstream("https://user:secret@registry.example:8443/some/path?q=1")
    assert client.url("/search", "all=true") == (
        "https://user:secret@registry.example:8443/search?all=true"
    )
    assert client.shown == "https://registry.example:8443"
