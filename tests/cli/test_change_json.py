"""``--json`` on the commands that change something (init, publish, promote, remove, tag):
full sha256 digests, the event recorded and the revisions made."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from package_storage.cli.main import main

HELLO = Path(__file__).resolve().parents[2] / "examples" / "packages" / "hello_nginx" / "1.1.0"
DIGEST = re.compile(r"[0-9a-f]{64}")


def js(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_change_commands_answer_json(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    made = js("init", "--json", "--store", store)
    assert made["created"] is True and set(made["stages"]) == {"snapshot", "staging", "production"}
    assert js("init", "--json", "--store", store)["created"] is False
    folder = tmp_path / "p" / "hello_nginx" / "1.1.0"
    shutil.copytree(HELLO, folder)
    published = js("publish", str(folder), "--json", "--store", store)
    assert len(published) == 1 and published[0]["path"] == str(folder)
    first = published[0]
    assert first["changed"] is True and first["event"]["action"] == "publish"
    assert DIGEST.fullmatch(first["event"]["detail"]["digest"])
    assert first["revisions"] == [
        {"distribution": "snapshot", "revision": 1, "digest": first["revisions"][0]["digest"]}
    ]
    again = js("publish", str(folder), "--json", "--store", store)
    assert again[0]["changed"] is False and again[0]["event"] is None
    promoted = js("promote", "hello_nginx", "1.1.0", "--to", "staging", "--json", "--store", store)
    assert promoted["changed"] and promoted["event"]["detail"]["from"] == "snapshot"
    assert [r["distribution"] for r in promoted["revisions"]] == ["staging", "snapshot"]
    rerun = js("promote", "hello_nginx", "1.1.0", "--to", "staging", "--json", "--store", store)
    assert rerun["changed"] is False and "nothing to do" in rerun["message"]
    tagged = js("tag", "staging", "t1", "--json", "--store", store)
    assert tagged["tag"] == "t1" and tagged["revision"] == 1 and DIGEST.fullmatch(tagged["digest"])
    removed = js(
        "remove", "hello_nginx", "1.1.0", "--stage", "staging", "--force", "--reason", "bad",
        "--json", "--store", store,
    )  # fmt: skip
    assert removed["changed"] and removed["event"]["reason"] == "bad"


def test_publish_json_stops_at_the_first_refusal_with_what_was_done(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    js("init", "--json", "--store", store)
    folder = tmp_path / "p" / "hello_nginx" / "1.1.0"
    shutil.copytree(HELLO, folder)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 nope")
    result = CliRunner().invoke(
        main, ["publish", str(folder), str(broken), "--json", "--store", store]
    )
    assert result.exit_code == 1
    assert [r["path"] for r in json.loads(result.stdout)] == [str(folder)]
    assert result.stderr.startswith("error: ")
