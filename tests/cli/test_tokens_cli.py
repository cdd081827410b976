"""``package-storage tokens create|list|revoke`` on a local store (the remote forms are in
``test_remote_cli.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from package_storage.cli.main import main
from package_storage.store.directory import Store


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_secret_once_and_list_never(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    assert run("init", "--store", store)[0] == 0
    code, out, err = run(
        "tokens", "create", "ci", "--scope", "publish:snapshot", "--scope", "read",
        "--expires", "30d", "--store", store,
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("created token ci (scopes: publish:snapshot, read, expires 20")
    secret = lines[1]
    assert secret.startswith("pst_") and "not shown again" in err
    with Store.open(store) as st:
        assert st.service("x").authenticate(secret).name == "ci"
    code, out, _ = run("tokens", "list", "--store", store)
    assert code == 0 and "ci" in out and "publish:snapshot, read" in out and "active" in out
    assert secret not in out
    code, out, _ = run("tokens", "list", "--json", "--store", store)
    listed = json.loads(out)
    assert [t["name"] for t in listed] == ["ci"] and listed[0]["state"] == "active"
    assert secret not in out and set(listed[0]) >= {"scopes", "expires", "revoked", "created"}


def test_create_json_gives_name_token_scopes_expires(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    run("init", "--store", store)
    code, out, _ = run("tokens", "create", "bot", "--scope", "admin", "--json", "--store", store)
    assert code == 0
    made = json.loads(out)
    assert list(made) == ["name", "token", "scopes", "expires"]
    assert made["name"] == "bot" and made["scopes"] == ["admin"] and made["expires"] is None
    assert made["token"].startswith("pst_")


def test_revoke_then_list_shows_revoked(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    run("init", "--store", store)
    run("tokens", "create", "ci", "--scope", "read", "--store", store)
    assert run("tokens", "revoke", "ci", "--store", store)[:2] == (0, "revoked token ci\n")
    code, out, _ = run("tokens", "revoke", "ci", "--store", store)
    assert code == 0 and out.startswith("unchanged: token ci was already revoked")
    assert json.loads(run("tokens", "list", "--json", "--store", store)[1])[0]["state"] == (
        "revoked"
    )
    code, _, err = run("tokens", "revoke", "nobody", "--store", store)
    assert code == 1 and err == "error: there is no token nobody\n"


def test_bad_input_is_one_error_line_exit_1(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    run("init", "--store", store)
    for args, message in (
        (["--scope", "write"], "error: scope 'write' is not valid"),
        (["--scope", "read", "--expires", "forever"], "error: lifetime 'forever' is not valid"),
        (["--scope", "promote:prod"], "error: scope promote:prod: there is no stage"),
    ):
        code, _, err = run("tokens", "create", "ci", *args, "--store", store)
        assert code == 1 and err.startswith(message) and err.count("\n") == 1, err
    assert run("tokens", "list", "--store", store)[1] == "no tokens\n"
    code, _, err = run("tokens", "create", "ci", "--store", store)
    assert code == 2 and "--scope" in err


def test_a_missing_store_is_refused(tmp_path: Path) -> None:
    code, _, err = run("tokens", "list", "--store", str(tmp_path / "none"))
    assert code == 1 and "no package store at" in err
