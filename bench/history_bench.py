"""``package-storage import-git --history`` on a generated repository shaped like Elastic's.

Elastic's package-storage had about 700 production and 4,700 snapshot first-parent commits; the
repository generated here (``tests/git_history.py``, one ``git fast-import`` run) has the same
counts by default (``--snapshot``, ``--production``, ``--staging``, ``--packages`` change them;
``--scale 0.1`` a tenth of everything), a new package version per commit, old snapshot versions
removed now and then, two legacy branches and tags.

Measures, for the import run as a subprocess of the CLI: wall time, CPU time of the process
tree (user+sys from ``RUSAGE_CHILDREN``), commits/s and versions built; then a second run (every
commit recorded already: resume). Prints the machine load before and after. Writes JSON to
``bench/out/history_bench.json``.

    .venv/bin/python bench/history_bench.py                 # full size (about 5,460 commits)
    .venv/bin/python bench/history_bench.py --scale 0.2     # a fifth, with the extrapolation
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from git_history import make_history_repo  # noqa: E402


def cli() -> list[str]:
    script = Path(sys.executable).parent / "package-storage"
    return [str(script)] if script.exists() else [sys.executable, "-m", "package_storage.cli.main"]


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def timed(args: list[str]) -> dict[str, float | str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "stdout": proc.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=int, default=4700)
    parser.add_argument("--production", type=int, default=700)
    parser.add_argument("--staging", type=int, default=60)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    counts = {
        "snapshot": max(1, round(args.snapshot * args.scale)),
        "production": max(1, round(args.production * args.scale)),
        "staging": max(1, round(args.staging * args.scale)),
    }
    result: dict[str, object] = {"counts": counts, "load_before": loadavg()}
    with tempfile.TemporaryDirectory(prefix="history-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        repo = make_history_repo(root, packages=args.packages, **counts)
        result["generate_seconds"] = round(time.perf_counter() - start, 2)
        commits = sum(repo.commits.values())
        result["commits"] = commits
        store = root / "store"
        subprocess.run([*cli(), "init", "--store", str(store)], check=True, capture_output=True)
        command = [
            *cli(),
            "import-git",
            str(repo.path),
            "--history",
            "--on-invalid",
            "report",
            "--json",
            "--store",
            str(store),
        ]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        first = timed(command)
        report = json.loads(str(first["stdout"]))
        second = timed(command)
        again = json.loads(str(second["stdout"]))
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    wall = float(first["wall"])
    result.update(
        {
            "import_seconds": round(wall, 2),
            "import_cpu_seconds": round(float(first["cpu"]), 2),
            "commits_per_second": round(commits / wall, 1),
            "steps": report["steps"],
            "trees_built": report["built"],
            "rejected": len(report["rejected"]),
            "batches": report["batches"],
            "tags": [t["tag"] for t in report["tags"] if t["status"] == "created"],
            "rerun_seconds": round(float(second["wall"]), 2),
            "rerun_steps": again["steps"],
            "store_bytes": size,
            "load_after": loadavg(),
            "cpus": os.cpu_count(),
        }
    )
    if args.scale != 1.0:
        result["extrapolated_full_seconds"] = round(wall / args.scale, 1)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "history_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
