"""Validation speed: publish-time and load-time validation over the shared fixture packages.

Times, in one process (schemas compiled on first use, as at start-up):

* ``publish``: ``validate_for_publish`` over every package-spec test package
  (../shared/fixtures/package-spec) and over every EPR fixture package (folders and zips under
  ../shared/fixtures/epr);
* ``load``: ``read_package(validate=True)`` (what a registry does at start-up for each package)
  over the EPR fixture packages;
* ``big``: ``validate_for_publish`` of one synthetic package of ``--files`` files (an integration
  package padded with data streams, fields files and Kibana dashboards).

Each figure is the best of ``--repeat`` runs (seconds), printed as a Markdown table and written to
bench/out/validation.json. Run it with another checkout's sources to compare
(``PYTHONPATH=/path/to/other/src``).

    .venv/bin/python bench/validation_bench.py [--repeat 3] [--files 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "fixtures"


def _packages() -> tuple[list[Path], list[Path]]:
    spec_cases = json.loads((SHARED / "package-spec" / "cases.json").read_text())
    spec = [SHARED / "package-spec" / c["path"] for c in spec_cases]
    epr: list[Path] = []
    for root in ("package", "second_package_path"):
        base = SHARED / "epr" / root
        epr += sorted(p.parent for p in base.glob("*/*/manifest.yml"))
    epr += sorted((SHARED / "epr" / "local-storage").glob("*.zip"))
    return spec, epr


def _big_package(root: Path, files: int) -> Path:
    pkg = root / "big" / "1.0.0"
    (pkg / "docs").mkdir(parents=True)
    (pkg / "docs" / "README.md").write_text("# Big\n")
    (pkg / "manifest.yml").write_text(
        "format_version: 3.3.0\nname: big\ntitle: Big\ndescription: Many files.\n"
        "version: 1.0.0\ntype: integration\nowner:\n  github: elastic/integrations\n"
        "  type: elastic\nconditions:\n  kibana:\n    version: ^8.15.0\n"
    )
    (pkg / "changelog.yml").write_text(
        "- version: 1.0.0\n  changes:\n    - description: First.\n      type: enhancement\n"
        "      link: https://github.com/elastic/integrations/pull/1\n"
    )
    base_fields = (
        "- name: data_stream.type\n  type: constant_keyword\n"
        "- name: data_stream.dataset\n  type: constant_keyword\n"
        "- name: data_stream.namespace\n  type: constant_keyword\n"
        "- name: '@timestamp'\n  type: date\n"
    )
    count, n = 4, 0
    while count < files:
        ds = pkg / "data_stream" / f"ds{n:04d}"
        (ds / "fields").mkdir(parents=True)
        (ds / "agent" / "stream").mkdir(parents=True)
        (ds / "manifest.yml").write_text(
            f"title: DS {n}\ntype: logs\nstreams:\n  - input: logfile\n    title: Logs\n"
            f"    description: Logs {n}.\n"
        )
        (ds / "fields" / "base-fields.yml").write_text(base_fields)
        (ds / "fields" / "fields.yml").write_text(
            "".join(f"- name: f{i}\n  type: keyword\n" for i in range(20))
        )
        (ds / "agent" / "stream" / "stream.yml.hbs").write_text("paths: {{paths}}\n")
        dash = pkg / "kibana" / "dashboard"
        dash.mkdir(parents=True, exist_ok=True)
        (dash / f"big-d{n}.json").write_text(json.dumps({"id": f"big-d{n}", "type": "dashboard"}))
        count += 5
        n += 1
    return pkg


def _best(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    if str(REPO / "src") not in sys.path:
        sys.path.append(str(REPO / "src"))
    from package_storage.errors import PackageStorageError
    from package_storage.packages.manifest import read_package
    from package_storage.packages.trees import FolderTree, ZipTree
    from package_storage.packages.validation import validate_for_publish

    def tree(path: Path) -> FolderTree | ZipTree:
        return ZipTree.open(path) if path.suffix == ".zip" else FolderTree(path)

    spec, epr = _packages()

    def publish(paths: list[Path]) -> None:
        for p in paths:
            validate_for_publish(tree(p), version_dir=None if p.suffix == ".zip" else p.name)

    def load(paths: list[Path]) -> None:
        for p in paths:
            # some EPR fixtures are refused on purpose; the time is what counts
            with contextlib.suppress(PackageStorageError):
                read_package(
                    tree(p), validate=True, version_dir=None if p.suffix == ".zip" else p.name
                )

    first = time.perf_counter()
    publish(spec[:1])
    cold = time.perf_counter() - first
    with tempfile.TemporaryDirectory() as tmp:
        big = _big_package(Path(tmp), args.files)
        big_files = sum(1 for f in big.rglob("*") if f.is_file())
        results = {
            "first_package_s (schemas compiled)": round(cold, 3),
            f"publish_package_spec_{len(spec)}_s": round(
                _best(args.repeat, lambda: publish(spec)), 3
            ),
            f"publish_epr_{len(epr)}_s": round(_best(args.repeat, lambda: publish(epr)), 3),
            f"load_epr_{len(epr)}_s": round(_best(args.repeat, lambda: load(epr)), 3),
            f"publish_big_{big_files}_files_s": round(
                _best(args.repeat, lambda: publish([big])), 3
            ),
        }
    print("| measurement | seconds |\n| --- | --- |")
    for key, value in results.items():
        print(f"| {key} | {value} |")
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "validation.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
