from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from package_storage.cli.serve import normalize_go_flags
from process_helpers import clean_env, command, free_port

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "epr"
SETUP_A = [FIXTURES / "local-storage", FIXTURES / "second_package_path", FIXTURES / "package"]


def _config(tmp_path: Path, paths: list[Path], extra: str = "") -> Path:
    cfg = tmp_path / "config.yml"
    lines = ["package_paths:"] + [f"  - {p.resolve()}" for p in paths]
    lines += [f"cache_time.{k}: 1s" for k in ("index", "search", "categories", "catch_all")]
    cfg.write_text("\n".join(lines) + "\n" + extra)
    return cfg


def run_cli(
    args: list[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    *,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *args],
        env=clean_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_serve(
    args: list[str], cwd: Path, *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``serve`` with development log lines (as a user reads them), ``args`` after it."""
    return run_cli(["serve", "-log-type", "dev", *args], cwd=cwd, timeout=timeout)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --- argv normalisation (pure) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-address", "x:1"], ["--address=x:1"]),
        (["-address=x:1"], ["--address=x:1"]),
        (["--address=x:1"], ["--address=x:1"]),
        (["--address", "x:1"], ["--address=x:1"]),
        (["-config", "-weird.yml"], ["--config=-weird.yml"]),
        (["-dry-run"], ["--dry-run=true"]),
        (["--dry-run"], ["--dry-run=true"]),
        (["-dry-run=false"], ["--dry-run=false"]),
        (["-dry-run", "false"], ["--dry-run=true", "false"]),
        (["-h"], ["--help"]),
        (["-help"], ["--help"]),
        (["-nope"], ["--nope"]),
        (["-address"], ["--address"]),
        (["--", "-dry-run"], ["--", "-dry-run"]),
    ],
)
def test_normalize_go_flags(argv: list[str], expected: list[str]) -> None:
    assert normalize_go_flags(argv) == expected


# --- a real server -----------------------------------------------------------------------------


class Server:
    def __init__(self, proc: subprocess.Popen[str], port: int, metrics_port: int) -> None:
        self.proc = proc
        self.base = f"http://127.0.0.1:{port}"
        self.metrics = f"http://127.0.0.1:{metrics_port}"


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            _out, err = server.proc.communicate()
            pytest.fail(f"server exited with {server.proc.returncode}: {err}")
        try:
            if httpx.get(server.base + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("server did not become ready within 60 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve")
    cfg = _config(tmp, SETUP_A)
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            *command(),
            "serve",
            "-config",
            str(cfg),
            "-address",
            f"127.0.0.1:{port}",
            f"-metrics-address=127.0.0.1:{metrics_port}",
            "-log-type=ecs",
        ],
        env=clean_env({"EPR_REQUIRE_PACKAGE_SIGNATURES": "false"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    srv = Server(proc, port, metrics_port)
    try:
        _wait_ready(srv)
        yield srv
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_serves_requests(server: Server) -> None:
    r = httpx.get(server.base + "/search?package=example")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    versions = [e["version"] for e in r.json()]
    assert versions == ["1.1.0"]
    r = httpx.get(server.base + "/package/example/1.0.1/")
    assert r.status_code == 200
    # zip beats folder: the zip package carries its signature path
    assert "signature_path" in r.json()
    r = httpx.get(server.base + "/metrics")
    assert r.status_code == 404


def test_metrics_listener(server: Server) -> None:
    httpx.get(server.base + "/index.json")
    r = httpx.get(server.metrics + "/metrics")
    assert r.status_code == 200
    assert "epr_service_info" in r.text
    assert "epr_number_indexed_packages 46.0" in r.text


def test_sigterm_stops_gracefully(server: Server) -> None:
    # runs last in this module (pytest keeps file order): stops the shared server
    httpx.get(server.base + "/search?all=true")
    httpx.get(server.base + "/health")
    # the access log is buffered: the lines of the requests just before SIGTERM must be written
    for k in range(20):
        httpx.get(server.base + f"/search?package=last{k}")
    server.proc.send_signal(signal.SIGTERM)
    _out, err = server.proc.communicate(timeout=60)
    assert server.proc.returncode == 0, err
    records = [json.loads(line) for line in _lines(err)]
    messages = [r["message"] for r in records]
    assert "46 local package manifests loaded." in messages
    assert "Package registry started" in messages
    assert messages[-1] == "Package registry stopped"
    assert all(r["ecs.version"] and r["@timestamp"] and r["log.level"] for r in records)
    requests = [r for r in records if r.get("log.logger") == "http"]
    assert any(r["url.path"] == "/search" and r["url.query"] == "all=true" for r in requests)
    assert all(r["http.response.code"] == 200 for r in requests if r["url.path"] == "/search")
    assert not any(r["url.path"] == "/health" for r in requests)
    assert [r.get("url.query") for r in requests[-20:]] == [f"package=last{k}" for k in range(20)]
    # the listener opened before the packages were loaded
    assert messages.index(
        "Listening on " + server.base.removeprefix("http://") + "; /health answers 503 until loaded"
    ) < messages.index("Package registry started")


# --- dry run -----------------------------------------------------------------------------------


def test_dry_run_ok(tmp_path: Path) -> None:
    cfg = _config(tmp_path, SETUP_A)
    result = run_cli(
        ["serve", "--config", str(cfg), "-dry-run"],
        env={"EPR_REQUIRE_PACKAGE_SIGNATURES": "false"},
    )
    assert result.returncode == 0, result.stderr
    assert "46 packages loaded (2 zip, 44 folder)" in result.stdout


def test_read_packages_are_cached_beside_the_config_or_in_the_cache_dir(tmp_path: Path) -> None:
    """A restart reads unchanged packages from the cache (``.package-storage-cache`` beside
    the config by default, ``-cache-dir DIR``, ``-cache-dir off``: none)."""
    cfg = _config(tmp_path, SETUP_A)
    env = {"EPR_REQUIRE_PACKAGE_SIGNATURES": "false"}
    for _ in range(2):
        result = run_cli(["serve", "--config", str(cfg), "-dry-run"], env=env)
        assert result.returncode == 0, result.stderr
        assert "46 packages loaded (2 zip, 44 folder)" in result.stdout
    beside = cfg.parent / ".package-storage-cache" / "packages"
    assert len(list(beside.rglob("*.json"))) >= 46  # every package read (duplicates too)
    own = tmp_path / "own-cache"
    result = run_cli(["serve", "--config", str(cfg), "-dry-run", "--cache-dir", str(own)], env=env)
    assert result.returncode == 0, result.stderr
    assert len(list((own / "packages").rglob("*.json"))) >= 46
    shutil.rmtree(beside.parent)
    result = run_cli(
        ["serve", "--config", str(cfg), "-dry-run"],
        env={**env, "PACKAGE_STORAGE_CACHE_DIR": "off"},
    )
    assert result.returncode == 0, result.stderr
    assert not beside.exists()


def test_config_flag_beats_the_store_in_the_environment(tmp_path: Path) -> None:
    """Explicit beats implicit: ``--config`` with PACKAGE_STORAGE_STORE exported serves the
    config file; ``--store`` and ``--config`` both on the command line are refused in one line."""
    cfg = _config(tmp_path, SETUP_A)
    store = tmp_path / "store"
    assert run_cli(["init", "--store", str(store)]).returncode == 0
    env = {"EPR_REQUIRE_PACKAGE_SIGNATURES": "false", "PACKAGE_STORAGE_STORE": str(store)}
    result = run_cli(["serve", "--config", str(cfg), "-dry-run", "-log-type", "dev"], env=env)
    assert result.returncode == 0, result.stderr
    assert "46 packages loaded (2 zip, 44 folder)" in result.stdout
    assert "PACKAGE_STORAGE_STORE" in result.stdout + result.stderr  # says what it ignored
    both = run_cli(["serve", "--store", str(store), "--config", str(cfg), "-dry-run"], env=env)
    assert both.returncode == 2
    assert both.stderr.strip().count("\n") == 0
    assert both.stderr.startswith("error: --store and --config both given")
    # the store from the environment alone is served, and named
    alone = run_cli(["serve", "-dry-run", "-log-type", "dev"], env=env, cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    assert "dry run: store" in alone.stdout
    assert f"serving store {store} (from PACKAGE_STORAGE_STORE)" in alone.stdout + alone.stderr


def test_dry_run_signatures_required_by_default(tmp_path: Path) -> None:
    cfg = _config(tmp_path, SETUP_A)
    result = run_cli(["serve", "-config", str(cfg), "-dry-run", "-log-type", "dev"])
    assert result.returncode == 1
    assert "package nodirentries-1.0.0 is missing a required signature file" in result.stderr
    assert "--require-package-signatures=false" in result.stderr


def test_dry_run_broken_package(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "p"
    shutil.copytree(FIXTURES / "package" / "foo" / "1.0.0", root / "foo" / "1.0.0")
    (root / "foo" / "1.0.0" / "docs" / "README.md").unlink()
    cfg = _config(tmp_path, [root])
    result = run_cli(
        ["serve", f"--config={cfg}", "--dry-run"], env={"EPR_REQUIRE_PACKAGE_SIGNATURES": "0"}
    )
    assert result.returncode == 1
    record = json.loads(_lines(result.stderr)[-1])
    assert record["log.level"] == "fatal"
    assert str(root / "foo" / "1.0.0") in record["message"]


def test_broken_package_ends_the_server_with_the_fatal_line(tmp_path: Path) -> None:
    # the listener is open while loading; a failed load stops it and exits 1
    import shutil

    root = tmp_path / "p"
    shutil.copytree(FIXTURES / "package" / "foo" / "1.0.0", root / "foo" / "1.0.0")
    (root / "foo" / "1.0.0" / "docs" / "README.md").unlink()
    cfg = _config(tmp_path, [root])
    result = run_cli(
        ["serve", f"--config={cfg}", f"--address=127.0.0.1:{free_port()}"],
        env={"EPR_REQUIRE_PACKAGE_SIGNATURES": "0"},
    )
    assert result.returncode == 1
    records = [json.loads(line) for line in _lines(result.stderr)]
    fatal = [r for r in records if r["log.level"] == "fatal"]
    assert len(fatal) == 1 and str(root / "foo" / "1.0.0") in fatal[0]["message"]
    assert "Package registry started" not in [r["message"] for r in records]


def test_dry_run_false_is_not_a_dry_run(tmp_path: Path) -> None:
    # -dry-run=false with a port that cannot be bound: proves the server path was taken
    cfg = _config(tmp_path, SETUP_A)
    result = run_cli(
        ["serve", "-config", str(cfg), "-dry-run=false", "-address", "127.0.0.1:99999"],
        env={"EPR_REQUIRE_PACKAGE_SIGNATURES": "false"},
    )
    assert result.returncode == 1
    assert "127.0.0.1:99999" in _lines(result.stderr)[-1]


# --- startup errors: one line, exit 1; usage errors: exit 2 ------------------------------------


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli(["serve", "-config", "nope.yml"], cwd=tmp_path)
    assert result.returncode == 1
    lines = _lines(result.stderr)
    assert len(lines) == 1
    assert json.loads(lines[0])["message"] == "Configuration file is not available: nope.yml"


def test_default_config_path_is_relative_to_cwd(tmp_path: Path) -> None:
    _config(tmp_path, SETUP_A)
    result = run_cli(
        ["serve", "-dry-run"], env={"EPR_REQUIRE_PACKAGE_SIGNATURES": "false"}, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


def test_zero_cache_time(tmp_path: Path) -> None:
    cfg = _config(tmp_path, SETUP_A, "cache_time.index: 0s\n")
    result = run_cli(["serve", "-config", str(cfg), "-log-type=dev"])
    assert result.returncode == 1
    lines = _lines(result.stderr)
    assert len(lines) == 1
    assert lines[0].endswith("cache time must be greater than 0s")


def test_no_packages(tmp_path: Path) -> None:
    cfg = _config(tmp_path, [tmp_path / "empty"])
    result = run_cli(["serve", "-config", str(cfg)])
    assert result.returncode == 1
    assert json.loads(_lines(result.stderr)[-1])["message"] == "No local packages found."


def test_watcher_without_paths(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("cache_time.index: 1s\n")
    result = run_cli(["serve", "-config", str(cfg), "-package-paths-enable-watcher"])
    assert result.returncode == 1
    assert (
        json.loads(_lines(result.stderr)[-1])["message"]
        == "no package paths configured, cannot enable watcher"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EPR_DRY_RUN": "maybe"}, "failed to set -dry-run: parse error"),
        ({"EPR_PACKAGE_PATHS_WORKERS": "0"}, "package-paths-workers must be greater than 0"),
        (
            {"EPR_TLS_MIN_VERSION": "1.0"},
            "failed to set -tls-min-version: unsupported TLS version: 1.0",
        ),
        (
            {"EPR_TLS_MIN_VERSION": "1.2"},
            "-tls-min-version set but missing TLS cert and key files (-tls-cert and -tls-key)",
        ),
        ({"EPR_LOG_TYPE": "json"}, 'Failed to initialize logging: invalid logger type "json"'),
    ],
)
def test_flag_errors_from_env(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = run_cli(["serve"], env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert _lines(result.stderr) == [message]


@pytest.mark.parametrize(
    "args",
    [["-dry-run=maybe"], ["-nope"], ["-package-paths-workers", "two"], ["-address"]],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = run_cli(["serve", *args], cwd=tmp_path)
    assert result.returncode == 2, result.stderr


def test_version_flag() -> None:
    result = run_cli(["serve", "-version"])
    assert result.returncode == 0
    assert result.stdout == "Elastic Package Registry version 1.40.1\n"
    result = run_cli(["serve"], env={"EPR_VERSION": "true"})
    assert result.stdout == "Elastic Package Registry version 1.40.1\n"


def test_group_version() -> None:
    result = run_cli(["--version"])
    assert result.returncode == 0
    assert "package-storage" in result.stdout


def test_watcher_swaps_the_index(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "packages"
    root.mkdir()
    cfg = _config(tmp_path, [root])
    port = free_port()
    proc = subprocess.Popen(
        [
            *command(),
            "serve",
            "-config",
            str(cfg),
            "-address",
            f"127.0.0.1:{port}",
            "-package-paths-enable-watcher",
            "-require-package-signatures=false",
        ],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    srv = Server(proc, port, 0)
    try:
        _wait_ready(srv)  # no packages yet: allowed with the watcher
        assert httpx.get(srv.base + "/search").content == b"[]"
        shutil.copytree(FIXTURES / "package" / "foo" / "1.0.0", root / "foo" / "1.0.0")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if httpx.get(srv.base + "/search").json():
                break
            time.sleep(0.2)
        assert [e["name"] for e in httpx.get(srv.base + "/search").json()] == ["foo"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_progress_lines(caplog: pytest.LogCaptureFixture) -> None:
    from package_storage.cli.serve import _progress

    logger_name = "package_storage"
    root = logging.getLogger(logger_name)
    root.propagate = True
    try:
        with caplog.at_level("INFO", logger=logger_name), _progress("Loading things", every=0.01):
            for _ in range(500):  # bounded: at most ~5 s
                if any("still loading" in r.getMessage() for r in caplog.records):
                    break
                threading.Event().wait(0.01)
    finally:
        root.propagate = False
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "Loading things"
    assert any(m.startswith("Loading things: still loading (") for m in messages)
    assert messages[-1].startswith("Loading things: done in ")
