"""Publish and promote latency of the store service at 100 and at 10,000 stored versions.

The store is filled in one catalog transaction with synthetic entries spread over the three
stages (the artifacts are records only: these operations never read other packages' blobs).
Then, for each size, ``--ops`` real packages (new versions of the example ``hello_nginx``, built
into deterministic zips beforehand) are published with ``StoreService.publish_bytes`` and promoted
snapshot -> staging -> production with ``StoreService.promote``. Reported per operation: p50 and
p99 of the whole call, and of the catalog transaction alone (the time spent inside
``catalog.transaction()``), plus the growth factor 10,000 / 100.

    python bench/store_ops_bench.py [--ops 200] [--sizes 100 10000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from package_storage.packages.artifacts import build_zip
from package_storage.packages.trees import FolderTree
from package_storage.store.directory import Store
from package_storage.store.storage.base import ArtifactRecord

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "packages" / "hello_nginx" / "1.1.0"


def make_zips(count: int, work: Path) -> list[bytes]:
    """``count`` valid zips of hello_nginx 2.0.0, 2.0.1, ... (real validation at publish)."""
    zips = []
    for i in range(count):
        version = f"2.0.{i}"
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
        zips.append(build_zip(FolderTree(dest), "hello_nginx", version))
    return zips


def fill(store: Store, n: int) -> None:
    with store.catalog.transaction() as tx:
        for i in range(n):
            stage = ("production", "staging", "snapshot")[i % 3]
            name, version = f"filler_{i // 10:05d}", f"1.{i % 10}.0"
            digest = hashlib.sha256(f"{name}-{version}".encode()).hexdigest()
            tx.add_artifact(ArtifactRecord(digest, 1000, name, version))
            tx.put_entry(stage, name, version, digest, actor="bench")
        for dist in ("production", "staging", "snapshot"):
            tx.new_revision(dist)


@contextmanager
def timed_transactions(store: Store, sink: list[float]) -> Iterator[None]:
    """Record how long each catalog transaction (lock, work, commit) takes."""
    catalog = store.catalog
    original = catalog.transaction

    @contextmanager
    def transaction() -> Iterator[Any]:
        start = time.perf_counter()
        with original() as tx:
            yield tx
        sink.append(time.perf_counter() - start)

    catalog.transaction = transaction  # type: ignore[method-assign]
    try:
        yield
    finally:
        catalog.transaction = original  # type: ignore[method-assign]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run(n: int, zips: list[bytes], work: Path) -> dict[str, dict[str, float]]:
    root = work / f"store-{n}"
    store = Store.init(root)
    fill(store, n)
    service = store.service("bench")
    out: dict[str, dict[str, float]] = {}
    versions = [f"2.0.{i}" for i in range(len(zips))]
    steps: list[tuple[str, Any]] = [
        ("publish", lambda i: service.publish_bytes(zips[i], location=f"bench-{i}.zip")),
        ("promote_staging", lambda i: service.promote("hello_nginx", versions[i], to="staging")),
        (
            "promote_production",
            lambda i: service.promote("hello_nginx", versions[i], to="production"),
        ),
    ]
    for label, op in steps:
        total: list[float] = []
        catalog: list[float] = []
        with timed_transactions(store, catalog):
            for i in range(len(zips)):
                start = time.perf_counter()
                op(i)
                total.append(time.perf_counter() - start)
        out[label] = {
            "p50_ms": round(statistics.median(total) * 1000, 2),
            "p99_ms": round(pct(total, 0.99), 2),
            "catalog_p50_ms": round(statistics.median(catalog) * 1000, 2),
            "catalog_p99_ms": round(pct(catalog, 0.99), 2),
        }
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ps-ops-") as tmp:
        work = Path(tmp)
        zips = make_zips(args.ops, work)
        results = {str(n): run(n, zips, work) for n in args.sizes}
    for n, ops in results.items():
        for label, r in ops.items():
            print(
                f"{n:>6} versions  {label:19s} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
                f"  | catalog p50 {r['catalog_p50_ms']:6.2f} ms  p99 {r['catalog_p99_ms']:6.2f} ms"
            )
    if len(args.sizes) >= 2:
        small, large = results[str(args.sizes[0])], results[str(args.sizes[-1])]
        for label in small:
            growth = large[label]["catalog_p50_ms"] / small[label]["catalog_p50_ms"]
            print(f"growth {args.sizes[-1]}/{args.sizes[0]} {label}: catalog p50 x{growth:.2f}")
    args.out.mkdir(exist_ok=True)
    (args.out / "store-ops.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
