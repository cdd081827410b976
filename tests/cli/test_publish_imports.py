"""What a ``publish`` process imports (issue 15: CLI start-up): a publish into a directory
store, in a new process as a user runs it, imports no PostgreSQL driver or dialect, no Alembic
(nor its Mako/Pygments), no AWS SDK and no Python ``jsonschema``; those stay importable where
they are needed (a ``postgresql://`` store, ``migrate``, ``s3://`` blobs, an invalid package).
Checked through ``sys.modules`` of a real subprocess: no timings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import package_storage

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "packages"
SRC = Path(package_storage.__file__).resolve().parents[1]

# Never imported by a publish into a directory store.
NOT_IMPORTED = (
    "psycopg",
    "psycopg_binary",
    "sqlalchemy.dialects.postgresql",
    "alembic",
    "mako",
    "pygments",
    "boto3",
    "botocore",
    "jsonschema",
    "rich",
    "httpx",
    "uvicorn",
    "fastapi",
)

# Runs the CLI as the console script does, then writes the modules it imported.
RUN = """
import json, sys
out = sys.argv.pop(1)
from package_storage.cli.main import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def run_cli(tmp_path: Path, *args: str) -> tuple[int, set[str], str]:
    out = tmp_path / "modules.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(out.read_text())
    return int(result["code"] or 0), set(result["modules"]), done.stdout + done.stderr


def loaded(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    code, _, output = run_cli(tmp_path, "init", "--store", str(store))
    assert code == 0, output
    return store


def test_publish_to_a_directory_imports_no_postgresql_alembic_or_s3(
    tmp_path: Path, store: Path
) -> None:
    package = EXAMPLES / "hello_nginx" / "1.0.0"
    code, modules, output = run_cli(tmp_path, "publish", str(package), "--store", str(store))
    assert code == 0, output
    assert "published hello_nginx 1.0.0 to snapshot" in output
    assert loaded(modules, "sqlalchemy")  # the catalog itself (the check can see modules)
    assert [m for m in NOT_IMPORTED if loaded(modules, m)] == []


def test_an_invalid_package_still_gets_its_schema_errors(tmp_path: Path, store: Path) -> None:
    """The Python validator (imported on use) still explains what the quick check refused."""
    package = tmp_path / "hello_nginx"
    shutil.copytree(EXAMPLES / "hello_nginx" / "1.0.0", package)
    manifest = (package / "manifest.yml").read_text()
    assert "\ntitle:" in manifest
    (package / "manifest.yml").write_text(manifest.replace("\ntitle:", "\ntitle_typo:", 1))
    code, modules, output = run_cli(tmp_path, "publish", str(package), "--store", str(store))
    assert code == 1
    assert "error:" in output and "title_typo" in output, output
    assert loaded(modules, "jsonschema")
