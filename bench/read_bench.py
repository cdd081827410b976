"""Read-path benchmark: package-storage against nginx serving the same bytes, in one run.

Measures, on a synthetic corpus (bench/make_corpus.py):
  * time from process start to the first ``/health`` 200 and the RSS of the server after loading;
  * wrk throughput (req/s) and p99 latency for a set of URLs, each beside nginx serving the
    identical response bytes from files (sendfile, open_file_cache, one worker, no access log).
The server is pinned to CPU 0 and wrk to CPU 1 (see shared bench-method notes in bench/README.md).

    python bench/read_bench.py [--corpus DIR] [--versions 2000] [--duration 10] [--server uvicorn|granian]
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_corpus import BIG_PACKAGE, generate  # noqa: E402

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  open_file_cache max=1000 inactive=60s;
  keepalive_requests 1000000;
  types {{ application/json json; application/zip zip; }}
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {root};
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_health(url: str, timeout: float = 120.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.monotonic()
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and all its descendants, in KiB."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            m = re.search(r"VmRSS:\s+(\d+)", status)
            total += int(m.group(1)) if m else 0
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            pids.extend(int(c) for c in children)
        except OSError:
            continue
    return total


def wrk(url: str, duration: int, connections: int = 64) -> dict[str, float]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p99_ms": p99,
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if sock else 0.0,
    }


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    assert m, text
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        return bytes(r.read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "ps-corpus")
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--server", default="uvicorn")
    parser.add_argument("--fixtures", type=Path, default=HERE.parent.parent / "shared/fixtures/epr")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    if not shutil.which("nginx") or not shutil.which("wrk"):
        sys.exit("needs nginx and wrk: apt-get install -y nginx wrk")

    if not (args.corpus / BIG_PACKAGE).exists():
        generate(args.corpus, args.fixtures, args.versions, 0)
    work = Path(tempfile.mkdtemp(prefix="ps-bench-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    cfg = work / "config.yml"
    cfg.write_text(
        f"package_paths:\n  - {args.corpus}\n"
        "cache_time.index: 10s\ncache_time.search: 10m\n"
        "cache_time.categories: 10m\ncache_time.catch_all: 10m\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).parent / "package-storage"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPR_")}
    env["EPR_REQUIRE_PACKAGE_SIGNATURES"] = "false"
    env["EPR_LOG_LEVEL"] = "error"
    cmd = [str(exe), "serve", "--config", str(cfg), "--address", f"127.0.0.1:{port}"]
    if args.server != "uvicorn":
        cmd += ["--server", args.server]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    results: dict[str, object] = {}
    nginx = None
    try:
        ready = wait_health(base + "/health") - t0
        time.sleep(0.5)
        rss_mib = tree_rss_kib(proc.pid) / 1024
        results["ready_s"] = round(ready, 3)
        results["rss_mib"] = round(rss_mib, 1)
        # Start-up may use both cores (parallel loading); the load runs pin the server to CPU 0.
        subprocess.run(
            ["taskset", "-a", "-p", "-c", "0", str(proc.pid)], check=True, capture_output=True
        )
        print(f"ready in {ready:.2f} s, RSS {rss_mib:.1f} MiB")

        search = json.loads(fetch(base + "/search?all=true&prerelease=true"))
        one = next(e for e in search if e["name"] != BIG_PACKAGE)
        urls = {
            "search": "/search",
            "search_kibana_prerelease": "/search?kibana.version=8.12.0&prerelease=true",
            "package": f"/package/{one['name']}/{one['version']}/",
            "zip_1mb": f"/epr/{BIG_PACKAGE}/{BIG_PACKAGE}-1.0.0.zip",
        }
        root = work / "www"
        nginx_paths = {}
        for key, url in urls.items():
            body = fetch(base + url)
            ext = "zip" if key.startswith("zip") else "json"
            rel = f"{key}.{ext}"
            (root).mkdir(exist_ok=True)
            (root / rel).write_bytes(body)
            nginx_paths[key] = "/" + rel
            results[f"{key}_bytes"] = len(body)
        nport = free_port()
        (work / "nginx.conf").write_text(NGINX_CONF.format(tmp=work, port=nport, root=root))
        nginx = subprocess.Popen(
            ["taskset", "-c", "0", "nginx", "-c", str(work / "nginx.conf")], start_new_session=True
        )
        wait_health(f"http://127.0.0.1:{nport}{nginx_paths['search']}")
        rows = []
        for key, url in urls.items():
            wrk(base + url, 2)  # warm-up (fills caches)
            ours = wrk(base + url, args.duration)
            theirs = wrk(f"http://127.0.0.1:{nport}{nginx_paths[key]}", args.duration)
            ratio = ours["rps"] / theirs["rps"]
            rows.append((key, ours, theirs, ratio))
            results[key] = {"ours": ours, "nginx": theirs, "ratio": round(ratio, 3)}
            print(
                f"{key:28s} ours {ours['rps']:9.0f} req/s p99 {ours['p99_ms']:7.2f} ms | "
                f"nginx {theirs['rps']:9.0f} req/s p99 {theirs['p99_ms']:7.2f} ms | {ratio:.2f}x"
            )
        results["rss_after_load_mib"] = round(tree_rss_kib(proc.pid) / 1024, 1)
        print(f"RSS after the load runs: {results['rss_after_load_mib']} MiB")
    finally:
        for p in (proc, nginx):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(exist_ok=True)
    (args.out / f"read-{args.server}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
