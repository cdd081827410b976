"""Publish time of a normal 2,000-file package, to compare the code before and after the
archive-safety gate (``packages/safety.py``).

The package is the example ``hello_nginx`` 1.1.0 padded with synthetic Kibana visualizations
(JSON, 200-2,000 bytes each, like ``make_corpus.py --min-files``) to ``--files`` files. Each
round publishes it into a fresh store, once as a folder (gate walk + validation + deterministic
zip + blobs + catalog) and once as the zip that the folder publish built (gate parse and
streamed check + validation + blobs + catalog); the store is created outside the timed part.
``--src`` runs the same measurement against another checkout's ``src/`` (e.g. main before the
gate: ``git worktree add /tmp/base e9e4e29`` then ``--src /tmp/base/src``).

    python bench/gate_bench.py [--files 2000] [--rounds 15] [--src DIR] [--label NAME]

Prints and writes ``bench/out/gate-<label>.json``: median, p10 and p90 seconds per publish for
folders and zips, and the gate's own share (measured separately when the gate exists).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "packages" / "hello_nginx" / "1.1.0"


def make_package(dest: Path, files: int) -> Path:
    pkg = dest / "hello_nginx" / "1.1.0"
    shutil.copytree(EXAMPLE, pkg)
    have = sum(1 for p in pkg.rglob("*") if p.is_file())
    target = pkg / "kibana" / "visualization"
    target.mkdir(parents=True)
    rng = random.Random(42)
    for k in range(files - have):
        padding = "x" * rng.randrange(200, 2000)
        body = f'{{"title": "Synthetic visualization {k}", "seed": {k}, "padding": "{padding}"}}\n'
        (target / f"synthetic-{k:04d}.json").write_text(body)
    return pkg


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "median_s": round(statistics.median(ordered), 4),
        "p10_s": round(at(0.1), 4),
        "p90_s": round(at(0.9), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--src", type=Path, default=None, help="another checkout's src/")
    parser.add_argument("--label", default=None)
    args = parser.parse_args()
    if args.src is not None:
        sys.path.insert(0, str(args.src.resolve()))
    import package_storage
    from package_storage.store.directory import Store

    where = Path(package_storage.__file__).resolve().parent
    has_gate = (where / "packages" / "safety.py").exists()
    label = args.label or ("gate" if has_gate else "base")
    work = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    try:
        pkg = make_package(work / "in", args.files)
        zip_path = work / "in" / "hello_nginx-1.1.0.zip"
        folder_times: list[float] = []
        zip_times: list[float] = []
        for i in range(args.rounds + 1):  # the first round warms caches and imports
            with Store.init(work / f"s{i}" / "store") as store:
                svc = store.service("bench")
                t0 = time.perf_counter()
                result = svc.publish(pkg)
                folder_t = time.perf_counter() - t0
                if i == 0:
                    assert result.changed
                    entry = store.catalog.get_entry("snapshot", "hello_nginx", "1.1.0")
                    assert entry is not None
                    zip_path.write_bytes(store.blobs.get(entry.artifact))
            with Store.init(work / f"z{i}" / "store") as store:
                svc = store.service("bench")
                t0 = time.perf_counter()
                svc.publish(zip_path)
                zip_t = time.perf_counter() - t0
            shutil.rmtree(work / f"s{i}")
            shutil.rmtree(work / f"z{i}")
            if i:
                folder_times.append(folder_t)
                zip_times.append(zip_t)
        out: dict[str, Any] = {
            "label": label,
            "code": str(where),
            "files": args.files,
            "zip_bytes": zip_path.stat().st_size,
            "rounds": args.rounds,
            "folder": _quantiles(folder_times),
            "zip": _quantiles(zip_times),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        }
        if has_gate:
            from package_storage.packages import safety

            gate_folder, gate_zip = [], []
            data = zip_path.read_bytes()
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                safety.check_folder(pkg)
                gate_folder.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                safety.check_zip(data, str(zip_path))
                gate_zip.append(time.perf_counter() - t0)
            out["gate_only"] = {
                "folder_walk": _quantiles(gate_folder),
                "zip_check": _quantiles(gate_zip),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / f"gate-{label}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PACKAGE_STORAGE_ACTOR", "bench")
    main()
