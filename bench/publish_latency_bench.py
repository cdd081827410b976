"""Publish -> served latency: how long after a publish (the catalog commit, i.e. when the
``publish`` command returns) a running ``package-storage serve --store`` serves the new version.

1. Builds a store of ``--versions`` synthetic versions in production (``store_switch_bench``).
2. For each source tree (``--baseline-src DIR``: another checkout's ``src``, e.g. main before
   change notification; then this checkout), on its own copy of that store: starts
   ``serve --store`` pinned to CPU 0 (default configuration, access log to a file), and from
   this process (CPU 1) publishes ``--publishes`` new versions to snapshot, one at a time, at
   random gaps of 50-150 ms; after each commit it requests
   ``/snapshot/package/NAME/VERSION/`` every ms until it answers 200, and records the time
   from the commit's return to that 200.
3. Reports p50/p90/p99/max per source tree, the server's CPU time while idle (the cost of
   polling) and the load average.

    python bench/publish_latency_bench.py [--versions 1000] [--publishes 50]
        [--baseline-src /tmp/before/src] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from store_switch_bench import build_store, make_zip  # noqa: E402

from package_storage.store.storage.base import ArtifactRecord  # noqa: E402
from package_storage.store.storage.localfs import LocalBlobStore  # noqa: E402
from package_storage.store.storage.sqlite import SQLiteCatalog  # noqa: E402

TEMPLATE = "hello_nginx/1.1.0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_one(label: str, src: Path, store: Path, publishes: int) -> dict[str, Any]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(src)}
    exe = Path(sys.executable).with_name("package-storage")
    taskset = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    log = open(store / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [*taskset, str(exe), "serve", "--store", str(store), "--address", f"127.0.0.1:{port}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, f"{label}: server exited"
                assert time.monotonic() < deadline, f"{label}: server not ready"
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            # idle CPU (polling cost) over 5 s
            cpu0, t0 = _cpu_seconds(server.pid), time.monotonic()
            time.sleep(5)
            idle_cpu = (_cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0)
            catalog = SQLiteCatalog(store / "catalog.db")
            blobs = LocalBlobStore(store / "blobs", fsync=False)
            latencies: list[float] = []
            load = Path("/proc/loadavg").read_text().split()[:3]
            try:
                for i in range(publishes):
                    name, version = "bench_publish_latency", f"2.0.{i}"
                    data = make_zip(TEMPLATE, name, version)
                    time.sleep(random.uniform(0.05, 0.15))
                    digest = blobs.put(data)
                    with catalog.transaction() as tx:
                        tx.add_artifact(ArtifactRecord(digest, len(data), name, version))
                        tx.put_entry("snapshot", name, version, digest, actor="bench")
                        for dist in tx.stages().affected_distributions("snapshot"):
                            tx.new_revision(dist)
                    committed = time.perf_counter()
                    path = f"/snapshot/package/{name}/{version}/"
                    while client.get(path).status_code != 200:
                        assert time.perf_counter() - committed < 30, f"{label}: {path} not served"
                        time.sleep(0.001)
                    latencies.append((time.perf_counter() - committed) * 1000)
            finally:
                catalog.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    result = {
        "label": label,
        "src": str(src),
        "publishes": publishes,
        "p50_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(_pct(latencies, 0.9), 1),
        "p99_ms": round(_pct(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "idle_cpu_pct": round(idle_cpu * 100, 2),
        "loadavg": load,
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--publishes", type=int, default=50)
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src to compare")
    parser.add_argument("--json", type=Path, default=HERE / "out" / "publish_latency.json")
    args = parser.parse_args()
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    work = Path(tempfile.mkdtemp(prefix="publish-latency-"))
    try:
        template = work / "template"
        build_store(template, args.versions)
        runs = [("baseline", args.baseline_src)] if args.baseline_src else []
        runs.append(("this", ROOT / "src"))
        results = []
        for label, src in runs:
            store = work / label
            shutil.copytree(template, store)
            results.append(run_one(label, src.resolve(), store, args.publishes))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
