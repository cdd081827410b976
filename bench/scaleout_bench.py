"""Scale-out figures (issue 11, item 8): publish and promote latency at 12,000 stored versions on
each store combination in the same run, and propagation time from a publish to 2 replicas.

Part 1, per combination (``sqlite+folder``: a store directory; ``postgresql+s3``: a PostgreSQL
catalog on the local server, a database made for the run, with its blobs in a SeaweedFS S3
server started for the run): the store is filled with ``--versions`` (12,000) entries in one
catalog transaction (artifact records only: publish and promote never read other packages'
blobs, as in ``store_ops_bench.py``), then ``--ops`` real packages (new versions of the example ``hello_nginx``, zips built
beforehand) are published with ``StoreService.publish_bytes`` and promoted snapshot -> staging
-> production. p50/p99 of the whole call per operation.

Part 2, per combination: a second store of ``--replica-versions`` (2,000) real versions (the
example packages under new names; replicas parse every artifact they serve, so these are real
zips in the blob store); 2 replicas (``serve --store LOCATION``, pinned to CPU 0) serve it; this process (CPU 1) publishes ``--publishes`` (40) new versions one at a time,
50-150 ms apart, and after each commit requests ``/snapshot/package/NAME/VERSION/`` from both
replicas every millisecond until each answers 200: p50/p99/max of commit -> 200 over every
(publish, replica) pair. Target (issue 11): p99 <= 1 s.

Load average before and after each part is printed and stored with the figures.

    python bench/scaleout_bench.py [--versions 12000] [--ops 100] [--publishes 40]
        [--combos sqlite+folder postgresql+s3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))  # the test helpers that start PostgreSQL DBs and S3
sys.path.insert(0, str(HERE))

from store_switch_bench import VERSIONS_PER_NAME, _make  # noqa: E402

from package_storage.packages.artifacts import build_zip  # noqa: E402
from package_storage.packages.trees import FolderTree  # noqa: E402
from package_storage.store.directory import Store  # noqa: E402
from package_storage.store.locator import open_store  # noqa: E402
from package_storage.store.storage.base import ArtifactRecord  # noqa: E402

EXAMPLE = REPO / "examples" / "packages" / "hello_nginx" / "1.1.0"
SCRIPT = Path(sys.executable).parent / "package-storage"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def make_zips(count: int, work: Path, first: int) -> list[tuple[str, bytes]]:
    """``count`` valid zips of hello_nginx 3.0.first, 3.0.first+1, ..."""
    import re

    zips = []
    for i in range(first, first + count):
        version = f"3.0.{i}"
        dest = work / "src" / version
        shutil.copytree(EXAMPLE, dest)
        manifest = dest / "manifest.yml"
        manifest.write_text(
            re.sub(r"(?m)^version: .*$", f"version: {version}", manifest.read_text(), count=1)
        )
        (dest / "changelog.yml").write_text(
            f'- version: "{version}"\n  changes:\n    - description: Bench release.\n'
            f"      type: enhancement\n      link: https://example.com/bench/{version}\n"
        )
        zips.append((version, build_zip(FolderTree(dest), "hello_nginx", version)))
    return zips


def corpus(versions: int) -> list[tuple[str, str, bytes]]:
    """``versions`` real zips (the example packages under new names and versions; replicas
    parse every artifact they serve), made in a process pool."""
    names = (versions + VERSIONS_PER_NAME - 1) // VERSIONS_PER_NAME
    jobs = [(n, i) for n in range(names) for i in range(VERSIONS_PER_NAME)][:versions]
    with ProcessPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        return list(pool.map(_make, jobs, chunksize=64))


def fill_records(store: Store, n: int) -> float:
    """``n`` entries over the three stages whose artifacts are records only (publish and
    promote never read other packages' blobs); the seconds it took."""
    start = time.perf_counter()
    with store.catalog.transaction() as tx:
        for i in range(n):
            stage = ("production", "staging", "snapshot")[i % 3]
            name, version = f"filler_{i // 10:05d}", f"1.{i % 10}.0"
            digest = hashlib.sha256(f"{name}-{version}".encode()).hexdigest()
            tx.add_artifact(ArtifactRecord(digest, 1000, name, version))
            tx.put_entry(stage, name, version, digest, actor="bench")
        for dist in ("production", "staging", "snapshot"):
            tx.new_revision(dist)
    return time.perf_counter() - start


def fill(store: Store, made: list[tuple[str, str, bytes]]) -> float:
    """Put every zip in the blob store and record them over the three stages in one
    transaction; the seconds it took."""
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:  # S3 PUTs overlap
        digests = list(pool.map(store.blobs.put, [data for _, _, data in made]))
    with store.catalog.transaction() as tx:
        for i, ((name, version, data), digest) in enumerate(zip(made, digests, strict=True)):
            stage = ("production", "staging", "snapshot")[i % 3]
            tx.add_artifact(ArtifactRecord(digest, len(data), name, version))
            tx.put_entry(stage, name, version, digest, actor="bench")
        for dist in ("production", "staging", "snapshot"):
            tx.new_revision(dist)
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 2),
        "p99_ms": round(pct(values, 0.99), 2),
        "max_ms": round(max(values) * 1000, 2),
        "n": len(values),
    }


# --- the combinations ------------------------------------------------------------------------


@contextmanager
def combination(name: str, work: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(location, environment) of a fresh store of combination ``name``."""
    root = work / name
    if name == "sqlite+folder":
        yield str(root), {}
        return
    if name == "postgresql+s3":
        import pg_server  # tests/pg_server.py
        from s3_server import S3Server  # tests/s3_server.py

        with ExitStack() as stack:
            url = stack.enter_context(pg_server.temporary_database("ps_bench"))
            s3 = stack.enter_context(S3Server())
            env = s3.env()
            os.environ.update(env)
            blobs = f"s3://{s3.new_bucket()}/blobs"
            subprocess.run(
                [str(SCRIPT), "init", "--store", url, "--blobs", blobs],
                check=True,
                env={**os.environ},
            )
            yield url, env
        return
    raise SystemExit(f"unknown combination {name}")


# --- part 1: operations ----------------------------------------------------------------------


def operations(store: Store, zips: list[tuple[str, bytes]]) -> dict[str, dict[str, float]]:
    service = store.service("bench")
    steps: list[tuple[str, Callable[[str, bytes], Any]]] = [
        ("publish", lambda v, data: service.publish_bytes(data, location=f"bench-{v}.zip")),
        ("promote_staging", lambda v, _: service.promote("hello_nginx", v, to="staging")),
        ("promote_production", lambda v, _: service.promote("hello_nginx", v, to="production")),
    ]
    out = {}
    for label, op in steps:
        times = []
        for version, data in zips:
            start = time.perf_counter()
            op(version, data)
            times.append(time.perf_counter() - start)
        out[label] = summary(times)
    return out


# --- part 2: propagation ---------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_replica(
    location: str, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    handle = log.open("wb")
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            str(SCRIPT),
            "serve",
            "--store",
            location,
            "--address",
            f"127.0.0.1:{port}",
        ],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"replica exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(base + "/snapshot/search", timeout=5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("replica did not start")


def propagation(
    store: Store, location: str, env: dict[str, str], zips: list[tuple[str, bytes]], work: Path
) -> dict[str, Any]:
    service = store.service("bench")
    replicas = [start_replica(location, env, work / f"replica-{i}.log") for i in range(2)]
    times: list[float] = []
    try:
        with httpx.Client(timeout=10) as client:
            for version, data in zips:
                time.sleep(random.uniform(0.05, 0.15))
                service.publish_bytes(data, location=f"bench-{version}.zip")
                committed = time.perf_counter()
                pending = {base for _, base in replicas}
                while pending:
                    for base in list(pending):
                        url = f"{base}/snapshot/package/hello_nginx/{version}/"
                        if client.get(url).status_code == 200:
                            times.append(time.perf_counter() - committed)
                            pending.discard(base)
                    if time.perf_counter() - committed > 60:
                        raise SystemExit(f"{version} not served by {pending} after 60 s")
                    time.sleep(0.001)
    finally:
        for proc, _ in replicas:
            proc.terminate()
            proc.wait(30)
    return summary(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=12_000)
    parser.add_argument("--ops", type=int, default=100)
    parser.add_argument("--publishes", type=int, default=40)
    parser.add_argument(
        "--replica-versions",
        type=int,
        default=2000,
        help="Real versions in the store the replicas serve (part 2).",
    )
    parser.add_argument("--combos", nargs="+", default=["sqlite+folder", "postgresql+s3"])
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    results: dict[str, Any] = {
        "versions": args.versions,
        "replica_versions": args.replica_versions,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    with tempfile.TemporaryDirectory(prefix="ps-scaleout-") as tmp:
        work = Path(tmp)
        zips = make_zips(args.ops, work / "ops", 0)
        later = make_zips(args.publishes, work / "prop", args.ops)
        made = corpus(args.replica_versions)
        for name in args.combos:
            with (
                combination(name, work / "ops") as (location, env),
                open_store(location, create=True) as store,
            ):
                before = loadavg()
                filled = fill_records(store, args.versions)
                print(f"{name:14s} {args.versions} entries recorded in {filled:.1f} s")
                ops = operations(store, zips)
                after_ops = loadavg()
            with (
                combination(name, work / "replicas") as (location, env),
                open_store(location, create=True) as store,
            ):
                filled = fill(store, made)
                print(f"{name:14s} {len(made)} real versions stored in {filled:.1f} s")
                before_prop = loadavg()
                prop = propagation(store, location, env, later, work)
                after = loadavg()
            results[name] = {
                "operations": ops,
                "propagation": prop,
                "load": {
                    "operations": [before, after_ops],
                    "propagation": [before_prop, after],
                },
            }
            for label, r in ops.items():
                print(
                    f"{name:14s} {args.versions} versions {label:19s}"
                    f" p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms"
                )
            print(
                f"{name:14s} propagation to 2 replicas ({len(made)} versions):"
                f" p50 {prop['p50_ms']:.1f} ms  p99 {prop['p99_ms']:.1f} ms"
                f"  max {prop['max_ms']:.1f} ms (n={prop['n']})"
            )
            print(
                f"{name:14s} load (1/5/15 min) operations {before} -> {after_ops};"
                f" propagation {before_prop} -> {after}"
            )
    args.out.mkdir(exist_ok=True)
    (args.out / "scaleout.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
