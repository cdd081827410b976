"""Read-path benchmark: package-storage against nginx serving the same bytes, in one run.

Serves a corpus (``--layout production``, the default: bench/make_corpus.py's imitation of
Elastic's production registry, 185 names / 1,920 versions; ``--layout synthetic``: the older
10-versions-per-name corpus) with ``package-storage serve`` in its DEFAULT configuration (ECS
access log on, written to a file like a container's log), and measures:

  * time from process start to the listener accepting connections and to the first
    ``/health`` 200, and the RSS of the server after loading;
  * for each URL, wrk throughput (req/s), p99 latency and the CPU time per request of the
    server's whole process tree (user + system ticks from /proc/PID/stat, children included),
    beside nginx (one worker, sendfile, open_file_cache, no access log, ``gzip_static``)
    serving the identical response bytes from files in the same run; gzip rows ask both with
    ``Accept-Encoding: gzip`` (nginx answers from the ``.gz`` file holding our gzip body);
  * the machine's load (/proc/loadavg) before each pair of runs;
  * static files (``/package/{n}/{v}/{file}``): of a folder package its manifest and the
    screenshot closest to 1.08 MB, and of a zip package (``bench_static_zip``, in
    ``package_paths`` as a zip) a small file (in memory), a 4 MiB file (extracted once to the
    on-disk cache) whole and with ``Range: bytes=0-99``, a 1.08 MB png-like file (extracted).

The server and nginx are pinned to CPU 0 and wrk (``-t1 -c64``) to CPU 1.

``--baseline-src DIR`` also starts the same command from another source tree (``DIR`` holds
``package_storage``, e.g. ``git archive <commit> src | tar -x -C /tmp/base``) and measures it in
the same run, URL by URL beside ours and nginx: a before/after comparison under the same load.

    python bench/read_bench.py [--layout production|synthetic] [--corpus DIR] [--duration 10]
                               [--server uvicorn|granian] [--log-level info] [--label NAME]
                               [--baseline-src DIR] [--only KEY,KEY] [--cases static_]
                               [--src DIR]

``--cases`` keeps the cases whose key starts with one of the comma-separated prefixes (``--only``:
exact keys); ``--src`` runs our server from another source tree (PYTHONPATH).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
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
sys.path.insert(1, str(HERE.parent / "tests"))  # process_helpers
from make_corpus import (  # noqa: E402
    BIG_PACKAGE,
    PRODUCTION_MARKER,
    _rewrite_manifest,
    generate,
    generate_production,
)

from process_helpers import stop_group  # noqa: E402

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
  gzip_static on;
  gzip_vary on;
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

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GZIP = {"Accept-Encoding": "gzip"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = 300.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return time.monotonic()
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"port {port} not listening after {timeout}s")


def wait_health(url: str, timeout: float = 300.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.monotonic()
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def _tree(pid: int) -> list[int]:
    pids, out = [pid], []
    while pids:
        p = pids.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                children = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                pids.extend(int(c) for c in children)
        except OSError:
            continue
    return out


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and all its descendants, in KiB."""
    total = 0
    for p in _tree(pid):
        try:
            m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{p}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process tree (every thread; waited-for children too)."""
    ticks = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # after the command: state(0) ... utime(11) stime(12) cutime(13) cstime(14)
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / CLOCK_TICKS


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wrk(
    url: str, duration: int, pid: int, headers: dict[str, str] | None = None, connections: int = 64
) -> dict[str, float]:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    cpu0 = tree_cpu_seconds(pid)
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    cpu = tree_cpu_seconds(pid) - cpu0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "requests": float(total),
        "cpu_us_per_request": round(cpu / max(1, total) * 1e6, 2),
        "p99_ms": p99,
        "transfer_mib_s": _mib(transfer.group(1), transfer.group(2)) if transfer else 0.0,
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if sock else 0.0,
    }


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    assert m, text
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _mib(value: str, unit: str) -> float:
    return float(value) * {"B": 1 / 1048576, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}[unit]


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as r:
        return bytes(r.read()), {k.lower(): v for k, v in r.headers.items()}


def static_zip(src: Path, dest: Path) -> None:
    """``dest/bench_static_zip-1.0.0.zip``: the package folder ``src`` as a zip, plus
    docs/small.md (100 KB) and docs/large.md (4 MiB) of text (deflated)."""
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
        zf.writestr(f"{root}/img/screenshot.png", png_like(PNG_SIZE, 1))


PNG_SIZE = 1_080_000  # issue 15's "static file 1.08 MB (png inside a package)"


def png_like(size: int, seed: int) -> bytes:
    """``size`` bytes that start like a PNG and do not compress (like a screenshot's)."""
    return b"\x89PNG\r\n\x1a\n" + random.Random(seed).randbytes(size - 8)


def png_near(corpus: Path, size: int) -> str | None:
    """``/package/N/V/img/F`` of the folder package's png closest to ``size`` bytes."""
    best: tuple[int, str] | None = None
    for path in corpus.glob("*/*/img/*.png"):
        rel = path.relative_to(corpus).as_posix()
        key = (abs(path.stat().st_size - size), rel)
        if best is None or key < best:
            best = key
    return None if best is None else "/package/" + best[1]


def make_corpus(args: argparse.Namespace) -> Path:
    spec = args.fixtures.parent / "package-spec/packages/packages"
    if args.layout == "production":
        corpus = args.corpus or Path(tempfile.gettempdir()) / "ps-prod-corpus"
        if not (corpus / PRODUCTION_MARKER).exists():
            generate_production(corpus, args.fixtures, spec)
    else:
        corpus = args.corpus or Path(tempfile.gettempdir()) / "ps-corpus"
        if not (corpus / BIG_PACKAGE).exists():
            generate(corpus, args.fixtures, args.versions, 0)
    return corpus


def urls_for(
    base: str, layout: str, corpus: Path | None = None
) -> dict[str, tuple[str, dict[str, str] | None]]:
    """The benchmarked answers: key -> (path, request headers)."""
    search, _ = fetch(base + "/search?all=true&prerelease=true")
    entries = [e for e in json.loads(search) if e["name"] != BIG_PACKAGE]
    # A package with several versions and a mid-sized document.
    names: dict[str, int] = {}
    for e in entries:
        names[e["name"]] = names.get(e["name"], 0) + 1
    name = max(names, key=lambda n: (names[n], n))
    one = max((e for e in entries if e["name"] == name), key=lambda e: e["version"])
    urls: dict[str, tuple[str, dict[str, str] | None]] = {
        "categories": ("/categories", None),
        "search_package": (f"/search?package={name}", None),
        "package_document": (f"/package/{one['name']}/{one['version']}/", None),
        "search_kibana": ("/search?kibana.version=8.15.0", None),
        "search_kibana_gzip": ("/search?kibana.version=8.15.0", GZIP),
        "categories_gzip": ("/categories", GZIP),
        "package_document_gzip": (f"/package/{one['name']}/{one['version']}/", GZIP),
    }
    if layout == "synthetic":
        urls["search"] = ("/search", None)
        urls["zip_1mb"] = (f"/epr/{BIG_PACKAGE}/{BIG_PACKAGE}-1.0.0.zip", None)
    static = f"/package/{STATIC_ZIP}/1.0.0/docs"
    urls["static_folder_manifest"] = (f"/package/{one['name']}/{one['version']}/manifest.yml", None)
    urls["static_zip_small"] = (f"{static}/small.md", None)
    urls["static_zip_4mb"] = (f"{static}/large.md", None)
    urls["static_zip_4mb_range"] = (f"{static}/large.md", {"Range": "bytes=0-99"})
    png = png_near(corpus, PNG_SIZE) if corpus is not None else None
    if png is not None:  # a screenshot of a folder package (drop-in), closest to 1.08 MB
        urls["static_folder_png_1mb"] = (png, None)
    urls["static_zip_png_1mb"] = (f"/package/{STATIC_ZIP}/1.0.0/img/screenshot.png", None)
    return urls


class Server:
    """One ``package-storage serve`` process (from this checkout or a baseline source tree)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_file: Path) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        self.t0 = time.monotonic()
        with log_file.open("wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, "--address", f"127.0.0.1:{self.port}"],
                env=env,
                start_new_session=True,
                stderr=out,
            )

    def wait_ready(self) -> dict[str, float]:
        listening = wait_listening(self.port) - self.t0
        ready = wait_health(self.base + "/health") - self.t0
        time.sleep(0.5)
        # Start-up may use both cores (parallel loading); the load runs pin it to CPU 0.
        for pid in _tree(self.proc.pid):
            subprocess.run(["taskset", "-a", "-p", "-c", "0", str(pid)], capture_output=True)
        return {
            "listening_s": round(listening, 3),
            "ready_s": round(ready, 3),
            "rss_mib": round(tree_rss_kib(self.proc.pid) / 1024, 1),
        }

    def stop(self) -> int:
        stop_group(self.proc)
        return self.log_file.read_bytes().count(b"\n") if self.log_file.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layout", choices=("production", "synthetic"), default="production")
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--versions", type=int, default=2000, help="synthetic layout only")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--server", default="uvicorn")
    parser.add_argument("--log-level", default="info", help="EPR_LOG_LEVEL (default: the default)")
    parser.add_argument("--only", default="", help="comma-separated URL keys to run")
    parser.add_argument("--label", default="")
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--cases", default="", help="comma-separated key prefixes to run")
    parser.add_argument("--src", type=Path, default=None, help="run our server from this src/")
    parser.add_argument("--fixtures", type=Path, default=HERE.parent.parent / "shared/fixtures/epr")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    if not shutil.which("nginx") or not shutil.which("wrk"):
        sys.exit("needs nginx and wrk: apt-get install -y nginx wrk")

    corpus = make_corpus(args)
    work = Path(tempfile.mkdtemp(prefix="ps-bench-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    cfg = work / "config.yml"
    template = (
        corpus / BIG_PACKAGE / "1.0.0"
        if args.layout == "synthetic"
        else args.fixtures / "package/example/1.0.0"
    )
    static_zip(template, work / "zips")
    cfg.write_text(
        f"package_paths:\n  - {corpus}\n  - {work / 'zips'}\n"
        "cache_time.index: 10s\ncache_time.search: 10m\n"
        "cache_time.categories: 10m\ncache_time.catch_all: 10m\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPR_")}
    env["EPR_REQUIRE_PACKAGE_SIGNATURES"] = "false"
    env["EPR_LOG_LEVEL"] = args.log_level
    serve = ["-m", "package_storage.cli.main", "serve", "--config", str(cfg)]
    if args.server != "uvicorn":
        serve += ["--server", args.server]
    results: dict[str, object] = {
        "label": args.label,
        "layout": args.layout,
        "server": args.server,
        "log_level": args.log_level,
        "load_before": loadavg(),
    }
    ours_env = env if args.src is None else {**env, "PYTHONPATH": str(args.src.resolve())}
    servers = [Server("ours", [sys.executable, *serve], ours_env, work / "ours.log")]
    nginx = None
    try:
        results["ours_startup"] = servers[0].wait_ready()
        print(f"ours: {results['ours_startup']}", flush=True)
        if args.baseline_src is not None:
            base_env = {**env, "PYTHONPATH": str(args.baseline_src.resolve())}
            servers.append(Server("baseline", [sys.executable, *serve], base_env, work / "b.log"))
            results["baseline_startup"] = servers[1].wait_ready()
            print(f"baseline: {results['baseline_startup']}", flush=True)
        ours = servers[0]
        urls = urls_for(ours.base, args.layout, corpus)
        if args.only:
            urls = {k: v for k, v in urls.items() if k in args.only.split(",")}
        if wanted := [c for c in args.cases.split(",") if c]:
            urls = {k: v for k, v in urls.items() if k.startswith(tuple(wanted))}
        root = work / "www"
        root.mkdir()
        nginx_paths = {}
        for key, (url, headers) in urls.items():
            plain, _ = fetch(ours.base + url)
            for other in servers[1:]:
                assert fetch(other.base + url)[0] == plain, (other.name, key)
            ext = "zip" if key.startswith("zip") else "json"
            rel = f"{key.removesuffix('_gzip')}.{ext}"
            (root / rel).write_bytes(plain)
            nginx_paths[key] = "/" + rel
            results[f"{key}_bytes"] = len(plain)
            if headers == GZIP:
                body, got = fetch(ours.base + url, GZIP)
                if got.get("content-encoding") == "gzip":
                    assert gzip.decompress(body) == plain, key
                else:  # a server without gzip: nginx gets a gzip of its own
                    body = gzip.compress(plain, 6)
                (root / (rel + ".gz")).write_bytes(body)
                results[f"{key}_bytes"] = len(body)
                results[f"{key}_ours_encoding"] = got.get("content-encoding", "identity")
        nport = free_port()
        (work / "nginx.conf").write_text(NGINX_CONF.format(tmp=work, port=nport, root=root))
        nginx = subprocess.Popen(
            ["taskset", "-c", "0", "nginx", "-c", str(work / "nginx.conf")], start_new_session=True
        )
        wait_health(f"http://127.0.0.1:{nport}{next(iter(nginx_paths.values()))}")
        for key, (url, headers) in urls.items():
            row: dict[str, object] = {"url": url, "headers": headers or {}, "load": loadavg()}
            theirs = wrk(
                f"http://127.0.0.1:{nport}{nginx_paths[key]}", args.duration, nginx.pid, headers
            )
            row["nginx"] = theirs
            line = [f"{key:22s}"]
            for server in servers:
                wrk(server.base + url, 2, server.proc.pid, headers)  # warm-up (fills caches)
                got = wrk(server.base + url, args.duration, server.proc.pid, headers)
                got["rps_ratio"] = round(got["rps"] / theirs["rps"], 3)
                got["cpu_ratio"] = round(
                    got["cpu_us_per_request"] / max(0.01, theirs["cpu_us_per_request"]), 2
                )
                row[server.name] = got
                line.append(
                    f"{server.name} {got['rps']:7.0f} req/s {got['cpu_us_per_request']:6.1f} us/req"
                    f" ({got['rps_ratio']:.2f}x req/s, {got['cpu_ratio']:.1f}x CPU)"
                )
            line.append(
                f"nginx {theirs['rps']:7.0f} req/s {theirs['cpu_us_per_request']:5.1f} us/req"
                f" | load {row['load']}"
            )
            results[key] = row
            print(" | ".join(line), flush=True)
        results["rss_after_load_mib"] = round(tree_rss_kib(ours.proc.pid) / 1024, 1)
        print(f"RSS after the load runs: {results['rss_after_load_mib']} MiB")
    finally:
        for server in servers:
            results[f"{server.name}_log_lines"] = server.stop()
        if nginx is not None:
            stop_group(nginx)
        shutil.rmtree(work, ignore_errors=True)
    print(f"server log lines: {results.get('ours_log_lines')}")
    args.out.mkdir(exist_ok=True)
    name = f"read-{args.layout}-{args.server}{'-' + args.label if args.label else ''}.json"
    (args.out / name).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
