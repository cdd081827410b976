"""Read-path benchmark: package-storage against nginx serving the same bytes, in one run.

Measures, on a synthetic corpus (bench/make_corpus.py):
  * time from process start to the first ``/health`` 200 and the RSS of the server after loading;
  * wrk throughput (req/s), p99 latency and server CPU time per request (utime + stime from
    /proc) for a set of URLs, each beside nginx serving the identical response bytes from files
    (sendfile, open_file_cache, one worker, no access log);
  * static files (``/package/{n}/{v}/{file}``): a file of a folder package, and of a zip package
    (``bench_static_zip``, in ``package_paths`` as a zip) a small file (in memory), a 4 MiB file
    (extracted once to the on-disk cache) whole and with ``Range: bytes=0-99``.
The server is pinned to CPU 0 and wrk to CPU 1 (see shared bench-method notes in bench/README.md).

    python bench/read_bench.py [--corpus DIR] [--versions 2000] [--duration 10] [--server uvicorn|granian]
        [--cases static_] [--src DIR]

``--cases`` keeps the cases whose key starts with one of the comma-separated prefixes;
``--src`` runs the server from another source tree (PYTHONPATH), e.g. an older commit's
``git archive`` for a before/after comparison in one session.
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
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_corpus import BIG_PACKAGE, _rewrite_manifest, generate  # noqa: E402

STATIC_ZIP = "bench_static_zip"

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


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) and its descendants, in seconds."""
    total = 0.0
    pids = [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            pids.extend(int(c) for c in children)
        except OSError:
            continue
    return total


def wrk(
    url: str,
    duration: int,
    connections: int = 64,
    headers: dict[str, str] | None = None,
    pid: int | None = None,
) -> dict[str, float]:
    extra = [arg for k, v in (headers or {}).items() for arg in ("-H", f"{k}: {v}")]
    cpu0 = tree_cpu_seconds(pid) if pid is not None else 0.0
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
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = tree_cpu_seconds(pid) - cpu0 if pid is not None else 0.0
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p99_ms": p99,
        "cpu_us_per_req": round(cpu * 1e6 / requests, 1) if requests else 0.0,
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if sock else 0.0,
    }


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    assert m, text
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def fetch(url: str, headers: dict[str, str] | None = None) -> bytes:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return bytes(r.read())


def static_zip(corpus: Path, dest: Path) -> None:
    """``dest/bench_static_zip-1.0.0.zip``: the download package as a zip, plus docs/small.md
    (100 KB) and docs/large.md (4 MiB) of text (deflated)."""
    src = corpus / BIG_PACKAGE / "1.0.0"
    root = f"{STATIC_ZIP}-1.0.0"
    line = b"%08d the quick brown fox jumps over the lazy dog, again and again %d\n"
    text = b"".join(line % (i, i * 7919 % 10007) for i in range(60_000))
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest / f"{root}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                if path.name == "manifest.yml":
                    data = _rewrite_manifest(data.decode(), STATIC_ZIP, "1.0.0").encode()
                zf.writestr(f"{root}/{path.relative_to(src).as_posix()}", data)
        zf.writestr(f"{root}/docs/small.md", text[: 100 << 10])
        zf.writestr(f"{root}/docs/large.md", text[: 4 << 20])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "ps-corpus")
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--server", default="uvicorn")
    parser.add_argument("--fixtures", type=Path, default=HERE.parent.parent / "shared/fixtures/epr")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--cases", default="", help="comma-separated key prefixes to run")
    parser.add_argument("--src", type=Path, default=None, help="run the server from this src/")
    args = parser.parse_args()
    if not shutil.which("nginx") or not shutil.which("wrk"):
        sys.exit("needs nginx and wrk: apt-get install -y nginx wrk")

    if not (args.corpus / BIG_PACKAGE).exists():
        generate(args.corpus, args.fixtures, args.versions, 0)
    work = Path(tempfile.mkdtemp(prefix="ps-bench-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    cfg = work / "config.yml"
    static_zip(args.corpus, work / "zips")
    cfg.write_text(
        f"package_paths:\n  - {args.corpus}\n  - {work / 'zips'}\n"
        "cache_time.index: 10s\ncache_time.search: 10m\n"
        "cache_time.categories: 10m\ncache_time.catch_all: 10m\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).parent / "package-storage"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPR_")}
    env["EPR_REQUIRE_PACKAGE_SIGNATURES"] = "false"
    env["EPR_LOG_LEVEL"] = "error"
    if args.src is not None:
        env["PYTHONPATH"] = str(args.src.resolve())
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
            "static_folder_manifest": f"/package/{one['name']}/{one['version']}/manifest.yml",
            "static_zip_small": f"/package/{STATIC_ZIP}/1.0.0/docs/small.md",
            "static_zip_4mb": f"/package/{STATIC_ZIP}/1.0.0/docs/large.md",
            "static_zip_4mb_range": f"/package/{STATIC_ZIP}/1.0.0/docs/large.md",
        }
        request_headers = {"static_zip_4mb_range": {"Range": "bytes=0-99"}}
        wanted = [p for p in args.cases.split(",") if p]
        if wanted:
            urls = {k: u for k, u in urls.items() if k == "search" or k.startswith(tuple(wanted))}
        root = work / "www"
        nginx_paths = {}
        for key, url in urls.items():
            body = fetch(base + url)  # the whole file also for the range case: nginx cuts it
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
            hdrs = request_headers.get(key)
            wrk(base + url, 2, headers=hdrs)  # warm-up (fills caches)
            ours = wrk(base + url, args.duration, headers=hdrs, pid=proc.pid)
            theirs = wrk(
                f"http://127.0.0.1:{nport}{nginx_paths[key]}",
                args.duration,
                headers=hdrs,
                pid=nginx.pid,
            )
            ratio = ours["rps"] / theirs["rps"]
            rows.append((key, ours, theirs, ratio))
            results[key] = {"ours": ours, "nginx": theirs, "ratio": round(ratio, 3)}
            print(
                f"{key:28s} ours {ours['rps']:9.0f} req/s p99 {ours['p99_ms']:7.2f} ms"
                f" {ours['cpu_us_per_req']:7.0f} us CPU/req | nginx {theirs['rps']:9.0f} req/s"
                f" p99 {theirs['p99_ms']:7.2f} ms {theirs['cpu_us_per_req']:7.0f} us CPU/req"
                f" | {ratio:.2f}x"
            )
        results["rss_after_load_mib"] = round(tree_rss_kib(proc.pid) / 1024, 1)
        print(f"RSS after the load runs: {results['rss_after_load_mib']} MiB")
        results["loadavg"] = Path("/proc/loadavg").read_text().strip()
        print(f"load average at the end: {results['loadavg']}")
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
