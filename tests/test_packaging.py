"""The wheel carries every file the program reads: each non-Python file below
``src/package_storage`` matches a ``[tool.setuptools.package-data]`` pattern."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "package_storage"


def test_every_data_file_is_in_the_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["package_storage"]
    missing = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(PACKAGE).as_posix()
        if not any(fnmatch(relative, pattern) for pattern in patterns):
            missing.append(relative)
    assert missing == [], f"not in pyproject.toml's package-data (not shipped): {missing}"
