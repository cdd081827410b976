"""Web UI page speed on a store of 12,000 versions.

1. Builds (or reuses, ``--store DIR``) a store of ``--versions`` (12,000) synthetic versions:
   1,000 names x 12 versions made from the example packages (new name, version, changelog
   entry; README and icon kept), half of each name's versions in production, a quarter in
   staging and a quarter in snapshot, recorded as publish/promote events in transactions of
   ten versions (each makes the revisions of the distributions it changes: ~2,700 revisions),
   production tagged every 100 transactions.
2. Starts ``package-storage serve --store DIR --manage-address ...`` (pinned to CPU 0), signs in
   with a token (this process on CPU 1, one keep-alive httpx connection) and requests every
   page: the first answer (cold: nothing cached yet), then ``--rounds`` answers in a row:
   p50/p90/max and the server's CPU time per request (from /proc), with the load average before
   and after.

    python bench/ui_bench.py [--versions 12000] [--rounds 30] [--store DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
EXAMPLES = ROOT / "examples" / "packages"
TEMPLATES = ("hello_nginx/1.1.0", "acme_input/1.0.0", "demo_dashboards/1.0.0")
CATEGORIES = ("web", "security", "observability", "network", "cloud", "database", "os_system")
VERSIONS_PER_NAME = 12

from dict_tree import DictTree, with_name_and_version  # noqa: E402
from package_storage.packages.artifacts import build_zip  # noqa: E402
from package_storage.packages.trees import FolderTree  # noqa: E402
from package_storage.store.directory import Store  # noqa: E402
from package_storage.store.storage.base import ArtifactRecord  # noqa: E402
from process_helpers import clean_env, command, free_port  # noqa: E402

_FILES: dict[str, dict[str, bytes]] = {}


def _files(template: str) -> dict[str, bytes]:
    if template not in _FILES:
        tree = FolderTree(EXAMPLES / template)
        _FILES[template] = {e.path: tree.read(e.path) for e in tree.entries() if not e.is_dir}
    return _FILES[template]


def version_of(i: int) -> str:
    return f"1.{i}.0"


def _make(job: tuple[int, int]) -> tuple[str, str, bytes, dict[str, Any]]:
    n, i = job
    template = TEMPLATES[n % len(TEMPLATES)]
    name = f"bench_{template.split('/')[0]}_{n:04d}"
    version = version_of(i)
    files = with_name_and_version(_files(template), name, version)
    files["changelog.yml"] = "".join(
        f'- version: "{version_of(k)}"\n  changes:\n    - description: Release {k} of {name}.\n'
        f"      type: enhancement\n      link: https://example.com/{name}/{k}\n"
        for k in range(i, -1, -1)
    ).encode()
    data = build_zip(DictTree(files, location=f"{name}-{version}"), name, version)
    summary = {
        "title": f"Bench {n:04d} {template.split('/')[0]}",
        "description": f"Synthetic package {n} for the UI benchmark.",
        "type": "integration",
        "release": "ga",
        "format_version": "3.1.0",
        "kibana_version": "^8.13.0 || ^9.0.0",
        "categories": [CATEGORIES[n % len(CATEGORIES)], CATEGORIES[(n // 7) % len(CATEGORIES)]],
        "source": "zip",
    }
    return name, version, data, summary


def stage_of(i: int) -> str:
    return "production" if i < 6 else "staging" if i < 9 else "snapshot"


def build_store(root: Path, versions: int) -> None:
    store = Store.init(root)
    names = (versions + VERSIONS_PER_NAME - 1) // VERSIONS_PER_NAME
    jobs = [(n, i) for i in range(VERSIONS_PER_NAME) for n in range(names)][:versions]
    start = time.perf_counter()
    with ProcessPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        made = list(pool.map(_make, jobs, chunksize=64))
    zipped = time.perf_counter()
    catalog, blobs = store.catalog, store.blobs
    transactions = 0
    for k in range(0, len(made), 10):
        with catalog.transaction() as tx:
            stages: set[str] = set()
            for (_, i), (name, version, data, summary) in zip(
                jobs[k : k + 10], made[k : k + 10], strict=True
            ):
                digest = blobs.put(data)
                tx.add_artifact(ArtifactRecord(digest, len(data), name, version, None, summary))
                stage = stage_of(i)
                tx.put_entry(stage, name, version, digest, actor="bench-ci")
                action = "publish" if stage == "snapshot" else "promote"
                detail = {"digest": digest}
                if stage != "snapshot":
                    detail["from"] = "staging" if stage == "production" else "snapshot"
                tx.record_event(
                    action,
                    actor="bench-ci" if stage == "snapshot" else "release-manager",
                    stage=stage,
                    name=name,
                    version=version,
                    reason=None if stage == "snapshot" else "bench release",
                    detail=detail,
                )
                stages.add(stage)
            graph = tx.stages()
            for dist in graph.distributions():
                if any(dist in graph.affected_distributions(s) for s in stages):
                    tx.new_revision(dist)
        transactions += 1
        if transactions % 100 == 0:
            with catalog.transaction() as tx:
                current = tx.current_revision("production")
                if current is not None:
                    tx.add_tag(
                        "production", f"8.{transactions // 100}.0", current.number, actor="bench"
                    )
    store.close()
    print(
        f"store: {len(made)} versions ({names} names) zipped in {zipped - start:.1f} s, "
        f"stored in {time.perf_counter() - zipped:.1f} s ({transactions} transactions)",
        flush=True,
    )


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve(store_dir: Path, log: Path) -> Iterator[tuple[str, int]]:
    read_port, manage_port = free_port(), free_port()
    args = [
        "taskset",
        "-c",
        "0",
        *command(),
        "serve",
        "--store",
        str(store_dir),
        "--address",
        f"127.0.0.1:{read_port}",
        "--manage-address",
        f"127.0.0.1:{manage_port}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=clean_env())
    url = f"http://127.0.0.1:{manage_port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()}")
            try:
                if httpx.get(url + "/signin", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def sign_in(client: httpx.Client, secret: str) -> None:
    page = client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    answer = client.post(
        "/signin",
        data={"csrf": csrf.group(1), "token": secret, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def pages_of(store_dir: Path) -> dict[str, str]:
    with Store.open(store_dir) as store:
        svc = store.service("bench")
        tags = svc.tags("production")
        current = svc.current_revision("production")
        event = svc.history(None)[-1]
    assert current is not None
    name = "bench_hello_nginx_0003"
    return {
        "overview": "/",
        "stage production": "/stages/production",
        "stage snapshot (all 12,000)": "/stages/snapshot",
        "stage filtered": "/stages/snapshot?q=0042&category=web",
        "package": f"/packages/{name}",
        "package version": f"/packages/{name}?version=1.9.0",
        "preview staging->production": "/diff?a=staging&b=production",
        "diff since a tag": f"/diff?a=production@{tags[0].tag}&b=production",
        "history": "/history",
        "history filtered": f"/history?stage=production&package={name}",
        "revisions": "/distributions/production",
        "revision": f"/distributions/production/revisions/{current.number}",
        "event": f"/events/{event.id}",
        "promote confirmation": f"POST /packages/{name}/1.8.0/promote",
    }


def measure(url: str, pid: int, secret: str, pages: dict[str, str], rounds: int) -> dict[str, Any]:
    """Per page: the first answer (cold), then ``rounds`` answers in a row: wall p50/p90/max
    and the server's CPU time per request."""
    results: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        sign_in(client, secret)
        found = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
        assert found is not None
        csrf = found.group(1)

        def request(path: str) -> tuple[float, int]:
            start = time.perf_counter()
            if path.startswith("POST "):
                form = {"csrf": csrf, "to": "production", "from": "staging"}
                answer = client.post(path[5:], data=form)
            else:
                answer = client.get(path)
            elapsed = (time.perf_counter() - start) * 1000
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
            return elapsed, len(answer.content)

        for key, path in pages.items():
            cold, size = request(path)
            cpu_before = cpu_seconds(pid)
            warm = sorted(request(path)[0] for _ in range(rounds))
            cpu = (cpu_seconds(pid) - cpu_before) * 1000 / rounds
            results[key] = {
                "path": pages[key],
                "bytes": size,
                "cold_ms": round(cold, 1),
                "p50_ms": round(statistics.median(warm), 1),
                "p90_ms": round(warm[max(0, int(len(warm) * 0.9) - 1)], 1),
                "max_ms": round(warm[-1], 1),
                "server_cpu_ms": round(cpu, 1),
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=12000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--store", type=Path, help="reuse (or build once into) this folder")
    parser.add_argument("--json", type=Path, default=HERE / "out" / "ui_bench.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ui-bench-"))
    store_dir = args.store or work / "store"
    try:
        if not Store.is_store(store_dir):
            build_store(store_dir, args.versions)
        with Store.open(store_dir) as store:
            svc = store.service("bench")
            for token in svc.tokens():
                if token.name == "ui-bench" and token.revoked is None:
                    svc.revoke_token("ui-bench")
            _, secret = svc.create_token("ui-bench", ["read"])
        pages = pages_of(store_dir)
        os.sched_setaffinity(0, {1})
        before = loadavg()
        with serve(store_dir, work / "server.log") as (url, pid):
            results = measure(url, pid, secret, pages, args.rounds)
        after = loadavg()
        report = {
            "versions": args.versions,
            "rounds": args.rounds,
            "load_before": before,
            "load_after": after,
            "pages": results,
        }
        print(f"load average before {before}, after {after}")
        print(
            f"{'page':30} {'KB':>5} {'cold ms':>8} {'p50':>6} {'p90':>6} {'max':>6} {'CPU ms':>6}"
        )
        for key, r in results.items():
            print(
                f"{key:30} {r['bytes'] / 1000:5.0f} {r['cold_ms']:8.1f} {r['p50_ms']:6.1f}"
                f" {r['p90_ms']:6.1f} {r['max_ms']:6.1f} {r['server_cpu_ms']:6.1f}"
            )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
