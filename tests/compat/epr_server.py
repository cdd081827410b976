"""Start/stop a real ``package-storage serve`` process on loopback and talk raw HTTP to it.

Used by the conformance suite (``test_epr_cases.py``) and the live security tests. Each server
gets its own copy of the fixtures, its own ``config.yml`` (flat dotted keys, 1 s cache times),
its own process group and a log file whose tail is shown when it fails to come up.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from epr_cases import EPR_FIXTURES

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
CACHE_TIME_KEYS = (
    "cache_time.index",
    "cache_time.search",
    "cache_time.categories",
    "cache_time.catch_all",
)


def cli_command() -> list[str]:
    """The package-storage CLI of the running interpreter's environment.

    ``PACKAGE_STORAGE_COMPAT_CLI`` (a command line, split on whitespace) replaces it, e.g. to run
    the suite against another build or the reference registry binary.
    """
    override = os.environ.get("PACKAGE_STORAGE_COMPAT_CLI", "").split()
    if override:
        return override
    script = Path(sys.executable).parent / "package-storage"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "package_storage.cli.main"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPR_")}
    env["EPR_REQUIRE_PACKAGE_SIGNATURES"] = "false"
    env.update(extra)
    return env


def write_config(path: Path, package_paths: Sequence[Path], cache_time: str = "1s") -> None:
    lines = ["package_paths:"]
    lines.extend(f"  - {p}" for p in package_paths)
    lines.extend(f"{key}: {cache_time}" for key in CACHE_TIME_KEYS)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def copy_fixtures(dest: Path, dir_names: Iterable[str]) -> list[Path]:
    """Copy each fixture directory (mtimes kept, symlinks as links) under ``dest``."""
    copies: list[Path] = []
    for name in dir_names:
        target = dest / name
        shutil.copytree(EPR_FIXTURES / name, target, symlinks=True)
        copies.append(target)
    return copies


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), one per header line, in order."""
        lowered = name.lower()
        return [v for k, v in self.headers if k.lower() == lowered]

    def describe_headers(self) -> str:
        return "\n".join(f"    {k}: {v}" for k, v in self.headers)


@dataclass
class RunningServer:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    root: Path
    config: Path
    log_path: Path
    env_extra: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        timeout: float = 30.0,
    ) -> Response:
        """Send ``target`` exactly as given (no normalisation) and read the whole answer."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            return Response(resp.status, resp.reason, list(resp.getheaders()), body)
        finally:
            conn.close()

    def health(self, timeout: float = 5.0) -> int | None:
        """Status of GET /health, or None when the server does not answer."""
        try:
            return self.request("GET", "/health", timeout=timeout).status
        except (OSError, http.client.HTTPException):
            return None


class ServerStartError(RuntimeError):
    pass


def _launch(name: str, root: Path, config: Path, env_extra: Mapping[str, str]) -> RunningServer:
    port = free_port()
    log_path = root / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*cli_command(), "serve", "--config", str(config), "--address", f"{HOST}:{port}"],
            cwd=root,
            env=server_environment(env_extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningServer(name, port, process, root, config, log_path, dict(env_extra))


def _wait_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if not server.alive():
            raise ServerStartError(
                f"server {server.name} exited with code {server.process.returncode} before "
                f"/health answered 200; log tail:\n{server.log_tail()}"
            )
        if server.health(timeout=2.0) == 200:
            return
        time.sleep(0.1)
    stop_server(server)
    raise ServerStartError(
        f"server {server.name} did not answer GET /health with 200 within {READY_TIMEOUT:.0f}s; "
        f"log tail:\n{server.log_tail()}"
    )


def start_server(
    name: str,
    root: Path,
    dir_names: Sequence[str],
    env_extra: Mapping[str, str] | None = None,
    prepare: Callable[[list[Path]], None] | None = None,
) -> RunningServer:
    """Copy the fixtures of ``dir_names`` into ``root``, write config.yml, start and wait.

    ``prepare`` may change the copied package directories before the server starts.
    """
    root.mkdir(parents=True, exist_ok=True)
    paths = copy_fixtures(root / "packages", dir_names)
    if prepare is not None:
        prepare(paths)
    config = root / "config.yml"
    write_config(config, paths)
    extra = dict(env_extra or {})
    for attempt in range(3):
        server = _launch(name, root, config, extra)
        try:
            _wait_ready(server)
            return server
        except ServerStartError:
            log = server.log_tail().lower()
            port_clash = "address already in use" in log or "errno 98" in log
            if attempt < 2 and port_clash:
                continue
            raise
    raise AssertionError("unreachable")


def stop_server(server: RunningServer) -> None:
    """SIGTERM the server's process group, SIGKILL it if it is still there after a while."""
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=STOP_TIMEOUT)
