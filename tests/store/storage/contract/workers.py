"""Functions run in child processes by the contract suite (importable for multiprocessing spawn)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier as BarrierType
from multiprocessing.synchronize import Event as EventType

from package_storage.store.storage.base import ArtifactRecord, BlobStore, Catalog


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def publish(cat: Catalog, name: str, version: str, actor: str) -> None:
    """A publish-like transaction: artifact, entry, event (with what it saw), revision."""
    digest = digest_of(f"{name}-{version}")
    with cat.transaction() as tx:
        seen = len(tx.entries("snapshot"))
        tx.add_artifact(ArtifactRecord(digest, 10, name, version))
        tx.put_entry("snapshot", name, version, digest, actor=actor)
        tx.record_event(
            "publish",
            actor=actor,
            stage="snapshot",
            name=name,
            version=version,
            detail={"seen": seen},
        )
        tx.new_revision("snapshot")


def concurrent_publisher(
    factory: Callable[[], Catalog], worker: int, count: int, start: BarrierType
) -> None:
    cat = factory()
    start.wait(60)  # every worker is ready: now they really race
    for i in range(count):
        publish(cat, f"w{worker}", f"1.0.{i}", f"worker-{worker}")
    cat.close()


def hold_transaction(factory: Callable[[], Catalog], ready: EventType) -> None:
    """Write inside a transaction, signal, then wait to be killed before committing."""
    cat = factory()
    with cat.transaction() as tx:
        digest = digest_of("doomed")
        tx.add_artifact(ArtifactRecord(digest, 1, "doomed", "1.0.0"))
        tx.put_entry("snapshot", "doomed", "1.0.0", digest, actor="doomed")
        tx.record_event("publish", actor="doomed", stage="snapshot", name="doomed")
        tx.new_revision("snapshot")
        ready.set()
        time.sleep(120)


def publish_and_promote_forever(factory: Callable[[], Catalog], started: EventType) -> None:
    """Publish to snapshot then promote to staging, as fast as possible, until killed."""
    cat = factory()
    i = 0
    while True:
        name, version = "busy", f"1.0.{i}"
        publish(cat, name, version, "busy")
        with cat.transaction() as tx:
            entry = tx.delete_entry("snapshot", name, version)
            tx.put_entry("staging", name, version, entry.artifact, actor="busy")
            tx.record_event("promote", actor="busy", stage="staging", name=name, version=version)
            for dist in tx.stages().affected_distributions("staging"):
                tx.new_revision(dist)
        started.set()
        i += 1


def put_blobs_forever(factory: Callable[[], BlobStore], started: EventType) -> None:
    """Write 2 MiB random blobs until killed."""
    store = factory()
    while True:
        store.put(os.urandom(2 << 20))
        started.set()


def put_file_from(factory: Callable[[], BlobStore], source: str) -> None:
    """Store the file at ``source`` (a FIFO the test feeds slowly, then kills us)."""
    from pathlib import Path

    factory().put_file(Path(source))
