"""Upstreams for the mirror tests (a plain module, imported by name): a real package-storage
store served by ``package-storage serve --store`` on loopback, and a small forwarding HTTP
server in front of it that fails on purpose (503s, dropped connections) as a flaky upstream."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from click.testing import CliRunner

from package_storage.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "packages"


def cli(*args: str | Path) -> str:
    result = CliRunner().invoke(
        main, [str(a) for a in args], env={"PACKAGE_STORAGE_ACTOR": "tester"}
    )
    assert result.exit_code == 0, result.output
    return result.output


def make_upstream(root: Path, *versions: str, signed: bool = True) -> Path:
    """A store at ``root`` with the example packages ``name/version`` in snapshot (signed by the
    store's key, exported to ``root.parent / 'upstream.asc'``, when ``signed``)."""
    cli("init", "--store", root)
    if signed:
        cli("keys", "generate", "--store", root)
        cli("keys", "export", "--store", root, "-o", root.parent / "upstream.asc")
    publish(root, *versions)
    return root


def publish(root: Path, *versions: str) -> None:
    cli("publish", "--store", root, "--stage", "snapshot", *(EXAMPLES / v for v in versions))


def _command() -> list[str]:
    script = Path(sys.executable).parent / "package-storage"
    return [str(script)] if script.exists() else [sys.executable, "-m", "package_storage.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(store: Path) -> Iterator[str]:
    """``package-storage serve --store STORE`` on loopback; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [*_command(), "serve", "--store", str(store), "--address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=store.parent,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the upstream server exited"
            assert time.monotonic() < deadline, "the upstream server did not start"
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_for(url: str, expected: int) -> None:
    """Until ``url`` (a search) lists ``expected`` entries (a server polls its store)."""
    deadline = time.monotonic() + 20
    while len(httpx.get(url, timeout=5).json()) != expected:
        assert time.monotonic() < deadline, f"{url} never listed {expected} entries"
        time.sleep(0.05)


Policy = Callable[[str, int], str]
"""(path, how many times this path was asked before) -> "ok", "503" or "drop"."""


class FlakyProxy:
    """A forwarding server in front of ``target`` that answers as ``policy`` says."""

    def __init__(self, target: str, policy: Policy) -> None:
        self.target = target
        self.policy = policy
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with proxy.lock:
                    count = proxy.seen.get(self.path, 0)
                    proxy.seen[self.path] = count + 1
                what = proxy.policy(self.path, count)
                if what == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if what == "503":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                r = httpx.get(proxy.target + self.path, timeout=10)
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def asked(self, suffix: str) -> int:
        with self.lock:
            return sum(n for p, n in self.seen.items() if p.endswith(suffix))
