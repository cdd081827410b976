"""Read replicas for the tests: ``package-storage serve --store LOCATION`` processes on free
loopback ports (a plain module, imported by name), and a way to fill a store fast.

``add_versions`` records many versions in one catalog transaction (what an import does), so a
test can make a revision switch that takes a replica a while to build.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from package_storage.packages.artifacts import build_zip
from package_storage.packages.trees import FolderTree
from package_storage.store.storage.base import ArtifactRecord, BlobStore, Catalog
from process_helpers import clean_env, command, free_port


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 10) -> httpx.Response:
        return httpx.get(self.base + path, timeout=timeout)

    def count(self, prefix: str = "/production") -> int:
        """How many versions ``prefix/search?all=true&prerelease=true`` lists."""
        response = self.get(f"{prefix}/search?all=true&prerelease=true")
        assert response.status_code == 200, response.text
        return len(response.json())

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_replica(
    location: str,
    log: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    wait: float = 120,
) -> Replica:
    """Start ``serve --store location`` and wait (bounded) until it answers /health."""
    port = port or free_port()
    handle = log.open("ab")
    proc = subprocess.Popen(
        [
            *command(),
            "serve",
            "--store",
            location,
            "--address",
            f"127.0.0.1:{port}",
            "-log-type",
            "dev",
            *args,
        ],
        env=clean_env(env),
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=log.parent,
    )
    handle.close()
    replica = Replica(proc, port, log)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"replica exited with {proc.returncode}: {replica.output()}")
        try:
            if replica.get("/health", timeout=2).status_code == 200:
                return replica
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"replica did not start: {replica.output()}")


def stop_replica(replica: Replica) -> None:
    if replica.proc.poll() is None:
        replica.proc.send_signal(signal.SIGTERM)
        try:
            replica.proc.wait(30)
        except subprocess.TimeoutExpired:
            replica.proc.kill()
            replica.proc.wait(10)


def wait_for(
    replica: Replica, expected: int, *, prefix: str = "/production", bound: float = 120
) -> None:
    """Poll (bounded: a hang guard, not a timing threshold) until the replica lists
    ``expected`` versions."""
    deadline = time.monotonic() + bound
    while (seen := replica.count(prefix)) != expected:
        assert time.monotonic() < deadline, f"replica lists {seen} versions, not {expected}"
        time.sleep(0.02)


def build_zips(folders: Sequence[Path]) -> list[tuple[str, str, bytes]]:
    """(name, version, zip bytes) of package folders ``.../<name>/<version>``."""
    return [
        (f.parent.name, f.name, build_zip(FolderTree(f), f.parent.name, f.name)) for f in folders
    ]


def add_versions(
    catalog: Catalog, blobs: BlobStore, stage: str, zips: Sequence[tuple[str, str, bytes]]
) -> None:
    """Record every zip in ``stage`` in one transaction (blobs first), with new revisions of
    every distribution that sees the stage."""
    digests = [blobs.put(data) for _, _, data in zips]
    with catalog.transaction() as tx:
        for (name, version, data), digest in zip(zips, digests, strict=True):
            tx.add_artifact(ArtifactRecord(digest, len(data), name, version))
            tx.put_entry(stage, name, version, digest, actor="test")
            tx.record_event("import", actor="test", stage=stage, name=name, version=version)
        for distribution in tx.stages().affected_distributions(stage):
            tx.new_revision(distribution)
