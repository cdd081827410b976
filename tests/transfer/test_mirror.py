"""``transfer.mirror``: a stage filled from a real package-storage server on loopback (and from
a flaky forwarding server in front of it that answers 503 or drops connections)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror_upstream import FlakyProxy, make_upstream, publish, serve, wait_for
from package_storage.errors import InvalidInputError, NotFoundError, PolicyError, UpstreamError
from package_storage.packages.signing import generate_key, load_public_key, public_key_of
from package_storage.store.directory import Store
from package_storage.store.keyring import StoreKeyring
from package_storage.store.service import StoreService, event_title
from package_storage.store.stages import Stage
from package_storage.store.storage.base import EventFilter
from package_storage.transfer.mirror import (
    MirrorFilter,
    MirrorOptions,
    _entries,
    list_upstream,
    mirror,
)

VERSIONS = ("hello_nginx/1.0.0", "hello_nginx/1.1.0", "acme_input/1.0.0")
FAST = MirrorOptions(backoff=0.01, workers=4)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("upstream")
    store = make_upstream(root / "store", *VERSIONS)
    with serve(store) as base:
        yield base + "/snapshot", root / "upstream.asc"


@pytest.fixture
def down(tmp_path: Path) -> Iterator[tuple[StoreService, StoreKeyring]]:
    with Store.open(tmp_path / "down", create=True) as store:
        yield store.service(), StoreKeyring(tmp_path / "down")


def held(service: StoreService, stage: str = "production") -> list[str]:
    return sorted(f"{e.name}-{e.version}" for e in service.catalog.entries(stage))


def test_mirror_fills_a_stage_with_the_upstream_bytes_as_mirror_events(
    upstream: tuple[str, Path], down: tuple[StoreService, StoreKeyring]
) -> None:
    url, _ = upstream
    service, keyring = down
    report = mirror(service, url, "production", options=FAST, keyring=keyring)
    assert report.ok and report.new == 3 and not report.present
    assert held(service) == ["acme_input-1.0.0", "hello_nginx-1.0.0", "hello_nginx-1.1.0"]
    # the same bytes as upstream, with the upstream's signature
    zip_url = f"{url}/epr/hello_nginx/hello_nginx-1.1.0.zip"
    upstream_digest = hashlib.sha256(httpx.get(zip_url).content).hexdigest()
    entry = service.catalog.get_entry("production", "hello_nginx", "1.1.0")
    assert entry is not None and entry.artifact == upstream_digest
    record = service.catalog.get_artifact(entry.artifact)
    assert record is not None and record.signature_digest is not None
    sig = service.blobs.get(record.signature_digest)
    assert sig == httpx.get(zip_url + ".sig").content
    events = service.catalog.events(EventFilter(action="mirror"))
    assert len(events) == 3
    assert {e.detail["upstream"] for e in events} == {url}
    assert {e.detail["location"] for e in events} >= {zip_url}
    titles = {event_title(e) for e in events}
    assert f"[production] Mirror hello_nginx-1.1.0 from {url}" in titles
    assert report.downloaded_bytes == sum(
        service.catalog.get_artifact(e.artifact).size  # type: ignore[union-attr]
        for e in service.catalog.entries("production")
    )


def test_filters_select_by_package_and_latest(upstream: tuple[str, Path]) -> None:
    url, _ = upstream
    with httpx.Client() as client:
        every = list_upstream(client, url, MirrorFilter())
        assert [(v.name, v.version) for v in every] == [
            ("acme_input", "1.0.0"),
            ("hello_nginx", "1.0.0"),
            ("hello_nginx", "1.1.0"),
        ]
        latest = list_upstream(client, url, MirrorFilter(packages=("hello_nginx",), latest=1))
        assert [(v.name, v.version) for v in latest] == [("hello_nginx", "1.1.0")]
        both = list_upstream(client, url, MirrorFilter(packages=("hello_nginx", "acme_input")))
        assert len(both) == 3
        assert every[0].url == f"{url}/epr/acme_input/acme_input-1.0.0.zip"
        assert every[0].signature_url == every[0].url + ".sig"


def test_dry_run_lists_and_changes_nothing(
    upstream: tuple[str, Path], down: tuple[StoreService, StoreKeyring]
) -> None:
    url, _ = upstream
    service, _keyring = down
    opts = MirrorOptions(dry_run=True)
    report = mirror(service, url, "snapshot", MirrorFilter(packages=("acme_input",)), opts)
    assert [v.name for v in report.to_fetch] == ["acme_input"]
    assert held(service, "snapshot") == [] and report.imported is None


def test_a_verify_key_accepts_the_upstream_signatures_and_refuses_others(
    upstream: tuple[str, Path], down: tuple[StoreService, StoreKeyring]
) -> None:
    url, key_file = upstream
    service, keyring = down
    good = load_public_key(key_file.read_text())
    other = public_key_of(generate_key("Someone Else <else@example.com>"))
    only = MirrorFilter(packages=("acme_input",))
    refused = mirror(
        service, url, "snapshot", only, MirrorOptions(verify_key=other), keyring=keyring
    )
    assert not refused.ok and [v.name for v, _ in refused.refused] == ["acme_input"]
    assert "signature refused" in refused.refused[0][1]
    assert held(service, "snapshot") == []
    accepted = mirror(service, url, "snapshot", only, MirrorOptions(verify_key=good))
    assert accepted.ok and accepted.new == 1
    assert held(service, "snapshot") == ["acme_input-1.0.0"]


def test_an_unsigned_upstream_is_refused_with_a_verify_key(
    tmp_path: Path, down: tuple[StoreService, StoreKeyring]
) -> None:
    service, _ = down
    store = make_upstream(tmp_path / "plain", "acme_input/1.0.0", signed=False)
    key = public_key_of(generate_key("K <k@example.com>"))
    with serve(store) as base:
        report = mirror(
            service, base + "/snapshot", "snapshot", options=MirrorOptions(verify_key=key)
        )
    assert [why for _, why in report.refused] == [
        "signature refused: the upstream has no signature for it (--verify-key)"
    ]
    assert held(service, "snapshot") == []


def test_a_frozen_or_unknown_stage_refuses_before_any_request(
    down: tuple[StoreService, StoreKeyring],
) -> None:
    service, _ = down
    nowhere = "http://127.0.0.1:9/production"  # nothing listens: a request would fail
    with pytest.raises(NotFoundError):
        mirror(service, nowhere, "qa")
    service.add_stage(Stage("archive", rank=200), reason="test")
    service.freeze_stage("archive", reason="test")
    with pytest.raises(PolicyError, match="frozen"):
        mirror(service, nowhere, "archive")
    with pytest.raises(InvalidInputError, match="not an http"):
        mirror(service, "ftp://example/", "snapshot")


def test_503s_and_dropped_connections_are_retried(
    upstream: tuple[str, Path], down: tuple[StoreService, StoreKeyring]
) -> None:
    url, _ = upstream
    service, _keyring = down
    base, _, prefix = url.rpartition("/")

    def policy(path: str, count: int) -> str:
        if path.endswith(".zip"):
            return "503" if count < 2 else "ok"
        if path.endswith(".sig"):
            return "drop" if count < 1 else "ok"
        return "503" if count < 1 else "ok"  # the search too

    with FlakyProxy(base, policy) as proxy:
        report = mirror(service, f"{proxy.url}/{prefix}", "production", options=FAST)
        assert report.ok and report.new == 3, report.failed
        assert proxy.asked(".zip") == 9 and proxy.asked(".sig") == 6


def test_an_upstream_failing_mid_way_keeps_what_arrived_and_a_rerun_fetches_the_rest(
    tmp_path: Path, down: tuple[StoreService, StoreKeyring]
) -> None:
    service, _keyring = down
    store = make_upstream(tmp_path / "up", "hello_nginx/1.0.0", "acme_input/1.0.0")
    with serve(store) as base:

        def policy(path: str, count: int) -> str:  # hello_nginx never arrives
            return "drop" if "hello_nginx" in path and path.endswith(".zip") else "ok"

        with FlakyProxy(base, policy) as proxy:
            opts = MirrorOptions(backoff=0.01, retries=2)
            broken = mirror(service, proxy.url + "/snapshot", "production", options=opts)
            assert proxy.asked("hello_nginx-1.0.0.zip") == 3  # bounded: 1 + 2 retries
        assert not broken.ok and [v.name for v, _ in broken.failed] == ["hello_nginx"]
        assert "gave up after 3 attempts" in broken.failed[0][1]
        assert held(service) == ["acme_input-1.0.0"]  # what arrived is recorded

        publish(store, "hello_nginx/1.1.0")
        wait_for(base + "/snapshot/search?all=true", 3)
        again = mirror(service, base + "/snapshot", "production", options=FAST)
        assert again.ok and again.new == 2 and len(again.present) == 1
        assert [(v.name, v.version) for v in again.to_fetch] == [
            ("hello_nginx", "1.0.0"),
            ("hello_nginx", "1.1.0"),
        ]
        third = mirror(service, base + "/snapshot", "production", options=FAST)
        assert third.ok and third.new == 0 and len(third.present) == 3 and third.imported is None
    assert held(service) == ["acme_input-1.0.0", "hello_nginx-1.0.0", "hello_nginx-1.1.0"]


def test_a_4xx_is_not_retried(
    upstream: tuple[str, Path], down: tuple[StoreService, StoreKeyring]
) -> None:
    url, _ = upstream
    service, _ = down
    with pytest.raises(Exception, match="HTTP 404"):
        mirror(service, url.rpartition("/")[0] + "/nope", "production", options=FAST)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
entries = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.text(max_size=6),
            "version": st.text(max_size=6),
            "download": st.text(max_size=12),
        },
        optional={"signature_path": json_values},
    ),
    max_size=4,
)


@given(st.one_of(json_values, entries))
def test_the_search_answer_parser_takes_entries_or_refuses_in_one_line(value: object) -> None:
    body = json.dumps(value).encode()
    try:
        found = _entries("http://up/production", body, "http://up/production/search")
    except UpstreamError as exc:
        assert "\n" not in exc.message and exc.message.startswith("http://up/production/search")
        return
    assert isinstance(value, list) and len(found) == len(value)
    for entry, remote in zip(value, found, strict=True):
        assert remote.url == "http://up/production" + entry["download"]
        assert entry["download"].startswith("/")
