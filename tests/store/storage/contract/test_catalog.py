"""Catalog contract: runs against every catalog backend (see conftest.py)."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from datetime import UTC, datetime, timedelta

import pytest

from package_storage.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StorageError,
)
from package_storage.store.stages import StageGraph
from package_storage.store.storage.base import (
    ArtifactRecord,
    Catalog,
    EventFilter,
    RevisionEntry,
    content_digest,
)

from .conftest import CatalogFactory
from .workers import (
    concurrent_publisher,
    digest_of,
    hold_transaction,
    publish,
    publish_and_promote_forever,
)

SPAWN = multiprocessing.get_context("spawn")


def add(cat: Catalog, stage: str, name: str, version: str, content: str | None = None) -> str:
    """Put ``name version`` (artifact = digest of ``content``) into ``stage`` in one tx."""
    digest = digest_of(content or f"{name}-{version}")
    with cat.transaction() as tx:
        tx.add_artifact(ArtifactRecord(digest, 42, name, version))
        tx.put_entry(stage, name, version, digest, actor="tester")
    return digest


def served(cat: Catalog, dist: str, number: int) -> set[tuple[str, str, str]]:
    return {(e.name, e.version, e.artifact) for e in cat.revision_entries(dist, number)}


# --- fresh store and stages --------------------------------------------------------------------


def test_fresh_store(catalog: Catalog) -> None:
    assert catalog.stages() == StageGraph.default()
    assert catalog.distributions() == {}
    assert catalog.current_revision("production") is None
    assert catalog.events() == []
    assert catalog.tags() == []
    assert catalog.entries("snapshot") == []
    assert catalog.check(deep=True) == []


def test_reopen_keeps_state(catalog_factory: CatalogFactory) -> None:
    first = catalog_factory()
    graph = StageGraph.default().with_frozen_stage("production-7.9")
    with first.transaction() as tx:
        tx.set_stages(graph)
    add(first, "snapshot", "apache", "1.0.0")
    counter = first.change_counter()
    first.close()
    second = catalog_factory()
    try:
        assert second.stages() == graph
        assert second.get_entry("snapshot", "apache", "1.0.0") is not None
        assert second.change_counter() == counter
    finally:
        second.close()


def test_set_stages_refuses_dropping_a_used_stage(catalog: Catalog) -> None:
    add(catalog, "staging", "apache", "1.0.0")
    smaller = StageGraph(s for s in StageGraph.default() if s.name == "production")
    with (
        pytest.raises(ConflictError, match="stage staging still has package versions"),
        catalog.transaction() as tx,
    ):
        tx.set_stages(smaller)
    assert catalog.stages() == StageGraph.default()


# --- artifacts and entries ---------------------------------------------------------------------


def test_artifacts_are_idempotent(catalog: Catalog) -> None:
    d, sig = digest_of("zip"), digest_of("sig")
    with catalog.transaction() as tx:
        first = tx.add_artifact(ArtifactRecord(d, 5, "apache", "1.0.0", manifest={"t": "A"}))
        assert first.created == tx.time
        again = tx.add_artifact(ArtifactRecord(d, 5, "apache", "1.0.0"))
        assert again == first
        signed = tx.add_artifact(ArtifactRecord(d, 5, "apache", "1.0.0", signature_digest=sig))
        assert signed.signature_digest == sig
        assert signed.manifest == {"t": "A"}
    stored = catalog.get_artifact(d)
    assert stored is not None
    assert (stored.size, stored.name, stored.version) == (5, "apache", "1.0.0")
    assert stored.signature_digest == sig
    assert stored.created is not None and stored.created.tzinfo is not None
    assert catalog.get_artifact(digest_of("other")) is None
    assert catalog.referenced_blobs() == {d, sig}
    with pytest.raises(InvalidInputError, match="is not a sha256"), catalog.transaction() as tx:
        tx.add_artifact(ArtifactRecord("../etc/passwd", 1, "x", "1"))


def test_entry_crud(catalog: Catalog) -> None:
    a, b = digest_of("a"), digest_of("b")
    with catalog.transaction() as tx:
        tx.add_artifact(ArtifactRecord(a, 1, "apache", "1.0.0"))
        tx.add_artifact(ArtifactRecord(b, 1, "apache", "1.0.0"))
        assert tx.put_entry("snapshot", "apache", "1.0.0", a, actor="alice") is None
        assert tx.get_entry("snapshot", "apache", "1.0.0") is not None  # own writes visible
        same = tx.put_entry("snapshot", "apache", "1.0.0", a, actor="bob")
        assert same is not None and same.artifact == a and same.added_by == "alice"
    with catalog.transaction() as tx:
        previous = tx.put_entry("snapshot", "apache", "1.0.0", b, actor="bob")
        assert previous is not None and previous.artifact == a
        tx.put_entry("snapshot", "apache", "0.9.0", a, actor="bob")
        tx.put_entry("snapshot", "nginx", "2.0.0", a, actor="bob")
        tx.put_entry("staging", "apache", "1.0.0", a, actor="carol")
    entry = catalog.get_entry("snapshot", "apache", "1.0.0")
    assert entry is not None
    assert (entry.stage, entry.artifact, entry.added_by) == ("snapshot", b, "bob")
    assert entry.added_at.tzinfo is not None
    assert [(e.name, e.version) for e in catalog.entries("snapshot")] == [
        ("apache", "0.9.0"),
        ("apache", "1.0.0"),
        ("nginx", "2.0.0"),
    ]
    assert [e.version for e in catalog.entries("snapshot", "apache")] == ["0.9.0", "1.0.0"]
    found = catalog.find_entries("apache", "1.0.0")
    assert sorted((e.stage, e.artifact) for e in found) == [("snapshot", b), ("staging", a)]
    assert len(catalog.find_entries("apache")) == 3
    with catalog.transaction() as tx:
        removed = tx.delete_entry("snapshot", "apache", "1.0.0")
        assert removed.artifact == b
        assert tx.get_entry("snapshot", "apache", "1.0.0") is None
    assert catalog.get_entry("snapshot", "apache", "1.0.0") is None
    with (
        pytest.raises(NotFoundError, match=r"stage snapshot has no apache 1\.0\.0"),
        catalog.transaction() as tx,
    ):
        tx.delete_entry("snapshot", "apache", "1.0.0")


def test_entry_errors(catalog: Catalog) -> None:
    d = digest_of("a")
    with (
        pytest.raises(NotFoundError, match="add_artifact before put_entry"),
        catalog.transaction() as tx,
    ):
        tx.put_entry("snapshot", "apache", "1.0.0", d, actor="x")
    with (
        pytest.raises(NotFoundError, match="stage nowhere does not exist"),
        catalog.transaction() as tx,
    ):
        tx.add_artifact(ArtifactRecord(d, 1, "apache", "1.0.0"))
        tx.put_entry("nowhere", "apache", "1.0.0", d, actor="x")
    assert catalog.get_artifact(d) is None  # rolled back with the failed transaction


def test_add_and_remove_in_one_transaction_leaves_no_trace(catalog: Catalog) -> None:
    d = digest_of("a")
    with catalog.transaction() as tx:
        tx.add_artifact(ArtifactRecord(d, 1, "apache", "1.0.0"))
        tx.put_entry("snapshot", "apache", "1.0.0", d, actor="x")
        tx.delete_entry("snapshot", "apache", "1.0.0")
        tx.put_entry("snapshot", "apache", "1.0.0", d, actor="y")
        tx.new_revision("snapshot")
    assert [e.added_by for e in catalog.find_entries("apache")] == ["y"]
    assert catalog.check(deep=True) == []


# --- transactions ------------------------------------------------------------------------------


def test_exception_rolls_back_everything(catalog: Catalog) -> None:
    add(catalog, "snapshot", "apache", "1.0.0")
    with catalog.transaction() as tx:
        tx.new_revision("snapshot")
    counter = catalog.change_counter()
    before = catalog.revisions("snapshot")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), catalog.transaction() as tx:
        d = digest_of("new")
        tx.add_artifact(ArtifactRecord(d, 1, "nginx", "1.0.0"))
        tx.put_entry("snapshot", "nginx", "1.0.0", d, actor="x")
        tx.delete_entry("snapshot", "apache", "1.0.0")
        tx.record_event("publish", actor="x")
        rev = tx.new_revision("snapshot")
        tx.add_tag("snapshot", "oops", rev.number, actor="x")
        tx.set_stages(StageGraph.default().with_frozen_stage("old"))
        raise Boom
    assert catalog.change_counter() == counter
    assert catalog.revisions("snapshot") == before
    assert catalog.get_artifact(digest_of("new")) is None
    assert catalog.get_entry("snapshot", "apache", "1.0.0") is not None
    assert catalog.get_entry("snapshot", "nginx", "1.0.0") is None
    assert catalog.events() == []
    assert catalog.tags() == []
    assert catalog.stages() == StageGraph.default()


def test_change_counter_and_last_change(catalog: Catalog) -> None:
    c0 = catalog.change_counter()
    with catalog.transaction() as tx:
        tx.get_entry("snapshot", "a", "1")  # read-only: not a change
    assert catalog.change_counter() == c0
    add(catalog, "snapshot", "apache", "1.0.0")
    c1 = catalog.change_counter()
    assert c1 > c0
    last = catalog.last_change()
    assert last is not None and last.tzinfo is not None
    assert abs(datetime.now(UTC) - last) < timedelta(minutes=5)
    with catalog.transaction() as tx:
        assert tx.seq == c1 + 1
        tx.record_event("note", actor="x")
    assert catalog.change_counter() == c1 + 1


def test_entry_changes_after_a_revision_are_refused(catalog: Catalog) -> None:
    d = add(catalog, "snapshot", "apache", "1.0.0")
    with pytest.raises(StorageError, match="change entries first"), catalog.transaction() as tx:
        tx.new_revision("snapshot")
        tx.put_entry("snapshot", "apache", "2.0.0", d, actor="x")
    assert catalog.revisions("snapshot") == []


# --- revisions ---------------------------------------------------------------------------------


def test_revisions_are_numbered_immutable_and_digested(catalog: Catalog) -> None:
    a1 = add(catalog, "snapshot", "apache", "1.0.0")
    with catalog.transaction() as tx:
        r1 = tx.new_revision("snapshot")
    assert (r1.number, r1.current, r1.count) == (1, True, 1)
    assert r1.stages == ("production", "staging", "snapshot")
    assert r1.server_version
    add(catalog, "snapshot", "nginx", "1.0.0")
    a1b = add(catalog, "snapshot", "apache", "1.0.0", content="apache rebuilt")
    with catalog.transaction() as tx:
        tx.delete_entry("snapshot", "nginx", "1.0.0")
        r2 = tx.new_revision("snapshot")
    assert r2.number == 2
    assert served(catalog, "snapshot", 1) == {("apache", "1.0.0", a1)}
    assert served(catalog, "snapshot", 2) == {("apache", "1.0.0", a1b)}
    assert r1.digest == content_digest(served(catalog, "snapshot", 1))
    assert r2.digest == content_digest(served(catalog, "snapshot", 2))
    assert r1.digest != r2.digest
    stored = catalog.revision("snapshot", 1)
    assert (stored.digest, stored.seq, stored.stages, stored.count) == (
        r1.digest,
        r1.seq,
        r1.stages,
        r1.count,
    )
    assert stored.current is False
    assert catalog.current_revision("snapshot") == catalog.revision("snapshot", 2)
    assert [r.number for r in catalog.revisions("snapshot")] == [1, 2]
    with pytest.raises(NotFoundError, match="distribution snapshot has no revision 3"):
        catalog.revision("snapshot", 3)
    with pytest.raises(NotFoundError):
        catalog.revision_entries("production", 1)


def test_same_content_same_digest(catalog: Catalog) -> None:
    add(catalog, "snapshot", "apache", "1.0.0")
    with catalog.transaction() as tx:
        r1 = tx.new_revision("snapshot")
        r1b = tx.new_revision("snapshot")
    assert r1b.number == 2 and r1b.digest == r1.digest
    with catalog.transaction() as tx:
        e = tx.delete_entry("snapshot", "apache", "1.0.0")
        tx.put_entry("staging", "apache", "1.0.0", e.artifact, actor="x")
        r3 = tx.new_revision("snapshot")
    # The copy moved stage but the served (name, version, artifact) set is the same.
    assert r3.digest == r1.digest
    assert [e.stage for e in catalog.revision_entries("snapshot", 3)] == ["staging"]
    assert [e.stage for e in catalog.revision_entries("snapshot", 1)] == ["snapshot"]


def test_more_stable_stage_wins_a_clash(catalog: Catalog) -> None:
    snap = add(catalog, "snapshot", "apache", "1.0.0", content="snapshot bytes")
    prod = add(catalog, "production", "apache", "1.0.0", content="production bytes")
    add(catalog, "staging", "nginx", "2.0.0")
    with catalog.transaction() as tx:
        for dist in tx.stages().affected_distributions("production"):
            tx.new_revision(dist)
    snapshot = catalog.revision_entries("snapshot", 1)
    assert snapshot == sorted(snapshot)
    assert [(e.name, e.artifact, e.stage) for e in snapshot] == [
        ("apache", prod, "production"),
        ("nginx", digest_of("nginx-2.0.0"), "staging"),
    ]
    assert [e.name for e in catalog.revision_entries("production", 1)] == ["apache"]
    assert [e.name for e in catalog.revision_entries("staging", 1)] == ["apache", "nginx"]
    # Explicit stages: the first one listed wins.
    with catalog.transaction() as tx:
        custom = tx.new_revision("snapshot", ["snapshot", "production"], make_current=False)
    assert custom.current is False
    assert catalog.current_revision("snapshot").number == 1  # type: ignore[union-attr]
    assert served(catalog, "snapshot", custom.number) == {("apache", "1.0.0", snap)}


def test_current_pointer_and_rollback(catalog: Catalog) -> None:
    for i in range(3):
        add(catalog, "production", "apache", f"1.0.{i}")
        with catalog.transaction() as tx:
            tx.new_revision("production")
    assert catalog.distributions() == {"production": 3}
    with catalog.transaction() as tx:
        back = tx.set_current("production", 1)
    assert back.current and back.number == 1
    assert catalog.current_revision("production").number == 1  # type: ignore[union-attr]
    assert [r.current for r in catalog.revisions("production")] == [True, False, False]
    assert catalog.distributions() == {"production": 1}
    with pytest.raises(NotFoundError), catalog.transaction() as tx:
        tx.set_current("production", 9)
    assert catalog.current_revision("production").number == 1  # type: ignore[union-attr]


def test_revision_json_shape(catalog: Catalog) -> None:
    add(catalog, "production", "apache", "1.0.0")
    with catalog.transaction() as tx:
        rev = tx.new_revision("production")
        tx.add_tag("production", "8.12.0", rev.number, actor="release")
    data = catalog.revision("production", 1).as_json()
    assert list(data) == ["revision", "digest", "created", "current", "tags"]
    assert data["revision"] == 1 and data["current"] is True and data["tags"] == ["8.12.0"]
    assert isinstance(data["digest"], str) and len(data["digest"]) == 64
    assert isinstance(data["created"], str) and data["created"].endswith("Z")


@pytest.mark.parametrize("seed", range(4))
def test_incremental_digests_match_content(catalog: Catalog, seed: int) -> None:
    """Random publish/overwrite/promote/remove sequences: every revision's digest equals the
    digest computed from scratch over what it serves, before and after later changes."""
    rng = random.Random(seed)
    graph = catalog.stages()
    made: list[tuple[str, int, set[tuple[str, str, str]]]] = []
    for step in range(40):
        with catalog.transaction() as tx:
            touched: set[str] = set()
            for _ in range(rng.randint(1, 4)):
                stage = rng.choice(graph.names)
                name, version = rng.choice("abc"), f"1.0.{rng.randint(0, 3)}"
                current = tx.get_entry(stage, name, version)
                if current is not None and rng.random() < 0.4:
                    tx.delete_entry(stage, name, version)
                else:
                    d = digest_of(f"{name}{version}{rng.randint(0, 2)}")
                    tx.add_artifact(ArtifactRecord(d, 1, name, version))
                    tx.put_entry(stage, name, version, d, actor="rng")
                touched.add(stage)
            dists = {d for s in touched for d in graph.affected_distributions(s)}
            if step % 7 == 0:
                dists = set(graph.names)  # also revisions with no change
            revs = [tx.new_revision(d) for d in sorted(dists)]
        for rev in revs:
            made.append(
                (rev.distribution, rev.number, served(catalog, rev.distribution, rev.number))
            )
            assert rev.digest == content_digest(made[-1][2])
            assert rev.count == len(made[-1][2])
    for dist, number, content in made:
        assert served(catalog, dist, number) == content
        assert catalog.revision(dist, number).digest == content_digest(content)
    assert catalog.check(deep=True) == []


def test_bulk_change_digest(catalog: Catalog) -> None:
    with catalog.transaction() as tx:
        tx.new_revision("snapshot")
    with catalog.transaction() as tx:
        for i in range(600):
            d = digest_of(f"bulk{i}")
            tx.add_artifact(ArtifactRecord(d, 1, f"p{i % 50}", f"1.0.{i}"))
            tx.put_entry("snapshot", f"p{i % 50}", f"1.0.{i}", d, actor="import")
        rev = tx.new_revision("snapshot")
    assert rev.count == 600
    assert rev.digest == content_digest(served(catalog, "snapshot", rev.number))
    add(catalog, "snapshot", "late", "1.0.0")
    with catalog.transaction() as tx:
        rev2 = tx.new_revision("snapshot")
    assert rev2.count == 601
    assert rev2.digest == content_digest(served(catalog, "snapshot", rev2.number))


# --- tags --------------------------------------------------------------------------------------


def test_tags_are_unique_and_permanent(catalog: Catalog) -> None:
    add(catalog, "production", "apache", "1.0.0")
    with catalog.transaction() as tx:
        tx.new_revision("production")
        tx.new_revision("production")
    with catalog.transaction() as tx:
        tag = tx.add_tag("production", "8.12.0", 1, actor="release")
    assert (tag.distribution, tag.tag, tag.revision, tag.created_by) == (
        "production",
        "8.12.0",
        1,
        "release",
    )
    assert catalog.tag("production", "8.12.0") == tag
    with (
        pytest.raises(ConflictError, match="already names revision 1: tags never move"),
        catalog.transaction() as tx,
    ):
        tx.add_tag("production", "8.12.0", 2, actor="release")
    with pytest.raises(ConflictError), catalog.transaction() as tx:
        tx.add_tag("production", "8.12.0", 1, actor="release")
    assert catalog.tag("production", "8.12.0").revision == 1
    with pytest.raises(NotFoundError, match="no revision 7"), catalog.transaction() as tx:
        tx.add_tag("production", "9.0.0", 7, actor="release")
    with pytest.raises(NotFoundError, match=r"distribution production has no tag 1\.0"):
        catalog.tag("production", "1.0")
    for bad in ("", "12", "a/b", "x@y", "has space"):
        with pytest.raises(InvalidInputError), catalog.transaction() as tx:
            tx.add_tag("production", bad, 1, actor="release")
    with catalog.transaction() as tx:
        tx.add_tag("production", "8.13.0", 2, actor="release")
        tx.add_tag("production", "latest-good", 1, actor="release")
    # Ordered by creation, then name.
    assert [t.tag for t in catalog.tags("production")] == ["8.12.0", "8.13.0", "latest-good"]
    assert catalog.tags("snapshot") == []
    assert set(catalog.revision("production", 1).tags) == {"8.12.0", "latest-good"}
    assert catalog.revisions("production")[1].tags == ("8.13.0",)


# --- events ------------------------------------------------------------------------------------


def test_events_order_and_filters(catalog: Catalog) -> None:
    with catalog.transaction() as tx:
        e1 = tx.record_event(
            "publish",
            actor="ci",
            stage="snapshot",
            name="apache",
            version="1.0.0",
            detail={"digest": "abc", "n": [1, 2]},
        )
    with catalog.transaction() as tx:
        e2 = tx.record_event("promote", actor="alice", stage="staging", name="apache")
        e3 = tx.record_event(
            "remove", actor="bob", stage="staging", name="nginx", version="2.0.0", reason="CVE"
        )
    events = catalog.events()
    assert [e.id for e in events] == [e1.id, e2.id, e3.id]
    assert e1.id < e2.id < e3.id
    assert events[0] == e1
    assert events[0].detail == {"digest": "abc", "n": [1, 2]}
    assert events[2].reason == "CVE" and events[1].version is None
    assert all(e.time.tzinfo is not None for e in events)
    assert [e.id for e in catalog.events(EventFilter(stage="staging"))] == [e2.id, e3.id]
    assert [e.id for e in catalog.events(EventFilter(name="apache"))] == [e1.id, e2.id]
    assert [e.id for e in catalog.events(EventFilter(name="apache", version="1.0.0"))] == [e1.id]
    assert [e.id for e in catalog.events(EventFilter(action="remove"))] == [e3.id]
    assert [e.id for e in catalog.events(EventFilter(actor="alice"))] == [e2.id]
    assert [e.id for e in catalog.events(EventFilter(after_id=e1.id))] == [e2.id, e3.id]
    assert [e.id for e in catalog.events(EventFilter(newest_first=True, limit=2))] == [
        e3.id,
        e2.id,
    ]
    assert catalog.events(EventFilter(since=e3.time + timedelta(seconds=1))) == []
    assert [e.id for e in catalog.events(EventFilter(until=e2.time))] == [e1.id]
    assert len(catalog.events(EventFilter(since=e1.time))) == 3


# --- concurrency and crashes -------------------------------------------------------------------


def test_two_processes_lose_no_update(catalog_factory: CatalogFactory) -> None:
    catalog_factory().close()  # create the store before the race
    count = 40
    start = SPAWN.Barrier(2)
    procs = [
        SPAWN.Process(target=concurrent_publisher, args=(catalog_factory, w, count, start))
        for w in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cat = catalog_factory()
    try:
        assert len(cat.entries("snapshot")) == 2 * count
        events = cat.events(EventFilter(action="publish"))
        # Each transaction saw every earlier one: the counts seen are exactly 0..2N-1.
        assert sorted(e.detail["seen"] for e in events) == list(range(2 * count))
        assert [r.number for r in cat.revisions("snapshot")] == list(range(1, 2 * count + 1))
        assert cat.current_revision("snapshot").count == 2 * count  # type: ignore[union-attr]
        assert cat.check(deep=True) == []
    finally:
        cat.close()


def test_kill_during_transaction_changes_nothing(catalog_factory: CatalogFactory) -> None:
    cat = catalog_factory()
    add(cat, "snapshot", "apache", "1.0.0")
    counter = cat.change_counter()
    ready = SPAWN.Event()
    proc = SPAWN.Process(target=hold_transaction, args=(catalog_factory, ready))
    proc.start()
    try:
        assert ready.wait(60), "child never reached the middle of its transaction"
    finally:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    assert cat.change_counter() == counter
    assert cat.get_entry("snapshot", "doomed", "1.0.0") is None
    assert cat.events() == []
    assert cat.revisions("snapshot") == []
    assert cat.check(deep=True) == []
    add(cat, "snapshot", "after", "1.0.0")  # the lock died with the process
    assert cat.get_entry("snapshot", "after", "1.0.0") is not None
    cat.close()


@pytest.mark.parametrize("delay", [0.3, 0.7, 1.1])
def test_kill_at_any_point_of_publish_and_promote(
    catalog_factory: CatalogFactory, delay: float
) -> None:
    catalog_factory().close()
    started = SPAWN.Event()
    proc = SPAWN.Process(target=publish_and_promote_forever, args=(catalog_factory, started))
    proc.start()
    try:
        assert started.wait(60)
        proc.join(delay)
    finally:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    cat = catalog_factory()
    try:
        assert cat.check(deep=True) == []
        published = cat.events(EventFilter(action="publish"))
        promoted = cat.events(EventFilter(action="promote"))
        snapshot, staging = cat.entries("snapshot"), cat.entries("staging")
        # Every operation happened fully or not at all.
        assert len(staging) == len(promoted) >= 1
        assert len(snapshot) == len(published) - len(promoted) in (0, 1)
        assert cat.revisions("staging")[-1].count == len(staging)
        assert cat.current_revision("snapshot").count == len(published)  # type: ignore[union-attr]
        publish(cat, "busy", "9.9.9", "after")  # still writable
    finally:
        cat.close()


def test_reads_are_consistent_with_a_running_writer(catalog_factory: CatalogFactory) -> None:
    cat = catalog_factory()
    started = SPAWN.Event()
    proc = SPAWN.Process(target=publish_and_promote_forever, args=(catalog_factory, started))
    proc.start()
    try:
        assert started.wait(60)
        seen = cat.change_counter()
        for _ in range(20):
            rev = cat.current_revision("snapshot")
            assert rev is not None
            entries = cat.revision_entries("snapshot", rev.number)
            assert content_digest((e.name, e.version, e.artifact) for e in entries) == rev.digest
            assert all(isinstance(e, RevisionEntry) for e in entries)
        assert cat.change_counter() >= seen
    finally:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        cat.close()


def test_other_writers_are_seen_at_once(catalog_factory: CatalogFactory) -> None:
    """What a server polls: a change committed through another catalog object (another
    connection pool, as another process would have) moves change_counter immediately."""
    reader, writer = catalog_factory(), catalog_factory()
    try:
        before = reader.change_counter()
        assert reader.current_revision("snapshot") is None
        publish(writer, "apache", "1.0.0", "other")
        assert reader.change_counter() > before
        assert reader.current_revision("snapshot") is not None
        assert reader.last_change() == writer.last_change()
    finally:
        reader.close()
        writer.close()


# --- history imports, commits, yanks -----------------------------------------------------------


def test_advance_records_several_states_in_one_transaction(catalog: Catalog) -> None:
    """A history import: one transaction, one change sequence per commit, one revision each,
    events at the commits' times, each revision naming its commit."""
    times = [datetime(2020, 8, 1 + i, tzinfo=UTC) for i in range(3)]
    commits = [f"{i:x}" * 40 for i in (10, 11, 12)]
    with catalog.transaction() as tx:
        for i, (when, commit) in enumerate(zip(times, commits, strict=True)):
            if i:
                tx.advance()
            digest = digest_of(f"apache-1.{i}")
            tx.add_artifact(ArtifactRecord(digest, 42, "apache", f"1.{i}.0"))
            tx.put_entry("production", "apache", f"1.{i}.0", digest, actor="git")
            if i == 2:
                tx.delete_entry("production", "apache", "1.0.0")
            tx.record_event("commit", actor="Jane", stage="production", time=when)
            tx.new_revision("production", commit=commit)
    revs = catalog.revisions("production")
    assert [r.commit for r in revs] == commits
    assert [len(served(catalog, "production", r.number)) for r in revs] == [1, 2, 2]
    assert len({r.seq for r in revs}) == 3
    assert catalog.change_counter() == revs[-1].seq
    assert [e.time for e in catalog.events()] == times
    assert [r.number for r in catalog.revisions_by_commit("production", "bbbbbbb")] == [2]
    assert catalog.revisions_by_commit("production", "cccc") == [revs[2]]
    assert len(catalog.revisions_by_commit("production", "")) == 3
    assert catalog.revisions_by_commit("production", "XYZ") == []
    assert catalog.revisions_by_commit("staging", "aaaaaaa") == []
    assert catalog.revision("production", 1).as_json()["commit"] == commits[0]
    assert catalog.check(deep=True) == []


def test_yanked_entries_keep_older_revisions_as_they_were(catalog: Catalog) -> None:
    digest = add(catalog, "production", "apache", "1.0.0")
    with catalog.transaction() as tx:
        tx.new_revision("production")
    with catalog.transaction() as tx:
        entry = tx.set_yanked("production", "apache", "1.0.0", True)
        assert entry.yanked and entry.artifact == digest
        assert tx.set_yanked("production", "apache", "1.0.0", True).yanked  # no-op
        tx.new_revision("production")
    assert [e.yanked for e in catalog.revision_entries("production", 1)] == [False]
    assert [e.yanked for e in catalog.revision_entries("production", 2)] == [True]
    assert catalog.get_entry("production", "apache", "1.0.0").yanked  # type: ignore[union-attr]
    # the digest covers the artifacts served: a yank does not change it
    assert catalog.revision("production", 1).digest == catalog.revision("production", 2).digest
    with catalog.transaction() as tx:
        tx.set_yanked("production", "apache", "1.0.0", False)
        tx.new_revision("production")
    assert [e.yanked for e in catalog.revision_entries("production", 3)] == [False]
    with pytest.raises(NotFoundError), catalog.transaction() as tx:
        tx.set_yanked("production", "apache", "9.9.9", True)
    assert catalog.check(deep=True) == []
