"""Remote publish through the management API against local publish, in one run.

A store of ``--versions`` (default 10,000) versions (synthetic catalog records spread over the
three stages, as in ``store_ops_bench.py``) is served by a real ``package-storage serve --store
DIR --manage-address`` (pinned to CPU 0). Then ``--ops`` (default 200) publishes of a real
package of about 1 MB (the example ``hello_nginx`` with ~1 MB of incompressible text in its
README; a new version each time) are timed four ways, each against its own copy of the store
(same size), from a client pinned to CPU 1:

* ``service``: ``StoreService.publish_bytes`` in this process (the work itself);
* ``api``: ``POST /api/v1/packages`` with httpx over one keep-alive connection (the HTTP path);
* ``cli-local``: ``package-storage publish ZIP --store DIR`` (a new process each time);
* ``cli-remote``: ``package-storage publish ZIP --store URL`` with a token (a new process each).

Reported: p50/p99 of each, the differences api - service and cli-remote - cli-local (what the
HTTP path adds), the server's CPU time per API publish (from /proc), and the machine's load.

    python bench/manage_bench.py [--ops 200] [--cli-ops 200] [--versions 10000]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from package_storage.packages.artifacts import build_zip
from package_storage.packages.trees import FolderTree
from package_storage.store.directory import Store
from package_storage.store.storage.base import ArtifactRecord

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "packages" / "hello_nginx" / "1.1.0"
SCRIPT = Path(sys.executable).parent / "package-storage"
PADDING = base64.b64encode(os.urandom(1_050_000)).decode()  # ~1.4 MB text, ~1 MB deflated


def package_zip(work: Path, version: str) -> Path:
    """A ~1 MB zip of hello_nginx ``version`` (built like a local publish would)."""
    dest = work / "src" / version / "hello_nginx" / version
    shutil.copytree(EXAMPLE, dest)
    manifest = dest / "manifest.yml"
    text = re.sub(r"(?m)^version: .*$", f"version: {version}", manifest.read_text(), count=1)
    manifest.write_text(text)
    (dest / "changelog.yml").write_text(
        f'- version: "{version}"\n  changes:\n    - description: Bench release.\n'
        f"      type: enhancement\n      link: https://example.com/bench/{version}\n"
    )
    readme = dest / "docs" / "README.md"
    readme.write_text(readme.read_text() + f"\n\n{version}\n\n{PADDING}\n")
    path = work / "zips" / f"hello_nginx-{version}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build_zip(FolderTree(dest), "hello_nginx", version))
    shutil.rmtree(work / "src" / version)
    return path


def fill(root: Path, n: int) -> None:
    with Store.init(root) as store, store.catalog.transaction() as tx:
        for i in range(n):
            stage = ("production", "staging", "snapshot")[i % 3]
            name, version = f"filler_{i // 10:05d}", f"1.{i % 10}.0"
            digest = hashlib.sha256(f"{name}-{version}".encode()).hexdigest()
            tx.add_artifact(ArtifactRecord(digest, 1000, name, version))
            tx.put_entry(stage, name, version, digest, actor="bench")
        for dist in ("production", "staging", "snapshot"):
            tx.new_revision(dist)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(store: Path, log: Path) -> Iterator[tuple[str, int]]:
    manage = f"127.0.0.1:{free_port()}"
    args = [str(SCRIPT), "serve", "--store", str(store), "--address", f"127.0.0.1:{free_port()}"]
    args += ["--manage-address", manage]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EPR_", "PACKAGE_STORAGE_"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(["taskset", "-c", "0", *args], stdout=out, stderr=out, env=env)
    url = f"http://{manage}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/api/v1/openapi.json", timeout=5).is_success:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log.read_text()}")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def timed(count: int, work: Path, prefix: str, op: Callable[[Path], None]) -> list[float]:
    times = []
    for i in range(count):
        path = package_zip(work, f"{prefix}.{i}")
        start = time.perf_counter()
        op(path)
        times.append(time.perf_counter() - start)
        path.unlink()
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {
        "n": len(times),
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "p99_ms": round(pct(times, 0.99), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--cli-ops", type=int, default=200)
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    results: dict[str, object] = {"loadavg_before": Path("/proc/loadavg").read_text().strip()}
    with tempfile.TemporaryDirectory(prefix="ps-manage-") as tmp:
        work = Path(tmp)
        stores = {k: work / k for k in ("service", "api", "cli-local", "cli-remote")}
        for root in stores.values():
            fill(root, args.versions)
        size = package_zip(work, "9.9.9").stat().st_size
        results["zip_bytes"] = size
        env = {k: v for k, v in os.environ.items() if not k.startswith("PACKAGE_STORAGE_")}

        with Store.open(stores["service"]) as store:
            service = store.service("bench")
            t_service = timed(
                args.ops, work, "2.0", lambda p: service.publish_bytes(p.read_bytes())
            )

        with Store.open(stores["api"]) as store:
            _, secret = store.service("bench").create_token("bench", ["publish:snapshot"])
        with server(stores["api"], work / "api.log") as (url, pid):
            headers = {"authorization": f"Bearer {secret}"}
            with httpx.Client(base_url=url, headers=headers, timeout=120) as client:

                def post(path: Path) -> None:
                    with path.open("rb") as handle:
                        files = {"package": (path.name, handle, "application/zip")}
                        r = client.post("/api/v1/packages", files=files)
                    if r.status_code != 200 or not r.json()["changed"]:
                        raise RuntimeError(r.text)

                cpu_before = cpu_seconds(pid)
                t_api = timed(args.ops, work, "2.1", post)
                cpu_api = (cpu_seconds(pid) - cpu_before) / args.ops

        def local_cli(path: Path) -> None:
            cmd = [str(SCRIPT), "publish", str(path), "--store", str(stores["cli-local"])]
            subprocess.run(cmd, env=env, check=True, capture_output=True)

        t_cli_local = timed(args.cli_ops, work, "2.2", local_cli)

        with Store.open(stores["cli-remote"]) as store:
            _, secret = store.service("bench").create_token("bench", ["publish:snapshot"])
        with server(stores["cli-remote"], work / "cli.log") as (url, _pid):

            def remote_cli(path: Path) -> None:
                cmd = [str(SCRIPT), "publish", str(path), "--store", url]
                subprocess.run(
                    cmd,
                    env={**env, "PACKAGE_STORAGE_TOKEN": secret},
                    check=True,
                    capture_output=True,
                )

            t_cli_remote = timed(args.cli_ops, work, "2.3", remote_cli)

    results.update(
        {
            "versions": args.versions,
            "service": summary(t_service),
            "api": summary(t_api),
            "cli_local": summary(t_cli_local),
            "cli_remote": summary(t_cli_remote),
            "api_minus_service_p50_ms": round(
                (statistics.median(t_api) - statistics.median(t_service)) * 1000, 1
            ),
            "cli_remote_minus_local_p50_ms": round(
                (statistics.median(t_cli_remote) - statistics.median(t_cli_local)) * 1000, 1
            ),
            "server_cpu_ms_per_api_publish": round(cpu_api * 1000, 1),
            "loadavg_after": Path("/proc/loadavg").read_text().strip(),
        }
    )
    print(json.dumps(results, indent=2))
    args.out.mkdir(exist_ok=True)
    (args.out / "manage.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
