"""A real ``package-storage serve --store DIR --manage-address ...`` on loopback (a plain
module, imported by name by the management tests and the remote CLI tests)."""

from __future__ import annotations

import contextlib
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from process_helpers import clean_env, command, free_port

STARTUP_SECONDS = 90.0


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    read_url: str
    manage_url: str
    log: Path


def _read_ready(port: int, verify: ssl.SSLContext | bool) -> bool:
    """Whether the read listener answers ``/health`` 200, over https (when it has a
    certificate) or plain http (the management listener may have TLS of its own alone)."""
    for scheme in ("https", "http") if verify is not True else ("http",):
        try:
            got = httpx.get(f"{scheme}://127.0.0.1:{port}/health", timeout=5, verify=verify)
        except httpx.HTTPError:
            continue
        return got.status_code == 200
    return False


@contextlib.contextmanager
def start_server(
    store_dir: Path | str,
    log: Path,
    *,
    max_upload: str = "512MiB",
    extra: Sequence[str] = (),
    ca: Path | None = None,
) -> Iterator[LiveServer]:
    """Start the server over ``store_dir`` (a directory, or a store URL as a ``str``: a Path
    would fold its ``//``), wait (bounded) until the management listener answers and the read
    listener is ready, stop it after.
    With ``ca`` (its listeners serve TLS, ``extra`` gives the certificate) the URLs are https
    and the wait trusts ``ca``."""
    read_port, manage_port = free_port(), free_port()
    args = [
        *command(),
        "serve",
        "--store",
        str(store_dir),
        "--address",
        f"127.0.0.1:{read_port}",
        "--manage-address",
        f"127.0.0.1:{manage_port}",
        "--max-upload-size",
        max_upload,
        *extra,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=clean_env())
    scheme = "http" if ca is None else "https"
    server = LiveServer(
        process, f"{scheme}://127.0.0.1:{read_port}", f"{scheme}://127.0.0.1:{manage_port}", log
    )
    verify: ssl.SSLContext | bool = True if ca is None else ssl.create_default_context(cafile=ca)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited {process.returncode}: {log.read_text()}")
            try:
                # both listeners: the management API, and the read API ready (its /health is
                # 503 while the distributions load)
                url = server.manage_url + "/api/v1/openapi.json"
                if httpx.get(url, timeout=5, verify=verify).is_success and _read_ready(
                    read_port, verify
                ):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
