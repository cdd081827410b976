"""Writers anywhere (issue 11, items 4 and 6): 8 writer processes x 200 service operations on one
store at once; no update is lost (every operation's effect is there, in every revision it must
be in), every operation recorded once, and fsck / the deep catalog check are clean."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_service import make_package

from package_storage.packages.artifacts import build_zip
from package_storage.packages.trees import FolderTree
from package_storage.store.directory import Store
from package_storage.store.locator import init_store
from pg_server import temporary_database
from service_contract.writers import OPS_PER_VERSION, open_location, writer

SPAWN = multiprocessing.get_context("spawn")

# (writers, versions per writer): 8 x 25 versions x 8 operations = 8 x 200 operations on the
# database catalog (the SQLite catalog's concurrent writers are in the storage contract suite;
# add "directory" here to run this on a store directory too).
SCALE = {"postgresql": (8, 25)}


@pytest.fixture(params=sorted(SCALE))
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "directory":
        root = tmp_path / "store"
        Store.init(root).close()
        yield "directory", str(root)
        return
    with temporary_database("ps_writers") as url:
        init_store(url, blobs=str(tmp_path / "blobs")).store.close()
        yield "postgresql", url


def build_zips(root: Path, worker: int, count: int) -> list[str]:
    paths = []
    for i in range(count):
        folder = make_package(root / "src", f"1.0.{i}", name=f"pkg_w{worker}")
        path = root / f"pkg_w{worker}-1.0.{i}.zip"
        path.write_bytes(build_zip(FolderTree(folder), f"pkg_w{worker}", f"1.0.{i}"))
        paths.append(str(path))
    return paths


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_concurrent_writers_lose_no_update(location: tuple[str, str], tmp_path: Path) -> None:
    kind, url = location
    writers, versions = SCALE[kind]
    zips = {w: build_zips(tmp_path / "zips", w, versions) for w in range(writers)}
    start = SPAWN.Barrier(writers)
    procs = [SPAWN.Process(target=writer, args=(url, w, zips[w], start)) for w in range(writers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(600)
    assert [p.exitcode for p in procs] == [0] * writers

    with open_location(url) as store:
        cat = store.catalog
        events = cat.events()
        assert len(events) == writers * versions * OPS_PER_VERSION
        for w in range(writers):  # each writer's operations recorded once, in its order
            mine = [e.action for e in events if e.actor == f"writer-{w}"]
            assert (
                mine
                == ["publish", "tag", "promote", "promote", "tag", "yank", "unyank", "tag"]
                * versions
            )
        production = {(e.name, e.version): e for e in cat.entries("production")}
        expected = {(f"pkg_w{w}", f"1.0.{i}") for w in range(writers) for i in range(versions)}
        assert set(production) == expected
        assert not any(e.yanked for e in production.values())
        assert cat.entries("snapshot") == [] and cat.entries("staging") == []
        # every tag names a revision holding what its writer had just done
        tags = {t.tag: t for t in cat.tags()}
        assert len(tags) == writers * versions * 3
        for w in range(writers):
            for i in range(versions):
                key = (f"pkg_w{w}", f"1.0.{i}")
                for prefix, dist, yanked in (
                    ("s", "snapshot", False),
                    ("p", "production", False),
                    ("q", "production", False),
                ):
                    tag = tags[f"{prefix}-w{w}-{i}"]
                    assert tag.distribution == dist
                    served = {
                        (e.name, e.version): e for e in cat.revision_entries(dist, tag.revision)
                    }
                    assert key in served and served[key].yanked is yanked
                    # and everything this writer did before is there too
                    assert all((f"pkg_w{w}", f"1.0.{j}") in served for j in range(i))
        report = store.service("checker").fsck()  # includes the deep check of every revision
        assert report.ok and not report.orphaned, report
