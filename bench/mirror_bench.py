"""Mirror benchmark: ``package-storage mirror`` of a local upstream of N versions.

Generates the synthetic corpus of bench/make_corpus.py (``--versions`` versions padded to
``--min-files`` files each), imports it into an upstream store's ``production`` (signed with the
upstream store's key), serves that store with ``package-storage serve --store`` on loopback
(pinned to CPU 0) and runs the mirror **through the CLI in a subprocess** (pinned to CPU 1) into
an empty store, twice:

* ``cold``: everything (``--prerelease``: all versions) is listed, downloaded (zip + .sig), checked and recorded;
* ``again``: the same command (nothing new: only the listing and the comparison).

For each run: wall time, MB/s of zip bytes over the wall time and over the download phase, peak
RSS of the mirror's process tree (import_bench.TreeSampler, /proc polled every 20 ms), and the
load average before the run. Results go to ``bench/out/mirror.json``.

    python bench/mirror_bench.py [--versions 2000] [--min-files 50] [--workers 8] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from import_bench import TreeSampler

HERE = Path(__file__).resolve().parent
CLI = Path(sys.executable).with_name("package-storage")


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() != 1 else []


def _cli(*args: str) -> None:
    subprocess.run([str(CLI), *args], check=True, capture_output=True)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_mirror(name: str, args: list[str]) -> dict[str, Any]:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*_pin(1), str(CLI), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{err}")
    report = json.loads(out)
    size = int(report["bytes"])
    download = float(report["download_seconds"])
    return {
        "run": name,
        "selected": report["selected"],
        "new": len(report["new"]),
        "present": report["present"],
        "failed": len(report["failed"]),
        "rejected": len(report["rejected"]),
        "mb": round(size / 1e6, 1),
        "wall_seconds": round(wall, 2),
        "download_seconds": round(download, 2),
        "mb_per_second_wall": round(size / 1e6 / wall, 1),
        "mb_per_second_download": round(size / 1e6 / download, 1) if download else None,
        "peak_rss_tree_mb": round(sampler.peak_total / 1e6, 1),
        "load_average_before": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--min-files", type=int, default=50)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "mirror.json")
    args = parser.parse_args()

    os.environ.setdefault("PACKAGE_STORAGE_ACTOR", "bench")
    work = args.keep or Path(tempfile.mkdtemp(prefix="mirror-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    server: subprocess.Popen[bytes] | None = None
    try:
        corpus, up, down = work / "corpus", work / "upstream", work / "down"
        started = time.perf_counter()
        if not corpus.exists():
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
        if not up.exists():
            _cli("init", "--store", str(up))
            _cli("keys", "generate", "--store", str(up))
            imp = ["import", "--on-invalid", "report", str(corpus), "--stage", "production"]
            _cli(*imp, "--store", str(up))
        setup = time.perf_counter() - started
        port = _port()
        server = subprocess.Popen(
            [*_pin(0), str(CLI), "serve", "--store", str(up), "--address", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=work,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the upstream server did not start")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        shutil.rmtree(down, ignore_errors=True)
        _cli("init", "--store", str(down))
        cmd = ["mirror", base + "/production", "--stage", "production", "--store", str(down)]
        cmd += ["--prerelease", "--workers", str(args.workers), "--json"]
        runs = [run_mirror("cold", cmd), run_mirror("again", cmd)]
        result = {
            "benchmark": "mirror",
            "versions": args.versions,
            "min_files": args.min_files,
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "setup_seconds": round(setup, 1),
            "runs": runs,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"{'run':<6} {'new':>5} {'present':>7} {'MB':>7} {'wall s':>7} {'MB/s':>6}"
            f" {'dl MB/s':>7} {'RSS MB':>7} {'load':>5}"
        )
        for r in runs:
            print(
                f"{r['run']:<6} {r['new']:>5} {r['present']:>7} {r['mb']:>7} {r['wall_seconds']:>7}"
                f" {r['mb_per_second_wall']:>6} {r['mb_per_second_download'] or '-':>7}"
                f" {r['peak_rss_tree_mb']:>7} {r['load_average_before']:>5}"
            )
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
