"""Helpers shared by the CLI tests that run ``package-storage`` as a real process (a plain
module, imported by name): the command line, a clean environment and a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def command() -> list[str]:
    """The installed ``package-storage`` script, or ``python -m`` where there is none."""
    script = Path(sys.executable).parent / "package-storage"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "package_storage.cli.main"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without EPR_* and PACKAGE_STORAGE_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EPR_", "PACKAGE_STORAGE_"))}
    env.update(extra or {})
    return env


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(process: subprocess.Popen[Any], grace: float = 30.0) -> None:
    """End a process started with ``start_new_session=True`` and everything it started:
    SIGTERM to its process group, SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
