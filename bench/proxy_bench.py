"""Proxy-mode benchmark: /search through a proxy vs the upstream asked directly, in one run.

An upstream ``package-storage serve --config`` over the EPR fixture packages (``package`` and
``local-storage``: 46 versions) and a proxy ``serve --config ... --feature-proxy-mode`` over
``second_package_path`` (1 local version) in front of it, both in their default configuration
(access log on, to a file), both pinned to CPU 0; wrk (``-t1 -c16``) on CPU 1. Per URL: req/s,
p99 and the CPU time per request of each server's process tree (from /proc), with the load
average before the run:

  * ``direct_*``: the upstream alone (what a client asking it directly costs);
  * ``proxy_*``: the same URL through the proxy (the proxy asks the upstream every time and
    merges: its CPU per request plus the upstream's is the whole cost);
  * ``proxy_local_doc``: a local package document (the upstream is not asked);
  * ``proxy_redirect_zip``: a zip only the upstream has (one upstream lookup, then a 301);
  * ``fallback_search``: /search after the upstream was stopped (local answer while paused).

    python bench/proxy_bench.py [--duration 5] [--connections 16]

Figures go to bench/out/proxy_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from read_bench import free_port, loadavg, tree_cpu_seconds, wrk  # noqa: E402

ROOT = HERE.parent
FIXTURES = (ROOT / ".." / "shared" / "fixtures" / "epr").resolve()
CLI = Path(sys.executable).parent / "package-storage"


def write_config(path: Path, dirs: list[Path]) -> Path:
    lines = ["package_paths:", *[f"  - {d}" for d in dirs]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def start(args: list[str], log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = ["taskset", "-c", "0", str(CLI), "serve", "--address", f"127.0.0.1:{port}", *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(
    name: str, url: str, pids: dict[str, int], duration: int, connections: int
) -> dict[str, object]:
    load = loadavg()
    before = {who: tree_cpu_seconds(pid) for who, pid in pids.items()}
    first = next(iter(pids.values()))
    result = wrk(url, duration, first, connections=connections)
    row: dict[str, object] = {
        "case": name,
        "url": url.split("/", 3)[3],
        "load_before": load,
        "rps": result["rps"],
        "p99_ms": result["p99_ms"],
        "non2xx3xx": result["non2xx"],
    }
    for who, pid in pids.items():
        cpu = tree_cpu_seconds(pid) - before[who]
        row[f"cpu_us_per_request_{who}"] = round(cpu / max(1.0, result["requests"]) * 1e6, 1)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EPR_", "PACKAGE_STORAGE_"))}
    env["EPR_REQUIRE_PACKAGE_SIGNATURES"] = "false"
    work = Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    rows: list[dict[str, object]] = []
    try:
        up_cfg = write_config(
            work / "upstream.yml", [FIXTURES / "local-storage", FIXTURES / "package"]
        )
        proxy_cfg = write_config(work / "proxy.yml", [FIXTURES / "second_package_path"])
        upstream, up_base = start(["--config", str(up_cfg)], work / "upstream.log", env)
        proxy_flags = ["--feature-proxy-mode", "--proxy-to", up_base, "--proxy-allow-insecure"]
        proxy, px_base = start(
            ["--config", str(proxy_cfg), *proxy_flags, "--proxy-timeout=2s"],
            work / "proxy.log",
            env,
        )
        both = {"proxy": proxy.pid, "upstream": upstream.pid}
        d, c = args.duration, args.connections
        for query in ("/search", "/search?all=true", "/categories"):
            key = query.strip("/").replace("?", "_").replace("=", "_")
            rows.append(measure(f"direct_{key}", up_base + query, {"upstream": upstream.pid}, d, c))
            rows.append(measure(f"proxy_{key}", px_base + query, both, d, c))
        rows.append(
            measure("proxy_local_doc", px_base + "/package/multiversion/1.1.0/", both, d, c)
        )
        rows.append(
            measure("proxy_redirect_zip", px_base + "/epr/example/example-1.0.0.zip", both, d, c)
        )
        stop(upstream)
        with urllib.request.urlopen(px_base + "/search", timeout=60) as r:  # pauses the upstream
            r.read()
        rows.append(measure("fallback_search", px_base + "/search", {"proxy": proxy.pid}, d, c))
        stop(proxy)
    finally:
        out = HERE / "out"
        out.mkdir(exist_ok=True)
        (out / "proxy_bench.json").write_text(json.dumps(rows, indent=2) + "\n")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
