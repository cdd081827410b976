"""Crash and concurrency safety of the service on the embedded store (SQLite + local blobs).

* Two processes publishing and promoting at once lose no update.
* ``kill -9`` at named points of publish/promote/remove/rollback (the
  ``PACKAGE_STORAGE_CRASH_AT`` hook) and at arbitrary moments of a stream of operations leaves a
  store that ``fsck`` finds consistent, where each operation either fully happened or not at
  all (orphaned blobs are allowed: they are reported and ``fsck --repair`` removes them).

The worker functions live at module level so that ``multiprocessing`` (spawn) can import them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.synchronize import Barrier as BarrierType
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import pytest
from test_service import make_package as example_package
from test_service import state

from package_storage.store.directory import Store
from package_storage.store.service import CRASH_ENV, CRASH_POINTS
from package_storage.store.storage.base import EventFilter

SPAWN = multiprocessing.get_context("spawn")
KILLED = -signal.SIGKILL


def make_package(root: Path, name: str, version: str) -> Path:
    """A valid package folder ``root/<name>/<version>`` built from the example acme_input."""
    return example_package(root, version, name=name, base="acme_input/1.0.0")


# --- workers (run in child processes) ----------------------------------------------------------


def publish_and_promote(store_dir: str, folders: list[str], start: BarrierType) -> None:
    """Publish each folder to snapshot and promote it to staging."""
    with Store.open(store_dir) as store:
        svc = store.service(f"worker-{os.getpid()}")
        start.wait(60)
        for folder in folders:
            path = Path(folder)
            svc.publish(path)
            svc.promote(path.parent.name, path.name, to="staging")


def crash_during(store_dir: str, point: str, op: str, args: list[str]) -> None:
    """Run one operation with the crash hook armed at ``point``."""
    os.environ[CRASH_ENV] = point
    with Store.open(store_dir) as store:
        svc = store.service("crasher")
        if op == "publish":
            svc.publish(Path(args[0]))
        elif op == "promote":
            svc.promote(args[0], args[1], to=args[2])
        elif op == "remove":
            svc.remove(args[0], args[1], stage=args[2])
        elif op == "rollback":
            svc.rollback(args[0], args[1])
        else:  # pragma: no cover
            raise AssertionError(op)


def work_until_killed(store_dir: str, folders: list[str], progress: EventType) -> None:
    """Publish, promote (and every third time remove) versions until killed."""
    with Store.open(store_dir) as store:
        svc = store.service("victim")
        for i, folder in enumerate(folders):
            path = Path(folder)
            name, version = path.parent.name, path.name
            svc.publish(path)
            progress.set()
            svc.promote(name, version, to="staging")
            if i % 3 == 2:
                svc.remove(name, version, stage="staging", force=True, reason="churn")


# --- helpers -------------------------------------------------------------------------------------


def run(target: Callable[..., object], *args: object, timeout: float = 120) -> int | None:
    proc = SPAWN.Process(target=target, args=args)
    proc.start()
    proc.join(timeout)
    if proc.is_alive():  # pragma: no cover
        proc.kill()
        proc.join()
        pytest.fail("child process did not finish")
    return proc.exitcode


def assert_consistent(store: Store) -> None:
    report = store.service("fsck").fsck()
    assert report.catalog_problems == ()
    assert report.missing == ()
    assert report.corrupt == ()
    assert report.ok


# --- tests ---------------------------------------------------------------------------------------


def test_two_processes_publishing_and_promoting_lose_no_update(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    Store.init(store_dir).close()
    per_worker = 4
    workers = []
    for w in ("alpha", "beta"):
        folders = [
            str(make_package(tmp_path / "pkgs", f"pkg_{w}", f"1.0.{i}")) for i in range(per_worker)
        ]
        workers.append(folders)
    start = SPAWN.Barrier(len(workers))
    procs = [
        SPAWN.Process(target=publish_and_promote, args=(str(store_dir), folders, start))
        for folders in workers
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(300)
    assert [p.exitcode for p in procs] == [0, 0]

    total = per_worker * len(workers)
    with Store.open(store_dir) as store:
        cat = store.catalog
        assert cat.entries("snapshot") == []
        staged = {(e.name, e.version) for e in cat.entries("staging")}
        assert staged == {
            (f"pkg_{w}", f"1.0.{i}") for w in ("alpha", "beta") for i in range(per_worker)
        }
        assert len(cat.events(EventFilter(action="publish"))) == total
        assert len(cat.events(EventFilter(action="promote"))) == total
        # publish -> snapshot; promote -> staging + snapshot: every change made its revisions.
        assert len(cat.revisions("snapshot")) == 2 * total
        assert len(cat.revisions("staging")) == total
        current = cat.current_revision("staging")
        assert current is not None and current.count == total
        assert_consistent(store)


@pytest.mark.parametrize("point", [p for p in CRASH_POINTS if p.startswith("publish:")])
def test_kill_during_publish(tmp_path: Path, point: str) -> None:
    store_dir = tmp_path / "store"
    with Store.init(store_dir) as store:
        store.service("setup").publish(make_package(tmp_path / "pkgs", "acme_input", "1.0.0"))
        before = state(store, blobs=False)
        events_before = len(store.catalog.events())
        blobs_before = set(store.blobs.iter_digests())
    folder = make_package(tmp_path / "pkgs", "acme_input", "1.1.0")

    assert run(crash_during, str(store_dir), point, "publish", [str(folder)]) == KILLED

    with Store.open(store_dir) as store:
        assert_consistent(store)
        entry = store.catalog.get_entry("snapshot", "acme_input", "1.1.0")
        new_blobs = set(store.blobs.iter_digests()) - blobs_before
        assert len(new_blobs) == 1  # the blob was put before every crash point
        if point == "publish:after-commit":
            assert entry is not None and {entry.artifact} == new_blobs
            assert len(store.catalog.events()) == events_before + 1
            assert store.service("fsck").fsck().orphaned == ()
        else:
            assert entry is None
            assert state(store, blobs=False) == before  # nothing happened
            report = store.service("fsck").fsck()
            assert set(report.orphaned) == new_blobs  # garbage, reported
            assert store.service("fsck").fsck(repair=True).repaired == tuple(new_blobs)
        # The store keeps working: publishing again completes (or is a no-op).
        store.service("retry").publish(folder)
        assert store.catalog.get_entry("snapshot", "acme_input", "1.1.0") is not None
        assert_consistent(store)


@pytest.mark.parametrize(
    ("point", "op", "happened"),
    [
        ("promote:before-commit", "promote", False),
        ("promote:after-commit", "promote", True),
        ("remove:before-commit", "remove", False),
        ("rollback:before-commit", "rollback", False),
    ],
)
def test_kill_during_promote_remove_rollback(
    tmp_path: Path, point: str, op: str, happened: bool
) -> None:
    store_dir = tmp_path / "store"
    with Store.init(store_dir) as store:
        svc = store.service("setup")
        svc.publish(make_package(tmp_path / "pkgs", "acme_input", "1.0.0"))
        svc.publish(make_package(tmp_path / "pkgs", "acme_input", "1.1.0"))
        before = state(store, blobs=False)
    args = {
        "promote": ["acme_input", "1.0.0", "staging"],
        "remove": ["acme_input", "1.0.0", "snapshot"],
        "rollback": ["snapshot", "1"],
    }[op]

    assert run(crash_during, str(store_dir), point, op, args) == KILLED

    with Store.open(store_dir) as store:
        assert_consistent(store)
        assert store.service("fsck").fsck().orphaned == ()
        in_snapshot = store.catalog.get_entry("snapshot", "acme_input", "1.0.0")
        in_staging = store.catalog.get_entry("staging", "acme_input", "1.0.0")
        if happened:
            assert in_snapshot is None and in_staging is not None
            (ev,) = store.catalog.events(EventFilter(action="promote"))
            assert ev.detail["from"] == "snapshot"
            assert len(store.catalog.revisions("staging")) == 1
        else:
            assert in_snapshot is not None and in_staging is None
            assert state(store, blobs=False) == before


@pytest.mark.parametrize("kill_after", [1, 2, 4])
def test_kill_at_an_arbitrary_moment_leaves_whole_operations(
    tmp_path: Path, kill_after: int
) -> None:
    """Kill -9 a process streaming operations at a moment we do not choose precisely; whatever
    the moment, every recorded event matches the entries and fsck finds the store consistent."""
    store_dir = tmp_path / "store"
    Store.init(store_dir).close()
    folders = [str(make_package(tmp_path / "pkgs", "acme_input", f"1.0.{i}")) for i in range(40)]
    progress = SPAWN.Event()
    proc = SPAWN.Process(target=work_until_killed, args=(str(store_dir), folders, progress))
    proc.start()
    for _ in range(kill_after):
        assert progress.wait(120)
        progress.clear()
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(60)
    assert proc.exitcode in (KILLED, 0)

    with Store.open(store_dir) as store:
        assert_consistent(store)
        cat = store.catalog
        # Replay the events: they must explain the entries exactly (no half operation).
        expected: dict[tuple[str, str], str | None] = {}
        for ev in cat.events():
            assert ev.name is not None and ev.version is not None
            key = (ev.name, ev.version)
            if ev.action == "publish":
                expected[key] = "snapshot"
            elif ev.action == "promote":
                assert expected.get(key) == ev.detail["from"]
                expected[key] = ev.stage
            elif ev.action == "remove":
                assert expected.get(key) == ev.stage
                expected[key] = None
        actual: dict[tuple[str, str], str | None] = dict.fromkeys(expected)
        for stage in cat.stages().names:
            for entry in cat.entries(stage):
                key = (entry.name, entry.version)
                assert actual.get(key) is None, f"{key} in two stages"
                actual[key] = stage
        assert actual == expected
        assert len(expected) >= kill_after
        # The store keeps working after the crash.
        svc = store.service("after")
        svc.publish(Path(folders[-1]))
        assert_consistent(store)
