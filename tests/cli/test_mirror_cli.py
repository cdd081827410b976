"""``package-storage mirror``: through click's CliRunner and once as a real process, against a
real package-storage server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mirror_upstream import make_upstream, serve
from package_storage.cli.main import main


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env={"PACKAGE_STORAGE_ACTOR": "tester"})


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("upstream")
    store = make_upstream(root / "store", "hello_nginx/1.0.0", "hello_nginx/1.1.0")
    with serve(store) as base:
        yield base + "/snapshot", root / "upstream.asc"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "down"
    assert cli("init", "--store", path).exit_code == 0
    return path


def test_mirror_then_again_prints_new_and_already_present(
    upstream: tuple[str, Path], store: Path
) -> None:
    url, key = upstream
    first = cli("mirror", url, "--stage", "production", "--verify-key", key, "--store", store)
    assert first.exit_code == 0, first.output
    assert f"mirror of {url} into production: 2 new, 0 already present" in first.stdout
    again = cli("mirror", url, "--stage", "production", "--store", store)
    assert again.exit_code == 0, again.output
    assert "0 new, 2 already present" in again.stdout
    history = cli("history", "--store", store, "--json")
    assert f"Mirror hello_nginx-1.1.0 from {url}" in history.stdout


def test_json_dry_run_and_filters(upstream: tuple[str, Path], store: Path) -> None:
    url, _ = upstream
    args = ("--stage", "snapshot", "--store", store, "--json")
    dry = cli("mirror", url, *args, "--package", "hello_nginx", "--latest", "1", "--dry-run")
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True
    assert [(v["name"], v["version"]) for v in report["to_fetch"]] == [("hello_nginx", "1.1.0")]
    run = json.loads(cli("mirror", url, *args, "--latest", "1").stdout)
    assert [v["version"] for v in run["new"]] == ["1.1.0"] and run["present"] == 0
    assert run["bytes"] > 0 and run["failed"] == [] and run["revisions"]["snapshot"] >= 1


def test_errors_are_one_line(upstream: tuple[str, Path], store: Path, tmp_path: Path) -> None:
    url, _ = upstream
    cases = [
        (("mirror", url, "--stage", "qa", "--store", store), "stage qa"),
        (("mirror", "ftp://x", "--stage", "snapshot", "--store", store), "not an http"),
        (
            (
                "mirror",
                "http://127.0.0.1:9",
                "--stage",
                "snapshot",
                "--retries",
                "0",
                "--store",
                store,
            ),
            "gave up after 1 attempts",
        ),
    ]
    for args, text in cases:
        result = cli(*args)
        assert result.exit_code == 1, result.output
        assert text in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error: ")
    other = tmp_path / "other.asc"
    assert cli("init", "--store", tmp_path / "k").exit_code == 0
    assert cli("keys", "generate", "--store", tmp_path / "k").exit_code == 0
    assert cli("keys", "export", "--store", tmp_path / "k", "-o", other).exit_code == 0
    refused = cli("mirror", url, "--stage", "snapshot", "--verify-key", other, "--store", store)
    assert refused.exit_code == 1
    assert "refused hello_nginx 1.0.0: signature refused" in refused.stdout
    assert refused.stderr.strip().splitlines() == [
        f"error: mirror of {url} incomplete: 0 failed, 2 refused, 0 rejected"
        " (what arrived is recorded; run it again to retry the rest)"
    ]


def test_a_real_process(upstream: tuple[str, Path], store: Path) -> None:
    url, _ = upstream
    script = Path(sys.executable).parent / "package-storage"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "package_storage.cli.main"]
    done = subprocess.run(
        [*cmd, "mirror", url, "--stage", "staging", "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "2 new, 0 already present" in done.stdout
