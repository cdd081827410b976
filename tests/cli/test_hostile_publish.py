"""The hostile-package corpus through the real ``package-storage publish`` process.

The cases where a process matters (memory and blocking: 1 GiB bombs, lying sizes, zip64 sizes,
110k entries, a 1.2 GiB file, FIFOs, 900 levels of YAML, alias bombs, overlapping entries) and
one case per family (the first of the corpus for each zip and folder family);
``tests/packages/test_safety.py`` publishes every case of the corpus in-process with the same
rule and store checks. A process costs one to two seconds on these machines, so the whole
corpus here would add minutes to the suite without testing more of the CLI.

Each case: exit status 1, exactly one stderr line ``error: <input>: ... [<rule>]``, no
traceback, the process finishes (subprocess timeout, not a timing assertion) with its address
space capped at 512 MiB (``RLIMIT_AS``: expanding a 1 GiB bomb, or reading a 1.2 GiB file,
would fail with a MemoryError traceback), and the store (catalog and blobs) unchanged, with
``fsck`` clean.
"""

from __future__ import annotations

import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path

import hostile_corpus as corpus
import pytest
from test_service import state

from package_storage.store.directory import Store
from process_helpers import clean_env, command

HEADLINERS = {
    "zip-bomb-1g-docs",
    "zip-bomb-1g-manifest",
    "zip-bomb-lying-size",
    "zip-bomb-lying-manifest",
    "zip-overlap-41",
    "zip-zip64-2p62",
    "zip-entries-110k",
    "folder-file-1.2g",
    "folder-manifest-1g",
    "folder-fifo-manifest",
    "folder-fifo-deep",
    "folder-bad-utf8-name",
    "folder-yaml-deep-manifest",
    "zip-yaml-alias-manifest",
    "folder-other-name",
    "zip-name-version-file",
}


def _cli_cases() -> list[corpus.Case]:
    chosen: dict[str, corpus.Case] = {}
    for case in corpus.cases():
        chosen.setdefault(f"{case.kind}-{case.family}", case)
    ids = {c.id for c in chosen.values()} | HEADLINERS
    return [c for c in corpus.cases() if c.id in ids]


CASES = _cli_cases()
MEMORY_CAP = 512 * 1024 * 1024
TIMEOUT = 120  # seconds: a hang fails the test instead of blocking the suite


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        timeout=TIMEOUT,
        preexec_fn=_cap_memory,
        check=False,
    )


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store holding one good package (published through the CLI under the same cap)."""
    root = tmp_path_factory.mktemp("cli-store")
    store = root / "store"
    assert run_cli("init", "--store", str(store)).returncode == 0
    good = corpus.good_folder(root / "good")
    done = run_cli("publish", str(good), "--store", str(store))
    assert done.returncode == 0, done.stderr
    yield store
    fsck = run_cli("fsck", "--store", str(store))
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def _state(store_dir: Path) -> tuple[object, ...]:
    with Store.open(store_dir) as store:
        return state(store)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_publish_refuses(case: corpus.Case, tmp_path: Path, store_dir: Path) -> None:
    path = case.build(tmp_path / "in")
    before = _state(store_dir)
    done = run_cli("publish", str(path), "--store", str(store_dir), env=case.env)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {path}") and lines[0].endswith(f"[{case.rule}]")
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert _state(store_dir) == before


def test_cli_limit_option_changes_a_limit(tmp_path: Path, store_dir: Path) -> None:
    """``--limit`` is the command-line spelling of ``PACKAGE_STORAGE_MAX_*``."""
    good = corpus.good_folder(tmp_path)
    before = _state(store_dir)
    done = run_cli("--limit", "entries=5", "publish", str(good), "--store", str(store_dir))
    assert done.returncode == 1 and done.stderr.strip().endswith("[limit-entries]")
    assert _state(store_dir) == before
    bad = run_cli("--limit", "entries=none", "publish", str(good), "--store", str(store_dir))
    assert bad.returncode == 2 and "--limit" in bad.stderr


@pytest.mark.parametrize("validation", ["on", "off"])
def test_serve_config_with_hostile_packages(tmp_path: Path, validation: str) -> None:
    """``serve --config -dry-run`` over good packages and hostile ones (a FIFO manifest, 900
    levels of YAML, a 1 GiB zip bomb): with validation startup is refused naming each with its
    path and rule; without, they are skipped with a warning and the good ones load. Never a
    hang (timeout), a crash or a traceback."""
    good = tmp_path / "good"
    corpus.good_folder(good)
    hostile = {
        "folder-fifo-manifest": "special-file",
        "folder-yaml-deep-manifest": "limit-yaml-depth",
        "zip-bomb-1g-docs": "limit-file-size",
    }
    paths = [good]
    for case_id in hostile:
        where = tmp_path / case_id
        corpus.cases_by_id(case_id).build(where)
        paths.append(where)
    cfg = tmp_path / "config.yml"
    cfg.write_text("package_paths:\n" + "".join(f"  - {p}\n" for p in paths))
    env = {"EPR_REQUIRE_PACKAGE_SIGNATURES": "false"}
    if validation == "off":
        env["EPR_DISABLE_PACKAGE_VALIDATION"] = "true"
    done = run_cli("serve", "--config", str(cfg), "-dry-run", env=env)
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    if validation == "on":
        assert done.returncode == 1, output
        for case_id, rule in hostile.items():
            assert str(tmp_path / case_id) in output and f"[{rule}]" in output, case_id
    else:
        assert done.returncode == 0, output
        assert output.count("skipping unsafe package") == 3
        assert "dry run: 1 packages loaded (0 zip, 1 folder) from 4 package paths" in output
