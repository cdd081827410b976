"""Export benchmark: an air-gapped bundle of a 2,000-version distribution for one Kibana version.

Builds a store (SQLite catalog + local blob folder) holding the synthetic corpus of
bench/make_corpus.py in ``production`` (the 1 MB download-test package is left out, so the
distribution has exactly ``--versions`` versions), each artifact with a detached signature, then
times ``export_bundle`` for one Kibana version and reports time and bundle size.

The store is filled through the catalog and blob store directly (build_zip + one transaction),
not through ``StoreService.publish``: the corpus has no changelog.yml, which the publish-time
rules require. Artifacts carry the manifest summary the service records (``kibana_version``),
so the export takes its normal path; the ``no-summary`` run drops it from the catalog records
to time the fallback that reads ``manifest.yml`` out of every zip (stores whose records lack
the summary). A full export (no Kibana filter) is timed too. Page cache is warm (the corpus
and store were just written); every run writes a fresh bundle after ``sync`` (the export does
not fsync: its files are in the page cache when it returns, flushed by the kernel later).

    python bench/export_bench.py [--versions 2000] [--kibana 8.12.0] [--corpus DIR] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_corpus import BIG_PACKAGE, generate  # noqa: E402

from package_storage.packages.artifacts import build_zip  # noqa: E402
from package_storage.packages.manifest import read_package  # noqa: E402
from package_storage.packages.trees import FolderTree  # noqa: E402
from package_storage.store.storage.base import ArtifactRecord  # noqa: E402
from package_storage.store.storage.localfs import LocalBlobStore  # noqa: E402
from package_storage.store.storage.sqlite import SQLiteCatalog  # noqa: E402
from package_storage.transfer.export import export_bundle  # noqa: E402

FAKE_SIG = b"-----BEGIN PGP SIGNATURE-----\n\n" + b"A" * 560 + b"\n-----END PGP SIGNATURE-----\n"


def _zip_one(folder: str) -> tuple[str, str, bytes, str | None]:
    tree = FolderTree(Path(folder))
    pkg = read_package(tree, validate=True, version_dir=Path(folder).name)
    version = str(pkg.version)
    kibana = None if pkg.kibana_version is None else str(pkg.kibana_version)
    return pkg.name, version, build_zip(tree, pkg.name, version), kibana


def build_store(corpus: Path, store: Path, *, summaries: bool) -> int:
    folders = sorted(str(v) for n in corpus.iterdir() if n.name != BIG_PACKAGE for v in n.iterdir())
    with ProcessPoolExecutor() as pool:
        built = list(pool.map(_zip_one, folders, chunksize=32))
    blobs = LocalBlobStore(store / "blobs", fsync=False)
    catalog = SQLiteCatalog(store / "catalog.db")
    try:
        with catalog.transaction() as tx:
            for name, version, data, kibana in built:
                digest = blobs.put(data)
                sig = blobs.put(FAKE_SIG + f"{name}-{version}\n".encode())
                manifest: dict[str, Any] = {"title": name, "kibana_version": kibana}
                tx.add_artifact(
                    ArtifactRecord(
                        digest, len(data), name, version, sig, manifest if summaries else {}
                    )
                )
                tx.put_entry("production", name, version, digest, actor="bench")
            for dist in tx.stages().affected_distributions("production"):
                tx.new_revision(dist)
    finally:
        catalog.close()
    return len(built)


class _NoSummary:
    """A catalog reader whose artifact records lack the manifest summary."""

    def __init__(self, inner: SQLiteCatalog) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_artifact(self, digest: str) -> ArtifactRecord | None:
        record = self._inner.get_artifact(digest)
        return None if record is None else replace(record, manifest={})


def run_export(
    store: Path, out: Path, kibana: str | None, *, summary: bool, repeat: int
) -> dict[str, Any]:
    catalog = SQLiteCatalog(store / "catalog.db")
    blobs = LocalBlobStore(store / "blobs", fsync=False)
    reader: Any = catalog if summary else _NoSummary(catalog)
    times: list[float] = []
    report = None
    try:
        for _ in range(repeat):
            if out.exists():
                shutil.rmtree(out)
            os.sync()  # start each run without earlier runs' writeback competing for the disk
            started = time.perf_counter()
            report = export_bundle(
                reader, blobs, "production", out, kibana_version=kibana, latest=None
            )
            times.append(time.perf_counter() - started)
    finally:
        catalog.close()
    assert report is not None
    return {
        "kibana_version": kibana,
        "manifest_summary": summary,
        "in_revision": report.in_revision,
        "versions": report.versions,
        "packages": report.packages,
        "signatures": report.signatures,
        "files": report.files,
        "bundle_bytes": report.bundle_bytes,
        "bundle_mb": round(report.bundle_bytes / 1e6, 2),
        "seconds_median": round(statistics.median(times), 3),
        "seconds_min": round(min(times), 3),
        "seconds_all": [round(t, 3) for t in times],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--kibana", default="8.12.0")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", type=Path, help="reuse or create the corpus here")
    parser.add_argument("--keep", type=Path, help="keep the store and bundles here")
    parser.add_argument(
        "--fixtures", type=Path, default=HERE.parent.parent / "shared" / "fixtures" / "epr"
    )
    parser.add_argument("--json", type=Path, default=HERE / "out" / "export.json")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="export-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        corpus = args.corpus or work / "corpus"
        if not (corpus.is_dir() and any(corpus.iterdir())):
            generate(corpus, args.fixtures, args.versions, 0)
        store = work / "store"
        if store.exists():
            shutil.rmtree(store)
        started = time.perf_counter()
        count = build_store(corpus, store, summaries=True)
        build_seconds = time.perf_counter() - started
        print(f"store: {count} versions in production, built in {build_seconds:.1f} s")
        runs = [
            run_export(
                store, work / "bundle-kibana", args.kibana, summary=True, repeat=args.repeat
            ),
            run_export(
                store, work / "bundle-kibana-ns", args.kibana, summary=False, repeat=args.repeat
            ),
            run_export(store, work / "bundle-all", None, summary=True, repeat=args.repeat),
        ]
        for run in runs:
            label = f"Kibana {run['kibana_version']}" if run["kibana_version"] else "all versions"
            label += "" if run["manifest_summary"] else " (no summary: manifests read from zips)"
            print(
                f"{label}: {run['versions']} of {run['in_revision']} versions"
                f" ({run['packages']} packages, {run['signatures']} signatures),"
                f" {run['files']} files, {run['bundle_mb']} MB ({run['bundle_bytes']} bytes),"
                f" {run['seconds_median']} s median of {len(run['seconds_all'])}"
            )
        result = {
            "benchmark": "export",
            "versions": count,
            "cpus": os.cpu_count(),
            "store_build_seconds": round(build_seconds, 1),
            "runs": runs,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written {args.json}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
