"""Import benchmark: ``package-storage import`` of a package-storage layout folder.

Generates the synthetic corpus of bench/make_corpus.py (``--versions`` versions of real fixture
packages padded to ``--min-files`` files each, plus the 1 MB download-test package), creates an
empty store, and runs the import **through the CLI in a subprocess** into ``production``
(``--on-invalid report --json``), three ways:

* ``cold``: into the empty store (every version validated, zipped, written, recorded);
* ``resume``: the same command again (everything already there: skipped by fingerprint);
* ``git`` (with ``--git``): ``import-git`` of a repository whose ``production`` branch holds the
  corpus as ``packages/``, into another empty store.

For each run: wall time, versions/s and files/s (files counted by the importer), peak RSS of the
whole process tree (the CLI and its worker processes: /proc is polled every 20 ms, RSS summed
over the tree) and of its largest process, and the load average of the machine before the run
(other work on a shared machine slows the figures down). The page cache is warm (the corpus was
just written). Results go to ``bench/out/import.json``.

    python bench/import_bench.py [--versions 2000] [--min-files 50] [--workers N]
                                 [--corpus DIR] [--keep DIR] [--git]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLI = Path(sys.executable).with_name("package-storage")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- process tree RSS ------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids.extend(int(x) for x in fh.read().split())
        except OSError:
            continue
    return kids


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


class TreeSampler:
    """Polls the RSS of a process and its descendants; keeps the peaks."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_total = 0
        self.peak_single = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _tree(self.pid)
            sizes = [_rss(p) for p in pids]
            self.peak_total = max(self.peak_total, sum(sizes))
            self.peak_single = max(self.peak_single, max(sizes, default=0))
            self.peak_processes = max(self.peak_processes, len([s for s in sizes if s]))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- runs ------------------------------------------------------------------------------------


def run_cli(name: str, args: list[str]) -> dict[str, Any]:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(CLI), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{err}")
    report = json.loads(out)
    files = int(report["files"])
    versions = int(report["total"])
    return {
        "run": name,
        "versions": versions,
        "imported": len(report["imported"]),
        "skipped": len(report["skipped"]),
        "rejected": len(report["rejected"]),
        "files": files,
        "workers": report["workers"],
        "batches": report["batches"],
        "wall_seconds": round(wall, 2),
        "import_seconds": round(float(report["seconds"]), 2),
        "versions_per_second": round(versions / wall, 1),
        "files_per_second": round(files / wall),
        "peak_rss_tree_mb": round(sampler.peak_total / 1e6, 1),
        "peak_rss_largest_process_mb": round(sampler.peak_single / 1e6, 1),
        "processes": sampler.peak_processes,
        "load_average_before": round(load, 2),
    }


def make_git_repo(corpus: Path, repo: Path) -> float:
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com")
    env.update(GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, capture_output=True)

    repo.mkdir(parents=True)
    git("init", "-q", "-b", "production")
    shutil.copytree(corpus, repo / "packages")
    git("add", "-A")
    git("-c", "commit.gpgsign=false", "commit", "-q", "-m", "corpus")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--min-files", type=int, default=50)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--corpus", type=Path, help="reuse a corpus made by make_corpus.py")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--git", action="store_true", help="also time import-git")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "import.json")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="import-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        corpus = args.corpus or work / "corpus"
        corpus_seconds = 0.0
        if args.corpus is None:
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    str(HERE / "make_corpus.py"),
                    str(corpus),
                    "--versions",
                    str(args.versions),
                    "--min-files",
                    str(args.min_files),
                ],
                check=True,
            )
            corpus_seconds = time.perf_counter() - started
        common = ["--on-invalid", "report", "--json"]
        if args.workers is not None:
            common += ["--workers", str(args.workers)]
        os.environ.setdefault("PACKAGE_STORAGE_ACTOR", "bench")
        runs = []
        store = work / "store"
        shutil.rmtree(store, ignore_errors=True)
        subprocess.run([str(CLI), "init", "--store", str(store)], check=True, capture_output=True)
        target = ["import", str(corpus), "--stage", "production", "--store", str(store)]
        runs.append(run_cli("cold", [*target, *common]))
        runs.append(run_cli("resume", [*target, *common]))
        git_seconds = None
        if args.git:
            repo = work / "repo"
            shutil.rmtree(repo, ignore_errors=True)
            git_seconds = round(make_git_repo(corpus, repo), 1)
            gstore = work / "git-store"
            shutil.rmtree(gstore, ignore_errors=True)
            subprocess.run(
                [str(CLI), "init", "--store", str(gstore)], check=True, capture_output=True
            )
            gargs = ["import-git", str(repo), "--store", str(gstore), *common]
            runs.append(run_cli("git", gargs))
            runs.append(run_cli("git-resume", gargs))
        result = {
            "benchmark": "import",
            "versions": args.versions,
            "min_files": args.min_files,
            "cpus": os.cpu_count(),
            "corpus_seconds": round(corpus_seconds, 1),
            "git_repo_seconds": git_seconds,
            "runs": runs,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"{'run':<11} {'versions':>8} {'files':>7} {'wall s':>7} {'files/s':>8}"
            f" {'tree RSS MB':>11} {'max proc MB':>11} {'load':>5}"
        )
        for r in runs:
            print(
                f"{r['run']:<11} {r['versions']:>8} {r['files']:>7} {r['wall_seconds']:>7}"
                f" {r['files_per_second']:>8} {r['peak_rss_tree_mb']:>11}"
                f" {r['peak_rss_largest_process_mb']:>11} {r['load_average_before']:>5}"
            )
        print(f"written to {args.out}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
