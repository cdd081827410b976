"""``diff A B`` where A and B are any two of: a stage, ``DIST@N``, ``DIST@TAG``,
``DIST@current`` (what changed since a release)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from package_storage.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "packages" / "hello_nginx"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def js(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_diff_since_a_release(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    assert run("init", "--store", store).exit_code == 0
    for version in ("1.0.0", "1.1.0"):
        folder = tmp_path / "p" / "hello_nginx" / version
        shutil.copytree(EXAMPLES / version, folder)
        assert run("publish", str(folder), "--store", store).exit_code == 0
    for target in ("staging", "production"):
        assert (
            run("promote", "hello_nginx", "1.0.0", "--to", target, "--store", store).exit_code == 0
        )
    assert run("tag", "production", "8.12.0", "--store", store).exit_code == 0
    for target in ("staging", "production"):
        assert (
            run("promote", "hello_nginx", "1.1.0", "--to", target, "--store", store).exit_code == 0
        )

    since = js("diff", "production@8.12.0", "production@current", "--store", store)
    assert since["stage_a"] == "production@8.12.0" and since["stage_b"] == "production@current"
    assert [(e["version"], e["stage"]) for e in since["only_b"]] == [("1.1.0", "production")]
    assert "added_at" not in since["only_b"][0]  # a revision entry: what was served
    assert since["only_a"] == [] and since["different"] == []
    same = run("diff", "production@current", "production", "--store", store)
    assert same.exit_code == 0
    assert "hold the same versions with the same artifacts" in same.stdout
    by_number = js("diff", "production@1", "snapshot@current", "--store", store)
    assert by_number["only_a"] == []  # snapshot sees every stage
    assert [e["version"] for e in by_number["only_b"]] == ["1.1.0"]
    text = run("diff", "production@8.12.0", "production@current", "--store", store).stdout
    assert "only in production@current" in text and "1.1.0" in text


def test_diff_refusals(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    run("init", "--store", store)
    for args, message in (
        (("nowhere", "production"), "stage nowhere does not exist"),
        (("production@", "staging"), "say which revision after '@'"),
        (("production@nosuchtag", "staging"), "nosuchtag"),
        (("production@current", "staging"), ""),
    ):
        result = run("diff", *args, "--store", store)
        assert result.exit_code == 1 and result.stderr.startswith("error: "), args
        assert message in result.stderr, (args, result.stderr)
