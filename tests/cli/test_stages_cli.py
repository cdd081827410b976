"""``init --stages FILE`` and ``package-storage stages list|show|add|freeze|unfreeze``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from package_storage.cli.main import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_STAGES = REPO / "examples" / "stages.yml"
HELLO = REPO / "examples" / "packages" / "hello_nginx" / "1.0.0"


def run(args: Sequence[str], store: Path) -> Result:
    env = {"PACKAGE_STORAGE_ACTOR": "tester"}
    return CliRunner().invoke(main, [*args, "--store", str(store)], env=env)


def ok(args: Sequence[str], store: Path) -> str:
    result = run(args, store)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def refused(args: Sequence[str], store: Path) -> str:
    result = run(args, store)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def stages_json(store: Path) -> list[dict[str, Any]]:
    return list(json.loads(ok(["stages", "list", "--json"], store)))


def test_defaults_stay_elastics_three(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ok(["init"], store)
    assert stages_json(store) == [
        {
            "name": "snapshot",
            "rank": 0,
            "sees": ["staging", "production"],
            "promotes_to": "staging",
            "overwrite": "yes",
            "remove": "yes",
            "publish": True,
            "frozen": False,
        },
        {
            "name": "staging",
            "rank": 1,
            "sees": ["production"],
            "promotes_to": "production",
            "overwrite": "force",
            "remove": "force",
            "publish": False,
            "frozen": False,
        },
        {
            "name": "production",
            "rank": 2,
            "sees": [],
            "promotes_to": None,
            "overwrite": "never",
            "remove": "never",
            "publish": False,
            "frozen": False,
        },
    ]
    table = ok(["stages", "list"], store)
    assert "snapshot" in table and "promotes to" in table


def test_init_with_a_stages_file(tmp_path: Path) -> None:
    store = tmp_path / "s"
    out = ok(["init", "--stages", str(EXAMPLE_STAGES)], store)
    assert out.startswith(f"created store at {store}")
    by_name = {s["name"]: s for s in stages_json(store)}
    assert set(by_name) == {"snapshot", "staging", "production", "production-7.9", "experimental"}
    assert by_name["production-7.9"]["frozen"] and not by_name["production-7.9"]["publish"]
    assert by_name["production"]["rank"] > by_name["staging"]["rank"] > 0
    shown = json.loads(ok(["stages", "show", "production-7.9", "--json"], store))
    assert shown["versions"] == 0 and shown["seen_by"] == []
    assert shown["events"][0]["action"] == "stages_configure"
    assert "initial stage configuration from" in shown["events"][0]["reason"]
    # the same file again is a no-op; a store in use keeps its stages
    ok(["init", "--stages", str(EXAMPLE_STAGES)], store)
    ok(["publish", str(HELLO)], store)
    other = tmp_path / "other.yml"
    other.write_text("stages:\n  - name: only\n")
    line = refused(["init", "--stages", str(other)], store)
    assert "cannot be replaced" in line and "stages add" in line
    # frozen stages refuse publishes; they are served (the test of serving is elsewhere)
    line = refused(["publish", str(HELLO), "--stage", "experimental"], store)
    assert "stage experimental is frozen" in line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stages:\n  - name: search\n", "reserved"),
        ("stages:\n  - name: package\n", "reserved"),
        ("stages:\n  - name: a@b\n", "not valid"),
        ("stages:\n  - name: a\n    overwrite: sometimes\n", "overwrite='sometimes'"),
        ("stages:\n  - name: a\n    sees: [b]\n", "sees unknown stage b"),
        ("stages:\n  - name: a\n    promotes_to: b\n  - name: b\n    promotes_to: a\n", "cycle"),
        ("stages:\n  - name: a\n    frozen: true\n    publish: true\n", "frozen and publish"),
        ("stages: []\n", "expected `stages:`"),
        ("other: 1\n", "unknown key"),
    ],
)
def test_bad_stage_files_are_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "stages.yml"
    path.write_text(text)
    line = refused(["init", "--stages", str(path)], tmp_path / "s")
    assert message in line and str(path) in line
    assert not (tmp_path / "s" / "catalog.db").exists()  # nothing is created


def test_add_freeze_and_unfreeze_with_reasons(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ok(["init"], store)
    out = ok(
        [
            "stages",
            "add",
            "qa",
            "--sees",
            "production",
            "--overwrite",
            "yes",
            "--remove",
            "yes",
            "--publish",
            "--rank",
            "-1",
            "--reason",
            "QA team",
        ],
        store,
    )
    assert out.strip() == "added stage qa"
    added = json.loads(
        ok(["stages", "add", "qa2", "--reason", "second", "--rank", "-2", "--json"], store)
    )
    assert added["stage"]["name"] == "qa2" and added["event"]["reason"] == "second"
    assert {s["name"]: s["publish"] for s in stages_json(store)}["qa"] is True
    ok(["publish", str(HELLO), "--stage", "qa"], store)
    assert "stage qa exists already" in refused(["stages", "add", "qa", "--reason", "again"], store)
    assert "reserved" in refused(["stages", "add", "epr", "--reason", "x"], store)
    assert "needs a reason" in refused(["stages", "freeze", "qa", "--reason", " "], store)
    assert ok(["stages", "freeze", "qa", "--reason", "QA ended"], store).startswith(
        "stage qa is now frozen"
    )
    assert ok(["stages", "freeze", "qa", "--reason", "again"], store).startswith("unchanged:")
    # every later change is refused
    for args in (
        ["publish", str(HELLO), "--stage", "qa"],
        ["remove", "hello_nginx", "1.0.0", "--stage", "qa"],
        ["tag", "qa", "final"],
        ["rollback", "qa", "1"],
    ):
        assert "stage qa is frozen" in refused(args, store), args
    # production cannot be frozen while staging promotes to it
    assert "promotes to production, which is frozen" in refused(
        ["stages", "freeze", "production", "--reason", "x"], store
    )
    thawed = json.loads(ok(["stages", "unfreeze", "qa", "--reason", "QA again", "--json"], store))
    assert thawed["changed"] and thawed["event"]["action"] == "stage_unfreeze"
    ok(["remove", "hello_nginx", "1.0.0", "--stage", "qa"], store)
    shown = json.loads(ok(["stages", "show", "qa", "--json"], store))
    assert [(e["action"], e["reason"]) for e in shown["events"]] == [
        ("stage_add", "QA team"),
        ("stage_freeze", "QA ended"),
        ("stage_unfreeze", "QA again"),
    ]
    assert [e["title"] for e in shown["events"]][1] == "[qa] Freeze stage qa"
    human = ok(["stages", "show", "qa"], store)
    assert "Freeze stage qa (QA ended)" in human
    history = json.loads(ok(["history", "--stage", "qa", "--json"], store))
    assert {"stage_add", "stage_freeze", "stage_unfreeze"} <= {e["action"] for e in history}
