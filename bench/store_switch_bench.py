"""Store serving benchmark: switching a running server to a new revision of a big distribution.

1. Builds a store (SQLite catalog + local blobs) holding ``--versions`` synthetic package
   versions in production (the example packages under new names/versions, zipped in memory),
   bypassing the service (so no derived documents yet).
2. In process: a first StoreRegistry derives every package document from its zip (timed:
   what an old store costs once), then the measured cold start reads the derived documents
   (time, CPU time, memory), then measures the switch
   after one change: time of ``refresh()`` and the extra memory (peak RSS over the RSS before,
   and the RSS left after) for
   a) a publish to snapshot (one distribution rebuilt), and
   b) a publish to production (the cascade: production, staging and snapshot rebuilt);
   each publish stores the version's derived document as the service does
   (``--publish-zips-only``: not, so the server parses the new zip during the switch).
3. Live: ``package-storage serve --store`` pinned to CPU 0, wrk on ``/production/search``
   (CPU 1) for ``--duration`` seconds while another process publishes to snapshot and promotes
   to staging and production every ``--interval`` seconds: req/s, errors, max latency.

    python bench/store_switch_bench.py [--versions 10000] [--duration 20] [--interval 0.1]
        [--store DIR (reuse)] [--json OUT] [--skip-live] [--rounds 5] [--publish-zips-only]
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the in-memory package tree of the tests
EXAMPLES = ROOT / "examples" / "packages"
TEMPLATES = ("hello_nginx/1.1.0", "acme_input/1.0.0", "demo_dashboards/1.0.0")
VERSIONS_PER_NAME = 10

from dict_tree import DictTree, with_name_and_version  # noqa: E402
from package_storage.packages.artifacts import build_zip  # noqa: E402
from package_storage.packages.trees import FolderTree  # noqa: E402
from package_storage.store.storage.base import ArtifactRecord  # noqa: E402
from package_storage.store.storage.localfs import LocalBlobStore  # noqa: E402
from package_storage.store.storage.sqlite import SQLiteCatalog  # noqa: E402

# --- corpus ------------------------------------------------------------------------------------


def _template_files(template: str) -> dict[str, bytes]:
    tree = FolderTree(EXAMPLES / template)
    return {e.path: tree.read(e.path) for e in tree.entries() if not e.is_dir}


_TEMPLATE_CACHE: dict[str, dict[str, bytes]] = {}


def make_zip(template: str, name: str, version: str) -> bytes:
    files = _TEMPLATE_CACHE.get(template)
    if files is None:
        files = _TEMPLATE_CACHE[template] = _template_files(template)
    tree = DictTree(with_name_and_version(files, name, version), location=f"{name}-{version}")
    return build_zip(tree, name, version)


def version_of(i: int) -> str:
    return f"1.{i // 100}.{i % 100}"


def _make(args: tuple[int, int]) -> tuple[str, str, bytes]:
    n, i = args
    template = TEMPLATES[n % len(TEMPLATES)]
    name = f"bench_{template.split('/')[0]}_{n:04d}"
    version = version_of(i)
    return name, version, make_zip(template, name, version)


def build_store(root: Path, versions: int) -> None:
    catalog = SQLiteCatalog(root / "catalog.db")
    blobs = LocalBlobStore(root / "blobs", fsync=False)
    names = (versions + VERSIONS_PER_NAME - 1) // VERSIONS_PER_NAME
    jobs = [(n, i) for n in range(names) for i in range(VERSIONS_PER_NAME)][:versions]
    start = time.perf_counter()
    with ProcessPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        made = list(pool.map(_make, jobs, chunksize=64))
    zipped = time.perf_counter()
    with catalog.transaction() as tx:
        for name, version, data in made:
            digest = blobs.put(data)
            tx.add_artifact(ArtifactRecord(digest, len(data), name, version))
            tx.put_entry("production", name, version, digest, actor="bench")
        for distribution in tx.stages().affected_distributions("production"):
            tx.new_revision(distribution)
    catalog.close()
    print(
        f"store: {len(made)} versions ({names} names) zipped in {zipped - start:.1f} s, "
        f"stored in {time.perf_counter() - zipped:.1f} s",
        flush=True,
    )


# --- changes (shared by the in-process measure and the publisher process) -----------------------


def _can_derive() -> bool:
    try:
        from package_storage.packages import derived  # noqa: F401  (not before issue 15c)
    except ImportError:
        return False
    return True


def _store_derived(folder: Path, digest: str, data: bytes) -> None:
    from package_storage.packages.derived import dump_package
    from package_storage.packages.doccache import DocCache
    from package_storage.packages.manifest import read_package
    from package_storage.packages.trees import ZipTree

    derived = dump_package(read_package(ZipTree.from_bytes(data, digest), validate=False))
    if derived is not None:
        DocCache(folder).put(digest, derived)


class Changer:
    """Publishes new versions to snapshot and promotes them (snapshot -> staging -> production)."""

    def __init__(self, root: Path, name: str = "bench_live_changes", derive: bool = True) -> None:
        self.catalog = SQLiteCatalog(root / "catalog.db")
        self.blobs = LocalBlobStore(root / "blobs", fsync=False)
        self.name = name
        self.next = 0
        self.pipeline: list[tuple[str, str, str]] = []  # (version, digest, stage)
        self.derive = derive and _can_derive()
        self.derived_dir = root / "derived"

    def publish(self, stage: str) -> str:
        version = f"0.{self.next // 1000}.{self.next % 1000}"
        self.next += 1
        data = make_zip(TEMPLATES[0], self.name, version)
        digest = self.blobs.put(data)
        if self.derive:  # as the service does: the derived document is stored at publish
            _store_derived(self.derived_dir, digest, data)
        with self.catalog.transaction() as tx:
            tx.add_artifact(ArtifactRecord(digest, len(data), self.name, version))
            tx.put_entry(stage, self.name, version, digest, actor="bench")
            for distribution in tx.stages().affected_distributions(stage):
                tx.new_revision(distribution)
        self.pipeline.append((version, digest, stage))
        return version

    def promote(self) -> bool:
        """Move the oldest version not yet in production one stage up."""
        for k, (version, digest, stage) in enumerate(self.pipeline):
            target = {"snapshot": "staging", "staging": "production"}.get(stage)
            if target is None:
                continue
            with self.catalog.transaction() as tx:
                tx.delete_entry(stage, self.name, version)
                tx.put_entry(target, self.name, version, digest, actor="bench")
                graph = tx.stages()
                affected = set(graph.affected_distributions(stage))
                affected |= set(graph.affected_distributions(target))
                for distribution in graph.distributions():
                    if distribution in affected:
                        tx.new_revision(distribution)
            self.pipeline[k] = (version, digest, target)
            return True
        return False


def publisher(root: Path, interval: float, duration: float) -> None:
    changer = Changer(root)
    end = time.monotonic() + duration
    done = 0
    step = 0
    while time.monotonic() < end:
        started = time.monotonic()
        if step % 3 == 0 or not changer.promote():
            changer.publish("snapshot")
        step += 1
        done += 1
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    print(json.dumps({"changes": done}), flush=True)


# --- in-process switch ---------------------------------------------------------------------------


def _loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _hwm_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measure_switch(root: Path, rounds: int, derive: bool = True) -> dict[str, Any]:
    from package_storage.serving.store_registry import StoreRegistry

    catalog = SQLiteCatalog(root / "catalog.db")
    blobs = LocalBlobStore(root / "blobs", fsync=False)
    first: dict[str, Any] = {}
    derived: dict[str, Any] = {}
    if "derived" in inspect.signature(StoreRegistry).parameters:  # not before issue 15c
        from package_storage.packages.doccache import DocCache

        derived["derived"] = DocCache(root / "derived")
    if derived and not any((root / "derived").rglob("*.json")):
        # The store was filled bypassing the service: the first start derives every document
        # from its zip (what an old store costs once); the measured start below reads them.
        start, cpu = time.perf_counter(), time.process_time()
        StoreRegistry(catalog, blobs, **derived)
        first = {
            "first_start_deriving_s": round(time.perf_counter() - start, 2),
            "first_start_cpu_s": round(time.process_time() - cpu, 2),
        }
        print(f"first start (deriving every document): {json.dumps(first)}", flush=True)
        gc.collect()
    rss0 = _rss_kib()
    start, cpu = time.perf_counter(), time.process_time()
    registry = StoreRegistry(catalog, blobs, **derived)
    cold = time.perf_counter() - start
    cold_cpu = time.process_time() - cpu
    gc.collect()
    rss_loaded = _rss_kib()
    production = registry.current["production"]
    print(
        f"cold start: {production.index.package_count} packages in production, "
        f"{cold:.1f} s ({cold_cpu:.1f} s CPU), RSS +{(rss_loaded - rss0) / 1024:.0f} MiB"
        f" ({rss_loaded / 1024:.0f} MiB in all)",
        flush=True,
    )
    # As ``serve`` does after loading: what was loaded stays out of the collector's passes.
    gc.freeze()
    # A warm server: the usual bodies were requested.
    for dist in ("production", "staging", "snapshot"):
        index = registry.resolve(dist)
        assert index is not None
        index.search_body("")
        index.categories_body("")
    changer = Changer(root, name="bench_switch", derive=derive)
    result: dict[str, Any] = {
        "versions": production.index.package_count,
        "cold_start_s": round(cold, 2),
        "cold_start_cpu_s": round(cold_cpu, 2),
        "loaded_rss_mib": round((rss_loaded - rss0) / 1024, 1),
        "process_rss_mib": round(rss_loaded / 1024, 1),
        **first,
    }
    for label, stage in (("publish_snapshot", "snapshot"), ("publish_production", "production")):
        times: list[float] = []
        cpus: list[float] = []
        incremental = 0
        builds: dict[str, list[float]] = {}
        peaks: list[float] = []
        kept: list[float] = []
        for _ in range(rounds):
            changer.publish(stage)
            gc.collect()
            previous = dict(registry.current)
            before = _rss_kib()
            hwm_ok = _reset_hwm()
            t0, c0 = time.perf_counter(), time.process_time()
            assert registry.refresh()
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            peak = _hwm_kib() if hwm_ok else _rss_kib()
            peaks.append((peak - before) / 1024)
            gc.collect()
            kept.append((_rss_kib() - before) / 1024)
            for dist, built in registry.current.items():
                if built is not previous.get(dist):
                    builds.setdefault(dist, []).append(built.build_seconds * 1000)
                    incremental += getattr(built, "incremental", False)
        times.sort()
        result[label] = {
            "rounds": rounds,
            "refresh_ms_median": round(times[len(times) // 2] * 1000, 1),
            "refresh_ms_max": round(times[-1] * 1000, 1),
            "refresh_cpu_ms_median": round(sorted(cpus)[len(cpus) // 2] * 1000, 1),
            "refresh_cpu_ms_max": round(max(cpus) * 1000, 1),
            "incremental_builds": incremental,
            "build_ms_median_per_distribution": {
                d: round(sorted(v)[len(v) // 2], 1) for d, v in builds.items()
            },
            "peak_extra_rss_mib_max": round(max(peaks), 1),
            "rss_kept_mib_median": round(sorted(kept)[len(kept) // 2], 1),
        }
        print(f"{label}: {json.dumps(result[label])}", flush=True)
    catalog.close()
    return result


# --- live ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, limit: float) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {limit} s")


def _taskset(cpu: int) -> list[str]:
    return (
        ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    )


def _parse_wrk(text: str) -> dict[str, Any]:
    def unit(value: str) -> float:
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
        if not m:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]
        return float(m.group(1)) * scale

    out: dict[str, Any] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["requests_per_s"] = float(m.group(1)) if m else None
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if m:
        out["latency_avg_ms"] = unit(m.group(1))
        out["latency_max_ms"] = unit(m.group(3))
    m = re.search(r"99%\s+(\S+)", text)
    out["latency_p99_ms"] = unit(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    return out


def measure_live(root: Path, duration: float, interval: float, connections: int) -> dict[str, Any]:
    port = _free_port()
    exe = Path(sys.executable).parent / "package-storage"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EPR_", "PACKAGE_STORAGE_"))}
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [*_taskset(0), str(exe), "serve", "--store", str(root), "--address", f"127.0.0.1:{port}"],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        t0 = time.monotonic()
        _wait(f"http://127.0.0.1:{port}/health", 600)
        print(f"live server ready in {time.monotonic() - t0:.1f} s", flush=True)
        url = f"http://127.0.0.1:{port}/production/search"
        with urllib.request.urlopen(url) as r:
            body = r.read()
        print(f"/production/search: {len(body)} bytes", flush=True)
        # Warm-up without changes.
        subprocess.run(
            ["wrk", "-t1", f"-c{connections}", "-d3s", url], capture_output=True, check=True
        )
        pub = subprocess.Popen(
            [
                *_taskset(1),
                sys.executable,
                __file__,
                "--publisher",
                "--store",
                str(root),
                "--duration",
                str(duration),
                "--interval",
                str(interval),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        wrk = subprocess.run(
            [
                *_taskset(1),
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration:.0f}s",
                "--latency",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        pub_out, _ = pub.communicate(timeout=duration + 60)
        result = _parse_wrk(wrk.stdout)
        result["changes"] = json.loads(pub_out.strip().splitlines()[-1])["changes"]
        result["connections"] = connections
        result["body_bytes"] = len(body)
        with open(root / "server.log") as fh:
            swaps = sum("serving production revision" in line for line in fh)
        result["production_swaps_logged"] = swaps
        print("wrk:", wrk.stdout, flush=True)
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", type=Path, help="reuse (or create) the store here")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument(
        "--publish-zips-only",
        action="store_true",
        help="publish without storing the derived document (the server parses the zip)",
    )
    parser.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher:
        publisher(args.store, args.interval, args.duration)
        return
    tmp: str | None = None
    root = args.store
    if root is None:
        tmp = tempfile.mkdtemp(prefix="store-switch-")
        root = Path(tmp) / "store"
    try:
        if not (root / "catalog.db").exists():
            build_store(root, args.versions)
        figures: dict[str, Any] = {
            "load_average_before": _loadavg(),
            "switch": measure_switch(root, args.rounds, derive=not args.publish_zips_only),
        }
        if not args.skip_live:
            figures["live"] = measure_live(root, args.duration, args.interval, args.connections)
        figures["load_average_after"] = _loadavg()
        print(json.dumps(figures, indent=2))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
