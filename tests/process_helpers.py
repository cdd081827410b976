"""Helpers shared by the CLI tests that run ``package-storage`` as a real process (a plain
module, imported by name): the command line, a clean environment and a free loopback port."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path


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
