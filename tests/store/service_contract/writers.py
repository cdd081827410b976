"""The writer processes of ``test_concurrent_writers.py`` (importable for multiprocessing spawn)."""

from __future__ import annotations

from multiprocessing.synchronize import Barrier as BarrierType
from pathlib import Path

from package_storage.store.directory import Store
from package_storage.store.locator import open_store

# Operations per version of a writer's package, in this order (one transaction each).
OPS_PER_VERSION = 8


def open_location(location: str) -> Store:
    """The store at ``location`` (a directory or a store URL), as every CLI command opens it."""
    return open_store(location)


def writer(location: str, worker: int, zips: list[str], start: BarrierType) -> None:
    """Publish, tag, promote twice, tag, yank and unyank each of this writer's versions."""
    store = open_location(location)
    try:
        svc = store.service(f"writer-{worker}")
        name = f"pkg_w{worker}"
        start.wait(120)  # every writer is ready: now they really race
        for i, path in enumerate(zips):
            version = f"1.0.{i}"
            svc.publish(Path(path))
            svc.tag("snapshot", f"s-w{worker}-{i}")
            svc.promote(name, version, to="staging")
            svc.promote(name, version, to="production")
            svc.tag("production", f"p-w{worker}-{i}")
            svc.yank(name, version, stage="production", reason=f"w{worker} yank {i}")
            svc.yank(name, version, stage="production", reason=f"w{worker} back", yanked=False)
            svc.tag("production", f"q-w{worker}-{i}")
    finally:
        store.close()
