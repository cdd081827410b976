"""``revisions`` says which event made each revision (the transaction's first event, its id and
title; ``(+N more)`` when it recorded several)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from package_storage.cli.main import main

HELLO = Path(__file__).resolve().parents[2] / "examples" / "packages" / "hello_nginx" / "1.0.0"


def test_revisions_name_the_event_that_made_them(tmp_path: Path) -> None:
    store = str(tmp_path / "s")

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--store", store])
        assert result.exit_code == 0, result.output
        return result.stdout

    run("init")
    folder = tmp_path / "p" / "hello_nginx" / "1.0.0"
    shutil.copytree(HELLO, folder)
    run("publish", str(folder))
    run("promote", "hello_nginx", "1.0.0", "--to", "staging")
    revs = json.loads(run("revisions", "snapshot", "--json"))
    assert [(r["revision"], r["event"], r["event_title"]) for r in revs] == [
        (1, 1, "[snapshot] Publish hello_nginx-1.0.0"),
        (2, 2, "[staging] Promote hello_nginx-1.0.0 from snapshot"),
    ]
    staging = json.loads(run("revisions", "staging", "--json"))
    assert [r["event"] for r in staging] == [2]
    table = run("revisions", "snapshot")
    assert "made by" in table and "#2 [staging] Promote hello_nginx-1.0.0 from snapshot" in table
