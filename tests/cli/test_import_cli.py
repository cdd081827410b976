"""``package-storage import`` and ``import-git`` through click's CliRunner (and once through a
real subprocess with worker processes). Stores, folders, zips and git repositories are built in
a temporary directory from ``examples/packages``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from git_repos import ACME, make_repo, make_version
from package_storage.cli.main import main
from package_storage.packages.artifacts import build_zip
from package_storage.packages.trees import FolderTree


def cli(*args: str | Path, env: Mapping[str, str] | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(
        main,
        [str(a) for a in args],
        env={"PACKAGE_STORAGE_ACTOR": "tester", **(env or {})},
        catch_exceptions=False,
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    assert cli("init", "--store", path).exit_code == 0
    return path


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """A package-storage layout folder: three good versions and one broken."""
    src = tmp_path / "packages"
    for v in ("1.0.0", "1.0.1", "1.0.2"):
        make_version(src, v)
    make_version(src, "1.0.0", source=ACME)
    (make_version(src, "1.0.3") / "manifest.yml").write_text("name: [broken\n")
    return src


# --- import ----------------------------------------------------------------------------------


def test_import_stops_at_the_first_invalid_package_by_default(store: Path, layout: Path) -> None:
    result = cli("import", layout, "--stage", "production", "--store", store)
    assert result.exit_code == 1
    assert "import from" in result.stdout
    assert "4 imported, 0 skipped, 1 rejected" in result.stdout
    broken = layout / "hello_nginx" / "1.0.3"
    assert f"error: {broken}:" in result.stderr
    assert f"stopped at {broken}: 4 imported, 0 skipped, 0 not tried" in result.stderr


def test_import_report_mode_lists_rejections_and_exits_0(store: Path, layout: Path) -> None:
    result = cli(
        "import", layout, "--stage", "production", "--on-invalid", "report", "--store", store
    )
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "4 imported, 0 skipped, 1 rejected" in out
    assert "rejected (1):" in out
    assert f"  {layout / 'hello_nginx' / '1.0.3'}: " in out
    assert "new revisions: production 1, staging 1, snapshot 1 (1 batch)" in out
    listed = json.loads(cli("list", "--stage", "production", "--json", "--store", store).stdout)
    assert [(e["name"], e["version"], e["added_by"]) for e in listed] == [
        ("acme_input", "1.0.0", "tester"),
        ("hello_nginx", "1.0.0", "tester"),
        ("hello_nginx", "1.0.1", "tester"),
        ("hello_nginx", "1.0.2", "tester"),
    ]
    history = cli("history", "--store", store, "--limit", "1").stdout
    assert "[production] Import hello_nginx-1.0.2" in history

    again = cli(
        "import", layout, "--stage", "production", "--on-invalid", "report", "--store", store
    )
    assert again.exit_code == 0
    assert "0 imported, 4 skipped, 1 rejected" in again.stdout
    assert "nothing changed: no new revision" in again.stdout


def test_import_json_report(store: Path, layout: Path) -> None:
    shutil.rmtree(layout / "hello_nginx" / "1.0.3")
    result = cli(
        "import", layout, "--stage", "staging", "--json", "--batch-size", "2", "--store", store
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert list(doc) == [
        "source",
        "run",
        "total",
        "imported",
        "skipped",
        "rejected",
        "duplicates",
        "left_behind",
        "stopped",
        "not_tried",
        "files",
        "seconds",
        "batches",
        "revisions",
        "workers",
    ]
    assert doc["total"] == 4 and doc["batches"] == 2 and doc["stopped"] is False
    assert doc["revisions"] == {"staging": 2, "snapshot": 2}
    first = doc["imported"][0]
    assert first["stage"] == "staging" and first["status"] == "imported"
    assert re.fullmatch(r"[0-9a-f]{64}", first["artifact"])


def test_import_refusals(store: Path, layout: Path, tmp_path: Path) -> None:
    result = cli("import", layout, "--stage", "nope", "--store", store)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: stage nope does not exist")
    (tmp_path / "empty").mkdir()
    result = cli("import", tmp_path / "empty", "--stage", "snapshot", "--store", store)
    assert result.exit_code == 1 and "error: no packages in" in result.stderr
    result = cli("import", layout, "--store", store)
    assert result.exit_code == 2 and "--stage" in result.stderr
    result = cli("import", layout, "--stage", "snapshot", "--store", tmp_path / "nostore")
    assert result.exit_code == 1 and "no package store at" in result.stderr


def test_zips_with_and_without_sig_and_export_bundle_into_another_store(
    store: Path, tmp_path: Path
) -> None:
    zips = tmp_path / "zips"
    zips.mkdir()
    for v in ("1.0.0", "1.0.1"):
        folder = make_version(tmp_path / "f", v)
        (zips / f"hello_nginx-{v}.zip").write_bytes(build_zip(FolderTree(folder), "hello_nginx", v))
    (zips / "hello_nginx-1.0.0.zip.sig").write_text("not a signature")
    result = cli(
        "import", zips, "--stage", "production", "--on-invalid", "report", "--store", store
    )
    assert result.exit_code == 0
    assert "1 imported, 0 skipped, 1 rejected" in result.stdout
    assert "hello_nginx-1.0.0.zip:" in result.stdout

    bundle = tmp_path / "bundle"
    assert cli("export", "production", bundle, "--store", store).exit_code == 0
    other = tmp_path / "other"
    assert cli("init", "--store", other).exit_code == 0
    result = cli("import", bundle, "--stage", "production", "--store", other)
    assert result.exit_code == 0, result.stderr
    assert "1 imported" in result.stdout
    a = json.loads(cli("list", "--stage", "production", "--json", "--store", store).stdout)
    b = json.loads(cli("list", "--stage", "production", "--json", "--store", other).stdout)
    assert [e["artifact"] for e in a] == [e["artifact"] for e in b]


# --- import-git ------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_import_git_one_run_three_stages(store: Path, tmp_path: Path) -> None:
    pk = tmp_path / "pk"
    v100, v110, v200 = (make_version(pk, v) for v in ("1.0.0", "1.1.0", "2.0.0"))
    broken = make_version(tmp_path / "b", "0.1.0")
    (broken / "manifest.yml").write_text("name: [broken\n")
    repo = make_repo(
        tmp_path,
        {
            "production": {"hello_nginx/1.0.0": v100},
            "staging": {"hello_nginx/1.0.0": v100, "hello_nginx/1.1.0": v110},
            "snapshot": {"hello_nginx/2.0.0": v200, "broken/0.1.0": broken},
        },
    )
    result = cli("import-git", repo, "--on-invalid", "report", "--store", store)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert re.search(r"branch production \([0-9a-f]{12}\) -> stage production", out)
    assert "3 imported, 0 skipped, 1 rejected" in out
    assert "  production: 1 imported, 0 skipped, 0 rejected" in out
    assert "  snapshot: 1 imported, 0 skipped, 1 rejected" in out
    assert "in two branches, imported into the more stable stage only (1):" in out
    assert "  hello_nginx 1.0.0: production, not staging (same content)" in out
    assert ":packages/broken/0.1.0: " in out
    staging = json.loads(cli("list", "--stage", "staging", "--json", "--store", store).stdout)
    assert [e["version"] for e in staging] == ["1.1.0"]

    again = cli("import-git", repo, "--on-invalid", "report", "--json", "--store", store)
    doc = json.loads(again.stdout)
    assert len(doc["skipped"]) == 3 and doc["imported"] == [] and doc["revisions"] == {}
    assert doc["duplicates"] == [
        {
            "name": "hello_nginx",
            "version": "1.0.0",
            "kept": "production",
            "dropped": [{"stage": "staging", "same_content": True}],
        }
    ]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_import_git_branch_mapping_and_missing_branches(store: Path, tmp_path: Path) -> None:
    v100 = make_version(tmp_path / "pk", "1.0.0")
    repo = make_repo(tmp_path, {"prod": {"hello_nginx/1.0.0": v100}})
    result = cli("import-git", repo, "--store", store)
    assert result.exit_code == 1
    assert "has none of the branches production, staging, snapshot" in result.stderr
    result = cli(
        "import-git",
        repo,
        "--branch",
        "production=prod",
        "--branch",
        "staging=staging",
        "--store",
        store,
    )
    assert result.exit_code == 0, result.stderr
    assert "warning: " in result.stderr and "no branch staging" in result.stderr
    assert "branch prod (" in result.stdout and "-> stage production" in result.stdout
    result = cli("import-git", repo, "--branch", "production", "--store", store)
    assert result.exit_code == 2 and "STAGE=BRANCH" in result.stderr


# --- a real process with workers -------------------------------------------------------------


def test_subprocess_import_with_worker_processes(store: Path, tmp_path: Path) -> None:
    src = tmp_path / "many"
    for i in range(10):
        make_version(src, f"1.0.{i}")
    exe = Path(sys.executable).with_name("package-storage")
    env = {**os.environ, "PACKAGE_STORAGE_ACTOR": "sub"}
    args = [str(exe), "import", str(src), "--stage", "snapshot", "--workers", "2"]
    args += ["--store", str(store)]
    first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "10 imported, 0 skipped, 0 rejected" in first.stdout
    assert "2 workers" in first.stdout
    second = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "0 imported, 10 skipped, 0 rejected" in second.stdout
