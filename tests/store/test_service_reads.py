"""Service reads added for the web UI: artifact records and documents, the revisions an event
made, a page of revisions, a diff over given revision entries, the reason of a tag."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_service import make_package

from package_storage.errors import InvalidInputError, NotFoundError
from package_storage.store.directory import Store
from package_storage.store.service import StoreService
from package_storage.store.storage.base import EventFilter, RevisionEntry


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[StoreService]:
    with Store.init(tmp_path / "store") as store:
        service = store.service("tester")
        for version in ("1.0.0", "1.1.0"):
            service.publish(make_package(tmp_path / "p", version))
        service.promote("hello_nginx", "1.0.0", to="staging")
        yield service


def test_artifact_and_its_docs(svc: StoreService) -> None:
    digest = svc.show("hello_nginx", "1.1.0")[0].digest
    assert digest is not None
    record = svc.artifact(digest)
    assert record.name == "hello_nginx" and record.manifest["title"] == "Hello NGINX"
    docs = svc.artifact_docs(digest)
    assert docs.changes_of("1.1.0")[0].description == "Release 1.1.0."
    assert docs.readme and docs.icon is not None
    with pytest.raises(NotFoundError, match="no artifact"):
        svc.artifact("0" * 64)
    with pytest.raises(InvalidInputError):
        svc.artifact_docs("nope")


def test_event_revisions(svc: StoreService) -> None:
    promote = svc.history(EventFilter(action="promote"))[0]
    event, made = svc.event_revisions(promote.id)
    assert event == promote
    assert {(r.distribution, r.number) for r in made} == {("staging", 1), ("snapshot", 3)}
    with pytest.raises(NotFoundError, match="no event 9999"):
        svc.event_revisions(9999)


def test_a_page_of_revisions(svc: StoreService) -> None:
    every = svc.revisions("snapshot")
    assert [r.number for r in every] == [1, 2, 3]
    assert [r.number for r in svc.revisions("snapshot", newest=2)] == [2, 3]
    assert [r.number for r in svc.revisions("snapshot", newest=2, skip=2)] == [1]
    assert svc.revisions("snapshot", newest=5, skip=9) == []
    page = svc.revisions("snapshot", newest=1)
    assert page[0].event_title == every[-1].event_title != ""


def test_diff_reads_revision_entries_where_it_is_told(svc: StoreService) -> None:
    asked: list[tuple[str, int]] = []

    def entries(distribution: str, number: int) -> list[RevisionEntry]:
        asked.append((distribution, number))
        return svc.catalog.revision_entries(distribution, number)

    plain = svc.diff("snapshot@1", "snapshot@3")
    told = svc.diff("snapshot@1", "snapshot@3", revision_entries=entries)
    assert plain == told and asked == [("snapshot", 1), ("snapshot", 3)]


def test_a_tag_records_its_reason(svc: StoreService) -> None:
    svc.tag("staging", "v1", reason="first staging cut")
    event = svc.history(EventFilter(action="tag"))[-1]
    assert event.reason == "first staging cut"
    svc.tag("staging", "v2")
    assert svc.history(EventFilter(action="tag"))[-1].reason is None
