"""Delta bundle benchmark: a full bundle for one Kibana version against a one-week delta.

Builds a store holding the synthetic corpus of bench/make_corpus.py in ``production`` (filled
through the catalog and blob store directly, as export_bench.py does, without signatures),
tags it ``week0``, then adds ``--new`` versions (copies of existing versions compatible with
the Kibana version under a new major version: about a week of Elastic's production change
rate) and yanks one. Then, for ``--kibana``:

* exports the full bundle at ``production@week0`` and the delta ``production --since week0``
  (sizes, times);
* imports the full bundle into a fresh store, then the delta on top of it, each with the CLI
  in a new process (``package-storage import OUT --stage production``), timed;
* checks that the site's production holds the upstream selection (the delta's
  ``selection_digest``).

    python bench/delta_bench.py [--versions 2000] [--new 30] [--kibana 8.12.0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_corpus import BIG_PACKAGE, generate  # noqa: E402

from package_storage.packages.artifacts import build_zip  # noqa: E402
from package_storage.packages.manifest import read_package  # noqa: E402
from package_storage.packages.trees import FolderTree  # noqa: E402
from package_storage.packages.versions import Constraint, Version  # noqa: E402
from package_storage.store.directory import Store  # noqa: E402
from package_storage.store.storage.base import ArtifactRecord  # noqa: E402
from package_storage.transfer.delta import stage_digest  # noqa: E402
from package_storage.transfer.export import export_bundle  # noqa: E402

CLI = str(Path(sys.executable).parent / "package-storage")


def _add(store: Store, folders: list[Path]) -> int:
    with store.catalog.transaction() as tx:
        for folder in folders:
            tree = FolderTree(folder)
            pkg = read_package(tree, validate=True, version_dir=folder.name)
            version = str(pkg.version)
            data = build_zip(tree, pkg.name, version)
            digest = store.blobs.put(data)
            kibana = None if pkg.kibana_version is None else str(pkg.kibana_version)
            manifest: dict[str, Any] = {"title": pkg.name, "kibana_version": kibana}
            tx.add_artifact(ArtifactRecord(digest, len(data), pkg.name, version, None, manifest))
            tx.put_entry("production", pkg.name, version, digest, actor="bench")
        for dist in tx.stages().affected_distributions("production"):
            tx.new_revision(dist)
    return len(folders)


def _new_versions(corpus: Path, out: Path, n: int, kibana: Version) -> list[Path]:
    """``n`` copies of compatible versions of distinct packages, as version ``90+i.0.0``."""
    made: list[Path] = []
    for name in sorted(p for p in corpus.iterdir() if p.name != BIG_PACKAGE):
        if len(made) >= n:
            break
        src = sorted(name.iterdir())[0]
        manifest = (src / "manifest.yml").read_text()
        pkg = read_package(FolderTree(src), validate=False, version_dir=src.name)
        if pkg.kibana_version is not None and not Constraint.parse(str(pkg.kibana_version)).check(
            kibana
        ):
            continue
        version = f"{90 + len(made)}.0.0"
        dst = out / name.name / version
        shutil.copytree(src, dst)
        text = re.sub(r"^version:.*$", f"version: {version}", manifest, count=1, flags=re.M)
        (dst / "manifest.yml").write_text(text)
        made.append(dst)
    return made


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _import(bundle: Path, store: Path) -> float:
    os.sync()
    started = time.perf_counter()
    subprocess.run(
        [CLI, "import", str(bundle), "--stage", "production", "--store", str(store)],
        check=True,
        capture_output=True,
        env={**os.environ, "PACKAGE_STORAGE_ACTOR": "bench"},
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--new", type=int, default=30)
    parser.add_argument("--kibana", default="8.12.0")
    parser.add_argument("--keep", type=Path)
    parser.add_argument(
        "--fixtures", type=Path, default=HERE.parent.parent / "shared" / "fixtures" / "epr"
    )
    parser.add_argument("--json", type=Path, default=HERE / "out" / "delta.json")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="delta-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        corpus = work / "corpus"
        if not (corpus.is_dir() and any(corpus.iterdir())):
            generate(corpus, args.fixtures, args.versions, 0)
        for name in ("upstream", "site", "full", "delta", "new"):
            shutil.rmtree(work / name, ignore_errors=True)
        upstream = Store.init(work / "upstream")
        folders = sorted(v for n in corpus.iterdir() if n.name != BIG_PACKAGE for v in n.iterdir())
        count = _add(upstream, folders)
        with upstream.catalog.transaction() as tx:
            current = tx.current_revision("production")
            assert current is not None
            tx.add_tag("production", "week0", current.number, actor="bench")
        new = _new_versions(corpus, work / "new", args.new, Version.parse_lenient(args.kibana))
        _add(upstream, new)
        entry = upstream.catalog.entries("production")[0]
        upstream.service("bench").yank(entry.name, entry.version, stage="production", reason="b")

        def export(ref: str, out: Path, since: str | None) -> tuple[Any, float]:
            started = time.perf_counter()
            report = export_bundle(
                upstream.catalog,
                upstream.blobs,
                ref,
                out,
                kibana_version=args.kibana,
                latest=None,
                since=since,
            )
            return report, time.perf_counter() - started

        full, full_s = export("production@week0", work / "full", None)
        delta, delta_s = export("production", work / "delta", "week0")
        upstream.close()
        site = work / "site"
        Store.init(site).close()
        import_full = _import(work / "full", site)
        import_delta = _import(work / "delta", site)
        with Store.open(site) as s:
            reproduced = stage_digest(s.service("bench"), "production") == delta.selection_digest
        result = {
            "benchmark": "delta",
            "versions": count,
            "new_versions": len(new),
            "kibana_version": args.kibana,
            "cpus": os.cpu_count(),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            "full": {
                "versions": full.versions,
                "bundle_bytes": _size(work / "full"),
                "export_seconds": round(full_s, 3),
                "import_seconds": round(import_full, 3),
            },
            "delta": {
                "versions": delta.versions,
                "yanks": len(delta.yanks),
                "bundle_bytes": _size(work / "delta"),
                "export_seconds": round(delta_s, 3),
                "import_seconds": round(import_delta, 3),
            },
            "reproduced": reproduced,
        }
        print(json.dumps(result, indent=2))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
