"""Zip downloads from S3: req/s and CPU per request of ``serve`` with blobs in S3 (SeaweedFS on
loopback), through the replica cache (``--cache-dir``: every request after the first is a local
file sent with sendfile), without it (every request reads the object from S3), and with
``--artifact-redirect`` (a 302 to a pre-signed URL), beside nginx serving the same zip from a
file, in the same run.

* The store: a SQLite catalog with its blobs in an S3 prefix (and, as the baseline, the same
  blob in a local folder: the server's own cost without S3); one package whose zip is
  ``--size`` bytes (default ~1.4 MB: the example ``hello_nginx`` with incompressible text in
  its README), published to snapshot and served as ``/snapshot/epr/NAME/NAME-VERSION.zip``.
* The server is the ``serve`` command (uvicorn, the default configuration) opening that store;
  it and nginx (one worker, sendfile, no access log) are pinned to CPU 0, wrk
  (``-t1 -c16``) and SeaweedFS to CPU 1.
* CPU per request: user + system ticks of the server's process tree from /proc/PID/stat over
  the wrk run, divided by the requests; SeaweedFS's own CPU per request beside it (it is the
  cost the uncached path moves to the object store). The load average before each run.

Run: ``.venv/bin/python bench/s3_download_bench.py --duration 10`` (needs nginx and wrk:
``apt-get install -y nginx wrk``; SeaweedFS comes with the dev dependencies). Figures as JSON
in bench/out/s3_download.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests"), str(ROOT / "tests" / "store")]

from read_bench import (  # noqa: E402
    NGINX_CONF,
    free_port,
    loadavg,
    tree_cpu_seconds,
    wait_health,
    wrk,
)

from process_helpers import stop_group  # noqa: E402
from s3_server import BUCKET, S3Server  # noqa: E402

NAME = "hello_nginx"
VERSION = "1.0.0"
ZIP_PATH = f"/snapshot/epr/{NAME}/{NAME}-{VERSION}.zip"


def child(store_dir: str, blobs: str, argv: list[str]) -> None:
    """The server process: ``serve`` with the store's catalog and its blobs at ``blobs``."""
    from package_storage.cli import serve as serve_module
    from package_storage.store.storage.blobs_location import open_blob_store
    from package_storage.store.storage.sqlite import SQLiteCatalog

    def open_store(path: Any) -> tuple[Any, Any, Any]:
        catalog = SQLiteCatalog(Path(path) / "catalog.db")
        return catalog, open_blob_store(blobs), catalog.close

    serve_module.open_store = open_store  # type: ignore[assignment]
    serve_module.serve.main(["--store", store_dir, *argv], prog_name="package-storage serve")


def make_store(work: Path, server: S3Server, size: int) -> tuple[Path, str, bytes]:
    """A store with one package of about ``size`` zipped bytes, blobs in S3."""
    from test_service import make_package

    from package_storage.store.directory import Store
    from package_storage.store.storage.blobs_location import open_blob_store
    from package_storage.store.storage.sqlite import SQLiteCatalog

    location = f"s3://{BUCKET}/bench"
    blobs = open_blob_store(location, environ=server.env())
    root = work / "store"
    root.mkdir()
    store = Store(root, SQLiteCatalog(root / "catalog.db"), blobs)  # type: ignore[arg-type]
    padding = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    folder = make_package(work / "packages", VERSION, extra=padding)
    store.service("bench").publish(folder)
    entry = store.catalog.get_entry("snapshot", NAME, VERSION)
    assert entry is not None
    data = blobs.get(entry.artifact)
    store.close()
    return root, location, data


class Served:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", *cmd, "--address", f"127.0.0.1:{self.port}"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_health(f"http://127.0.0.1:{self.port}/health")

    def stop(self) -> None:
        stop_group(self.proc)
        self.log.close()


def measure(url: str, duration: int, pid: int, weed_pid: int) -> dict[str, float]:
    load = loadavg()
    weed0 = tree_cpu_seconds(weed_pid)
    row = wrk(url, duration, pid, connections=16)
    weed = tree_cpu_seconds(weed_pid) - weed0
    row["s3_cpu_us_per_request"] = round(weed / max(1.0, row["requests"]) * 1e6, 2)
    row["load_before"] = load  # type: ignore[assignment]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--size", type=int, default=1_400_000, help="zip size (about)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    if not shutil.which("nginx") or not shutil.which("wrk"):
        sys.exit("needs nginx and wrk: apt-get install -y nginx wrk")
    work = Path(tempfile.mkdtemp(prefix="s3-download-bench-"))
    work.chmod(0o755)
    server = S3Server().start()
    subprocess.run(["taskset", "-a", "-p", "-c", "1", str(server.process.pid)], capture_output=True)  # type: ignore[union-attr]
    weed_pid = server.process.pid  # type: ignore[union-attr]
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    running: list[Served] = []
    nginx = None
    try:
        store_dir, location, data = make_store(work, server, args.size)
        results["zip_bytes"] = len(data)
        print(f"zip {len(data)} bytes in {location}; load {loadavg()}")
        env = {**os.environ, **server.env()}
        from package_storage.store.storage.localfs import LocalBlobStore

        LocalBlobStore(work / "local-blobs").put(data)
        child_cmd = [sys.executable, __file__, "--child", str(store_dir)]
        cases: dict[str, list[str]] = {
            "local_folder": [str(work / "local-blobs")],
            "s3_cached": [location, "--cache-dir", str(work / "cache"), "--cache-size", "1GiB"],
            "s3_uncached": [location],
            "s3_redirect": [location, "--artifact-redirect"],
        }
        for name, flags in cases.items():
            served = Served(name, [*child_cmd, *flags], env, work / f"{name}.log")
            running.append(served)
            url = f"http://127.0.0.1:{served.port}{ZIP_PATH}"
            first = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                capture_output=True,
                text=True,
            ).stdout
            results[name] = measure(url, args.duration, served.proc.pid, weed_pid)
            results[name]["first_status"] = first
            row = results[name]
            print(
                f"{name:12} {row['rps']:8.0f} req/s {row['cpu_us_per_request']:8.1f} us/req"
                f" (S3 {row['s3_cpu_us_per_request']:7.1f} us/req) p99 {row['p99_ms']:.1f} ms"
                f" non2xx {row['non2xx']:.0f} load {row['load_before']}"
            )
            served.stop()
            running.remove(served)
        root = work / "nginx-root"
        (root / Path(ZIP_PATH).parent.relative_to("/")).mkdir(parents=True)
        (root / ZIP_PATH.lstrip("/")).write_bytes(data)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (work / sub).mkdir()
        nport = free_port()
        (work / "nginx.conf").write_text(NGINX_CONF.format(tmp=work, port=nport, root=root))
        nginx = subprocess.Popen(
            ["taskset", "-c", "0", "nginx", "-c", str(work / "nginx.conf")], start_new_session=True
        )
        url = f"http://127.0.0.1:{nport}{ZIP_PATH}"
        wait_health(url)
        results["nginx"] = measure(url, args.duration, nginx.pid, weed_pid)
        row = results["nginx"]
        print(
            f"{'nginx':12} {row['rps']:8.0f} req/s {row['cpu_us_per_request']:8.1f} us/req"
            f" p99 {row['p99_ms']:.1f} ms load {row['load_before']}"
        )
    finally:
        for served in running:
            served.stop()
        if nginx is not None:
            stop_group(nginx)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "s3_download.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        main()
