"""`package-storage publish ZIP --store DIR` as a new process (issue 15: <= 200 ms wall).

Builds a small real package (the example ``hello_nginx`` 1.0.0, ~5 KB zip) once, makes a
template store per case, then for each of ``--runs`` rounds copies the template to a fresh store
and times one ``publish`` process (wall from fork to exit, and its CPU time from ``wait4``).
Also times the interpreter alone (``python -c pass``), ``import sqlalchemy`` alone (the catalog's
library: the floor of a local publish), and the imports of the publish path alone
(``import package_storage.cli.main, package_storage.cli.store, package_storage.store.locator``),
and prints the biggest imports of one ``-X importtime`` publish (top-level packages by their own
time). Cases: ``plain`` (a store without keys), ``signed`` (a signing key sealed with
``PACKAGE_STORAGE_KEY_PASSPHRASE``: each publish unseals it and signs), ``signed-file`` (a key
without passphrase in ``DIR/keys``).

Each process runs like an installed package-storage: its bytecode cached (in a private
``PYTHONPYCACHEPREFIX``, written by a warm-up run; the work tree stays clean) unless
``--no-bytecode`` (every module of ``src/`` compiled in every process, as under
``PYTHONDONTWRITEBYTECODE=1``). Pinned to CPU 1 (``taskset``) when there is more than one CPU.
``--baseline-src DIR`` runs another source tree's ``src`` in the same run, alternating rounds,
for a before/after under the same load. Figures go to ``bench/out/cli_bench.json``; the load
average is printed before and after each case.

    .venv/bin/python bench/cli_bench.py --runs 30 [--baseline-src /tmp/base/src] [--cases plain,signed]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "examples" / "packages" / "hello_nginx" / "1.0.0"
OUT = ROOT / "bench" / "out"
PASSPHRASE = "bench passphrase"
PASSPHRASE_ENV = "PACKAGE_STORAGE_KEY_PASSPHRASE"
CASES = ("plain", "signed", "signed-file")
IMPORTS = (
    "import package_storage.cli.main, package_storage.cli.store, package_storage.store.locator"
)
CLI = "import sys; from package_storage.cli.main import main; sys.exit(main())"


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pin() -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", "1"]
    return []


class Tree:
    """One source tree to run: its ``src`` on ``PYTHONPATH`` and its own bytecode cache."""

    def __init__(self, label: str, src: Path, work: Path, bytecode: bool) -> None:
        self.label = label
        self.src = src
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = str(src)
        env.pop(PASSPHRASE_ENV, None)
        if bytecode:
            env["PYTHONPYCACHEPREFIX"] = str(work / f"pycache-{label}")
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.env = env

    def run(
        self, code: str, *args: str, extra: dict[str, str] | None = None, check: bool = True
    ) -> tuple[float, float, subprocess.CompletedProcess[str]]:
        """(wall s, CPU s of the child, result) of ``python -c code args...``."""
        env = dict(self.env, **(extra or {}))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            [*pin(), sys.executable, "-c", code, *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if check and done.returncode != 0:
            raise SystemExit(f"{self.label}: {' '.join(args) or code} failed:\n{done.stderr}")
        return wall, cpu, done

    def cli(self, *args: str, extra: dict[str, str] | None = None) -> tuple[float, float]:
        wall, cpu, _ = self.run(CLI, *args, extra=extra)
        return wall, cpu


def case_env(case: str) -> dict[str, str]:
    return {PASSPHRASE_ENV: PASSPHRASE} if case == "signed" else {}


def make_template(tree: Tree, case: str, where: Path) -> Path:
    store = where / f"template-{tree.label}-{case}"
    tree.cli("init", "--store", str(store))
    if case != "plain":
        tree.cli("keys", "generate", "--store", str(store), extra=case_env(case))
    return store


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]

    return {
        "p50": statistics.median(ordered),
        "p90": pct(0.9),
        "min": ordered[0],
        "max": ordered[-1],
    }


def ms(row: dict[str, float]) -> str:
    return " ".join(f"{k} {v * 1000:7.1f}" for k, v in row.items())


def top_imports(
    tree: Tree, case: str, zip_path: Path, template: Path, where: Path, count: int
) -> list[str]:
    store = where / "importtime-store"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(template, store)
    _, _, done = tree.run(
        CLI,
        "publish",
        str(zip_path),
        "--store",
        str(store),
        extra={"PYTHONPROFILEIMPORTTIME": "1", **case_env(case)},
    )
    own: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cum, name = line.split(":", 1)[1].split("|")
        parts = name.strip().split(".")
        key = ".".join(parts[:3]) if parts[0] == "package_storage" else parts[0]
        own[key] += int(self_us)
    total = sum(own.values())
    lines = [f"all imports {total / 1000:.1f} ms (importtime's own figures, inflated by it)"]
    lines += [f"  {us / 1000:6.1f} ms  {name}" for name, us in own.most_common(count)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cases", default="plain,signed", help=f"of {','.join(CASES)}")
    parser.add_argument("--src", type=Path, default=ROOT / "src")
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--no-bytecode", action="store_true")
    parser.add_argument("--top", type=int, default=12, help="imports listed (0: none)")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    for case in cases:
        if case not in CASES:
            parser.error(f"--cases: {case} is not one of {', '.join(CASES)}")
    runs = max(1, min(args.runs, 500))

    with tempfile.TemporaryDirectory(prefix="cli-bench-") as tmp:
        work = Path(tmp)
        trees = [Tree("this", args.src.resolve(), work, not args.no_bytecode)]
        if args.baseline_src is not None:
            trees.insert(
                0, Tree("baseline", args.baseline_src.resolve(), work, not args.no_bytecode)
            )
        zips = work / "zips"
        trees[-1].cli("build", str(PACKAGE), "-o", str(zips))
        (zip_path,) = sorted(zips.glob("*.zip"))
        results: dict[str, object] = {
            "runs": runs,
            "bytecode": not args.no_bytecode,
            "package": f"{zip_path.name} ({zip_path.stat().st_size} bytes)",
            "cpu_pinned": bool(pin()),
        }
        print(f"{zip_path.name}: {zip_path.stat().st_size} bytes; {runs} runs per figure")

        # Interpreter and import-only time (a warm-up first writes the bytecode caches).
        for tree in trees:
            tree.run(IMPORTS)
        print(f"load before imports: {load()}")
        timing: dict[str, dict[str, list[float]]] = {
            t.label: {"python": [], "import sqlalchemy": [], "imports": []} for t in trees
        }
        for _ in range(runs):
            for tree in trees:
                timing[tree.label]["python"].append(tree.run("pass")[0])
                timing[tree.label]["import sqlalchemy"].append(tree.run("import sqlalchemy")[0])
                timing[tree.label]["imports"].append(tree.run(IMPORTS)[0])
        for tree in trees:
            for what, values in timing[tree.label].items():
                row = stats(values)
                results[f"{tree.label}/{what}"] = row
                print(f"{tree.label:8s} {what:22s} wall ms: {ms(row)}")

        for case in cases:
            templates = {t.label: make_template(t, case, work) for t in trees}
            walls: dict[str, list[float]] = {t.label: [] for t in trees}
            cpus: dict[str, list[float]] = {t.label: [] for t in trees}
            for tree in trees:  # warm-up (bytecode of the publish path)
                store = work / f"warm-{tree.label}-{case}"
                shutil.copytree(templates[tree.label], store)
                tree.cli("publish", str(zip_path), "--store", str(store), extra=case_env(case))
            before = load()
            for i in range(runs):
                for tree in trees:
                    store = work / f"run-{tree.label}-{case}-{i}"
                    shutil.copytree(templates[tree.label], store)
                    wall, cpu = tree.cli(
                        "publish", str(zip_path), "--store", str(store), extra=case_env(case)
                    )
                    walls[tree.label].append(wall)
                    cpus[tree.label].append(cpu)
                    shutil.rmtree(store)
            after = load()
            print(f"publish [{case}] load before {before} after {after}")
            for tree in trees:
                wall_row, cpu_row = stats(walls[tree.label]), stats(cpus[tree.label])
                results[f"{tree.label}/publish-{case}"] = {"wall": wall_row, "cpu": cpu_row}
                print(f"{tree.label:8s} publish {case:14s} wall ms: {ms(wall_row)}")
                print(f"{'':8s} {'':22s} CPU  ms: {ms(cpu_row)}")
            results[f"load/publish-{case}"] = {"before": before, "after": after}
            if args.top:
                for line in top_imports(
                    trees[-1], case, zip_path, templates[trees[-1].label], work, args.top
                ):
                    print(f"[{case}] {line}")

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cli_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {OUT / 'cli_bench.json'}")


if __name__ == "__main__":
    main()
