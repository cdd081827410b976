"""The whole-repository migration (``transfer/history.py``) on a GENERATED package-storage git
repository (``tests/git_history.py``): legacy branches, tags, a merge, a few hundred commits.

What is proved: every first-parent commit becomes a revision whose own-stage entries are exactly
``git ls-tree`` of that commit (production, which sees nothing, serves exactly that); the
commit's time, author and subject are its event; ``DIST@<commit>`` resolves in commands and
over HTTP; tags name the state of their commit; legacy branches become frozen stages of their
own; layered distributions get revisions in commit-time order; a rerun changes nothing;
``--validation none`` imports what today's rules refuse and records it.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from git_history import HistoryRepo, first_parents, ls_tree_versions, make_history_repo
from package_storage.errors import InvalidInputError, NotFoundError
from package_storage.registry.http.app import AppOptions, create_app
from package_storage.serving.store_registry import StoreRegistry
from package_storage.store.directory import Store
from package_storage.store.service import event_title
from package_storage.store.storage.base import EventFilter
from package_storage.transfer.history import HistoryReport, git_branches, import_git_history
from package_storage.transfer.importer import ImportOptions

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")

REPORT = ImportOptions(workers=0, on_invalid="report", batch_size=50)
OPTIONS = AppOptions(
    cache_time_index=1.0, cache_time_search=1.0, cache_time_categories=1.0, cache_time_catch_all=1.0
)
REJECTED = {("exp-1", "0.1.0"), ("exp-2", "0.1.0"), ("exp-3", "0.1.0")}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> HistoryRepo:
    return make_history_repo(tmp_path_factory.mktemp("history"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.init(tmp_path / "store") as s:
        yield s


def run(store: Store, repo: HistoryRepo, *, history: bool = True, **kw: Any) -> HistoryReport:
    options = kw.pop("options", REPORT)
    service = store.service("importer")
    pairs = git_branches(repo.path, service.catalog.stages())
    return import_git_history(service, repo.path, pairs, history=history, options=options, **kw)


def own(store: Store, stage: str, number: int) -> set[tuple[str, str]]:
    return {
        (e.name, e.version)
        for e in store.catalog.revision_entries(stage, number)
        if e.stage == stage
    }


def get(app: Any, target: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(target)

    return asyncio.run(go())


def search(app: Any, prefix: str) -> set[tuple[str, str]]:
    r = get(app, f"{prefix}/search?all=true&prerelease=true")
    assert r.status_code == 200, (prefix, r.status_code, r.text)
    return {(e["name"], e["version"]) for e in r.json()}


def test_every_commit_is_a_revision_serving_exactly_its_tree(
    store: Store, repo: HistoryRepo
) -> None:
    report = run(store, repo)
    assert not report.stopped
    assert {(r.name, r.version) for r in report.rejected} == REJECTED
    assert all("dataset-invalid" in r.reason for r in report.rejected)
    assert {b.stage: b.recorded for b in report.branches} == repo.commits
    assert report.steps == sum(repo.commits.values())
    assert report.built < report.trees + 1 and report.batches > 1
    for stage, count in repo.commits.items():
        commits = first_parents(repo.path, stage)
        assert len(commits) == count
        for commit in commits:
            (rev,) = store.catalog.revisions_by_commit(stage, commit)
            expected = {(n, v) for n, v, _ in ls_tree_versions(repo.path, commit)} - REJECTED
            assert own(store, stage, rev.number) == expected, (stage, commit)
    # production sees nothing: each of its revisions serves exactly the commit's tree, and
    # every artifact records the git tree it was built from
    for commit in first_parents(repo.path, "production"):
        (rev,) = store.catalog.revisions_by_commit("production", commit)
        entries = store.catalog.revision_entries("production", rev.number)
        trees = {
            (e.name, e.version, store.catalog.get_artifact(e.artifact).manifest["fingerprint"])  # type: ignore[union-attr]
            for e in entries
        }
        assert trees == {(n, v, f"git-tree:{t}") for n, v, t in ls_tree_versions(repo.path, commit)}
    assert store.catalog.check(deep=True) == []


def test_commit_events_tags_legacy_stages_and_layers(store: Store, repo: HistoryRepo) -> None:
    report = run(store, repo)
    # the commit's time, author and subject are the event
    commits = first_parents(repo.path, "snapshot")
    events = store.catalog.events(EventFilter(stage="snapshot", action="commit"))
    assert [e.detail["commit"] for e in events] == commits
    first = events[0]
    assert event_title(first) == "[snapshot] Update pkg_000 to 3.0.0 (#1000)"
    assert first.actor == "Author 0"
    assert first.time == datetime(2020, 1, 1, 0, 0, 3, tzinfo=UTC)  # the commit's time
    imports = store.catalog.events(EventFilter(name="pkg_000", version="3.0.0", action="import"))
    assert imports[0].detail["commit"] == commits[0] and imports[0].actor == "Author 0"
    removed = store.catalog.events(EventFilter(stage="snapshot", action="remove"))
    assert removed and all(e.detail["history"] for e in removed)
    # layered: snapshot's revisions follow the commits of all three branches in time order
    times = [r.created for r in store.catalog.revisions("snapshot")]
    assert (
        len(times)
        == repo.commits["snapshot"] + repo.commits["staging"] + repo.commits["production"]
    )
    stamps = {
        e.detail["commit"]: e.time for e in store.catalog.events(EventFilter(action="commit"))
    }
    snap_commits = [r.commit for r in store.catalog.revisions("snapshot")]
    ordered = [stamps[c] for c in snap_commits if c is not None]
    assert ordered == sorted(ordered)
    # tags name the state of their commit; the tag off the first-parent line is reported
    by_tag = {t.tag: t for t in report.tags}
    assert by_tag["7.9.0"].status == "created" and by_tag["7.9.0"].distribution == "production"
    assert by_tag["v1"].distribution == "staging"
    assert by_tag["side"].status == "refused" and "first-parent" in by_tag["side"].reason
    tagged = store.catalog.tag("production", "7.9.0")
    assert own(store, "production", tagged.revision) == {
        (n, v) for n, v, _ in ls_tree_versions(repo.path, "7.9.0")
    }
    # legacy branches: frozen stages of their own, seeing nothing, served
    graph = store.catalog.stages()
    for legacy in ("production-7.9", "experimental"):
        assert graph.stage(legacy).policy.frozen and graph.stage(legacy).sees == ()
        assert legacy in report.frozen
    app = create_app(StoreRegistry(store.catalog, store.blobs), OPTIONS)
    assert search(app, "/production-7.9") == {
        (n, v) for n, v, _ in ls_tree_versions(repo.path, "production-7.9")
    }
    assert search(app, "/experimental") == {("exp_ok", "0.1.0")}
    # DIST@<7-40 hex> over HTTP, as a tag, and refusals
    middle = first_parents(repo.path, "production")[10]
    expected = {(n, v) for n, v, _ in ls_tree_versions(repo.path, middle)}
    assert search(app, f"/production@{middle[:7]}") == expected
    assert search(app, f"/production@{middle}") == expected
    assert search(app, "/production@7.9.0") == own(store, "production", tagged.revision)
    # staging sees production: its revision after that production commit is served too
    assert expected <= search(app, f"/staging@{middle[:7]}")
    assert get(app, f"/production-7.9@{middle[:7]}/search").status_code == 404
    assert get(app, "/production@abcdef0/search").status_code == 404


def test_commit_ids_in_commands(store: Store, repo: HistoryRepo) -> None:
    run(store, repo)
    service = store.service("me")
    commits = first_parents(repo.path, "production")
    rev = service.resolve_revision("production", commits[5][:8])
    assert rev.commit == commits[5]
    listed = service.list_entries(distribution="production", revision=commits[5][:10])
    assert {(e.name, e.version) for e in listed} == {
        (n, v) for n, v, _ in ls_tree_versions(repo.path, commits[5])
    }
    with pytest.raises(NotFoundError):
        service.resolve_revision("production", "0000000")
    result = service.rollback("production", commits[5][:12], reason="back to an old commit")
    assert result.changed
    current = store.catalog.current_revision("production")
    assert current is not None and current.commit == commits[5]


def test_a_rerun_changes_nothing_and_frozen_legacy_stages_are_left_alone(
    store: Store, repo: HistoryRepo
) -> None:
    run(store, repo)
    before = (
        store.catalog.change_counter(),
        {d: len(store.catalog.revisions(d)) for d in store.catalog.stages().names},
    )
    again = run(store, repo)
    assert again.steps == 0 and again.built == 0
    assert {b.stage: b.already for b in again.branches} == {
        s: n for s, n in repo.commits.items() if s not in ("production-7.9", "experimental")
    }
    assert sorted(again.left_frozen) == ["experimental", "production-7.9"]
    assert {t.status for t in again.tags if t.tag in ("7.9.0", "v1", "snap-1")} == {"exists"}
    after = (
        store.catalog.change_counter(),
        {d: len(store.catalog.revisions(d)) for d in store.catalog.stages().names},
    )
    assert after == before


def test_tips_and_tagged_commits_without_history(store: Store, repo: HistoryRepo) -> None:
    report = run(store, repo, history=False)
    production = {b.stage: b for b in report.branches}["production"]
    assert (production.selected, production.recorded) == (2, 2)  # 7.9.0 and the tip
    tagged = store.catalog.tag("production", "7.9.0")
    assert own(store, "production", tagged.revision) == {
        (n, v) for n, v, _ in ls_tree_versions(repo.path, "7.9.0")
    }
    current = store.catalog.current_revision("production")
    assert current is not None
    assert own(store, "production", current.number) == {
        (n, v) for n, v, _ in ls_tree_versions(repo.path, "production")
    }


def test_validation_none_imports_historic_content_and_records_it(
    store: Store, repo: HistoryRepo
) -> None:
    stop = ImportOptions(workers=0, on_invalid="stop")
    refused = run(store, repo, options=stop)
    assert refused.stopped and refused.steps == 0
    assert {(r.name, r.version) for r in refused.rejected} == REJECTED
    assert store.catalog.distributions() == {}  # nothing recorded
    report = run(store, repo, options=ImportOptions(workers=0, validation="none"))
    assert not report.rejected and not report.stopped
    app = create_app(StoreRegistry(store.catalog, store.blobs), OPTIONS)
    assert search(app, "/experimental") == {("exp_ok", "0.1.0"), *REJECTED}
    events = store.catalog.events(EventFilter(stage="experimental", action="import"))
    assert {e.detail["validation"] for e in events} == {"none"}
    commits = store.catalog.events(EventFilter(stage="experimental", action="commit"))
    assert {e.detail["validation"] for e in commits} == {"none"}


def test_an_abbreviation_of_two_commits_is_ambiguous(store: Store) -> None:
    with store.catalog.transaction() as tx:
        tx.new_revision("production", commit="abcdef0" + "1" * 33)
        tx.advance()
        tx.new_revision("production", commit="abcdef0" + "2" * 33)
    service = store.service("me")
    with pytest.raises(InvalidInputError, match="ambiguous: it abbreviates 2 commits"):
        service.resolve_revision("production", "abcdef0")
    assert service.resolve_revision("production", "abcdef02").number == 2
    with pytest.raises(NotFoundError):
        service.resolve_revision("production", "abcdef")  # 6 digits: no commit id
    app = create_app(StoreRegistry(store.catalog, store.blobs), OPTIONS)
    assert get(app, "/production@abcdef0/search").status_code == 404
    assert get(app, "/production@abcdef01/search").status_code == 200
