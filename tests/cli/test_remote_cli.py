"""The store commands against a remote store: ``--store http://127.0.0.1:PORT`` of a real
``package-storage serve --manage-address`` on loopback, token from ``PACKAGE_STORAGE_TOKEN``
or ``--token``. The same command on the directory and on the URL prints the same lines, the
same ``--json`` and exits with the same status."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from live_manage import LiveServer, start_server
from package_storage.cli.main import main
from package_storage.store.directory import Store

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "packages" / "hello_nginx" / "1.1.0"

pytestmark = pytest.mark.slow


def version_of(dest: Path, version: str) -> Path:
    """A copy of hello_nginx 1.1.0 as ``dest/hello_nginx/<version>``."""
    target = dest / "hello_nginx" / version
    shutil.copytree(HELLO, target)
    manifest = target / "manifest.yml"
    manifest.write_text(re.sub(r"(?m)^version: .*$", f"version: {version}", manifest.read_text()))
    (target / "changelog.yml").write_text(
        f'- version: "{version}"\n  changes:\n    - description: Release {version}.\n'
        f"      type: enhancement\n      link: https://example.com/{version}\n"
    )
    return target


def cli(*args: str, token: str | None = None) -> Result:
    env = {"PACKAGE_STORAGE_TOKEN": token} if token else {}
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[LiveServer, Path, str]]:
    root = tmp_path / "store"
    with Store.init(root) as store:
        _, secret = store.service("root").create_token("release-bot", ["admin"])
    with start_server(root, tmp_path / "server.log") as live:
        yield live, root, secret


def same_locally_and_remotely(root: Path, url: str, token: str, *args: str) -> Result:
    """Run a command on the directory and on the URL: same stdout, stderr and exit code."""
    local = cli(*args, "--store", str(root))
    remote = cli(*args, "--store", url, token=token)
    assert (remote.exit_code, remote.stdout, remote.stderr) == (
        local.exit_code,
        local.stdout.replace(str(root), url),
        local.stderr.replace(str(root), url),
    ), args
    return remote


def test_stage_workflow_through_the_remote_cli(
    server: tuple[LiveServer, Path, str], tmp_path: Path
) -> None:
    live, root, token = server
    url = live.manage_url
    folder = version_of(tmp_path / "pkgs", "2.0.0")

    r = cli("publish", str(folder), "--store", url, token=token)
    assert r.exit_code == 0, r.output
    assert re.fullmatch(
        r"published hello_nginx 2\.0\.0 to snapshot \(sha256 [0-9a-f]{12}…\)\n", r.stdout
    )
    again = cli("publish", str(folder), "--store", url, token=token)
    assert again.exit_code == 0 and again.stdout.startswith(
        "unchanged: hello_nginx 2.0.0 is already"
    )

    r = cli("promote", "hello_nginx", "2.0.0", "--to", "staging", "--store", url, token=token)
    assert r.exit_code == 0 and r.stdout.startswith(
        "promoted hello_nginx 2.0.0 from snapshot to staging (sha256 "
    ), r.output
    r = cli("promote", "hello_nginx", "2.0.0", "--to", "production", "--store", url, token=token)
    assert r.exit_code == 0 and "from staging to production" in r.stdout, r.output
    r = cli("tag", "production", "8.12.0", "--store", url, token=token)
    assert r.exit_code == 0 and r.stdout.startswith("tagged production@8.12.0 = revision 1")

    newer = version_of(tmp_path / "pkgs", "2.1.0")
    for step in (
        ("publish", str(newer)),
        ("promote", "hello_nginx", "2.1.0", "--to", "staging"),
        ("promote", "hello_nginx", "2.1.0", "--to", "production"),
    ):
        assert cli(*step, "--store", url, token=token).exit_code == 0, step
    for dry in (("--dry-run",), ("--dry-run", "--json")):
        same_locally_and_remotely(root, url, token, "rollback", "production", "8.12.0", *dry)
    r = cli(
        "rollback", "production", "8.12.0", "--reason", "bad release", "--store", url, token=token
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0].startswith("rolled production back to revision 1 (tag 8.12.0)")
    assert any(
        line.startswith("production now serves revision 1 (digest ")
        for line in r.stdout.splitlines()
    ), r.stdout

    with Store.open(root) as store:
        assert [e.version for e in store.catalog.entries("production")] == ["2.0.0"]
        rollback = [e for e in store.catalog.events() if e.action == "rollback"][-1]
        assert rollback.reason == "bad release" and rollback.actor == "release-bot"
        actors = {e.actor for e in store.catalog.events() if e.action != "token_create"}
        assert actors == {"release-bot"}

    # Every read command prints the same on the directory and on the URL.
    for args in (
        ("list",),
        ("list", "--json"),
        ("list", "--stage", "staging"),
        ("list", "--distribution", "production", "--revision", "8.12.0", "--json"),
        ("show", "hello_nginx"),
        ("show", "hello_nginx", "2.1.0", "--json"),
        ("diff", "staging", "production"),
        ("diff", "snapshot", "production", "--json"),
        ("diff", "production@8.12.0", "production@current"),
        ("diff", "staging", "production@1", "--json"),
        ("history",),
        ("history", "--json", "--stage", "production", "--limit", "3"),
        ("revisions", "production"),
        ("revisions", "staging", "--json"),
        ("tags",),
        ("tags", "--json", "--distribution", "production"),
        ("fsck",),
        ("fsck", "--json"),
        ("verify", "hello_nginx", "2.0.0"),
        ("tokens", "list"),
    ):
        same_locally_and_remotely(root, url, token, *args)


def test_refusals_are_the_same_remotely(
    server: tuple[LiveServer, Path, str], tmp_path: Path
) -> None:
    live, root, token = server
    url = live.manage_url
    folder = version_of(tmp_path / "pkgs", "3.0.0")
    assert cli("publish", str(folder), "--store", str(root)).exit_code == 0
    for args in (
        ("promote", "hello_nginx", "3.0.0", "--to", "production"),
        ("promote", "hello_nginx", "9.9.9", "--to", "staging"),
        ("remove", "hello_nginx", "3.0.0", "--stage", "production"),
        ("tag", "production", "8.12.0"),
        ("tag", "nowhere", "x"),
        ("rollback", "snapshot", "99"),
        ("show", "nothing"),
        ("list", "--stage", "nowhere"),
        ("diff", "snapshot", "nowhere"),
        ("revisions", "nowhere"),
        ("verify", "hello_nginx", "9.9.9"),
        ("tokens", "revoke", "nobody"),
        ("tokens", "create", "x", "--scope", "write"),
    ):
        r = same_locally_and_remotely(root, url, token, *args)
        assert r.exit_code == 1 and r.stderr.startswith("error: "), (args, r.output)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 nope")
    r = same_locally_and_remotely(root, url, token, "publish", str(broken))
    assert r.exit_code == 1 and r.stderr.rstrip().endswith("[zip-invalid]")


def test_tokens_with_admin_and_the_scopes_of_a_ci_token(
    server: tuple[LiveServer, Path, str], tmp_path: Path
) -> None:
    live, _root, token = server
    url = live.manage_url
    r = cli(
        "tokens",
        "create",
        "ci",
        "--scope",
        "publish:snapshot",
        "--json",
        "--store",
        url,
        token=token,
    )
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    assert list(made) == ["name", "token", "scopes", "expires"] and made["name"] == "ci"
    ci = made["token"]
    folder = version_of(tmp_path / "pkgs", "4.0.0")
    r = cli("publish", str(folder), "--store", url, "--token", ci)
    assert r.exit_code == 0 and r.stdout.startswith("published hello_nginx 4.0.0 to snapshot")
    r = cli("promote", "hello_nginx", "4.0.0", "--to", "staging", "--store", url, "--token", ci)
    assert r.exit_code == 1
    assert r.stderr == (
        "error: token ci lacks the scope promote:staging (it has: publish:snapshot)\n"
    )
    r = cli("tokens", "list", "--store", url, "--token", ci)
    assert r.exit_code == 1 and "lacks the scope admin" in r.stderr
    assert cli("tokens", "revoke", "ci", "--store", url, token=token).stdout == "revoked token ci\n"
    r = cli("list", "--store", url, "--token", ci)
    assert (r.exit_code, r.stderr) == (1, "error: token ci was revoked\n")


def test_init_missing_token_and_local_only_commands(
    server: tuple[LiveServer, Path, str], tmp_path: Path
) -> None:
    live, root, token = server
    url = live.manage_url
    r = same_locally_and_remotely(root, url, token, "init")
    assert r.exit_code == 0 and r.stdout.startswith(f"store exists at {url} (stages: ")
    r = cli("list", "--store", url)
    assert r.exit_code == 1
    assert (
        r.stderr
        == f"error: store {url} is remote: give a token (--token or PACKAGE_STORAGE_TOKEN)\n"
    )
    r = cli("list", "--store", url, "--token", "pst_0123456789abcdef_nope")
    assert (r.exit_code, r.stderr) == (1, "error: unknown token\n")
    r = cli("keys", "list", "--store", url, token=token)
    assert r.exit_code == 1 and "works on a store directory, not on a remote store" in r.stderr
    r = cli("fsck", "--repair", "--store", url, token=token)
    assert r.exit_code == 1 and "fsck --repair runs only on the store's own machine" in r.stderr
    r = cli("list", "--store", live.read_url, token=token)  # the read listener is not it
    assert r.exit_code == 1 and r.stderr.startswith("error: the store at ")
    r = cli("list", "--store", "http://127.0.0.1:1", token=token)
    assert r.exit_code == 1 and r.stderr.startswith("error: cannot reach the store at")


_VOLATILE = re.compile(r'"(\w*id|\w*time|actor|revision|created\w*)": ("[^"]*"|\d+)')


def same_change_locally_and_remotely(
    root: Path, url: str, token: str, change: Sequence[str], undo: Sequence[str]
) -> None:
    """A change and its undoing, first on the directory, then on the URL: the same lines (and
    the same ``--json`` but for ids, times, actors and revision numbers) and the same exit codes."""
    runs = []
    for store, tok in ((str(root), None), (url, token)):
        runs.append([cli(*args, "--store", store, token=tok) for args in (change, undo)])
    for local, remote in zip(*runs, strict=True):
        assert remote.exit_code == local.exit_code == 0, (change, local.output, remote.output)
        assert _VOLATILE.sub("", remote.stdout) == _VOLATILE.sub("", local.stdout), change


def test_yank_and_stage_changes_through_the_remote_cli(
    server: tuple[LiveServer, Path, str], tmp_path: Path
) -> None:
    live, root, token = server
    url = live.manage_url
    folder = version_of(tmp_path / "pkgs", "5.0.0")
    assert cli("publish", str(folder), "--store", str(root)).exit_code == 0
    for extra in ((), ("--json",)):
        same_change_locally_and_remotely(
            root,
            url,
            token,
            ("yank", "hello_nginx", "5.0.0", "--stage", "snapshot", "--reason", "bad", *extra),
            ("unyank", "hello_nginx", "5.0.0", "--stage", "snapshot", "--reason", "ok", *extra),
        )
        same_change_locally_and_remotely(
            root,
            url,
            token,
            ("stages", "freeze", "snapshot", "--reason", "release week", *extra),
            ("stages", "unfreeze", "snapshot", "--reason", "done", *extra),
        )
    r = cli("yank", "hello_nginx", "5.0.0", "--stage", "snapshot", "--reason", "x", "--store", url, token=token)  # fmt: skip
    assert r.exit_code == 0 and r.stdout.startswith("yanked hello_nginx 5.0.0 in snapshot")
    with Store.open(root) as store:
        entry = store.catalog.get_entry("snapshot", "hello_nginx", "5.0.0")
        assert entry is not None and entry.yanked
        assert store.catalog.events()[-1].actor == "release-bot"

    add = ("stages", "add", "--sees", "production", "--no-publish", "--reason", "qa")
    local = cli(*add[:2], "qa1", *add[2:], "--rank", "-1", "--store", str(root))
    remote = cli(*add[:2], "qa2", *add[2:], "--rank", "-2", "--json", "--store", url, token=token)
    assert (local.exit_code, local.stdout) == (0, "added stage qa1\n"), local.output
    assert remote.exit_code == 0, remote.output
    added = json.loads(remote.stdout)
    assert added["changed"] is True and added["message"] == "added stage qa2"
    assert added["stage"]["sees"] == ["production"] and added["stage"]["publish"] is False
    with Store.open(root) as store:
        assert {"qa1", "qa2"} <= set(store.catalog.stages().names)

    # Reads and refusals print the same on the directory and on the URL.
    for args in (
        ("stages", "list"),
        ("stages", "list", "--json"),
        ("stages", "show", "snapshot"),
        ("stages", "show", "qa2", "--json"),
        ("list", "--stage", "snapshot", "--json"),
    ):
        assert same_locally_and_remotely(root, url, token, *args).exit_code == 0, args
    assert cli("stages", "freeze", "qa1", "--reason", "r", "--store", str(root)).exit_code == 0
    for args in (
        ("yank", "hello_nginx", "5.0.0", "--stage", "nowhere", "--reason", "r"),
        ("yank", "hello_nginx", "9.9.9", "--stage", "snapshot", "--reason", "r"),
        ("yank", "hello_nginx", "5.0.0", "--stage", "snapshot", "--reason", " "),
        ("stages", "show", "nowhere"),
        ("stages", "freeze", "nowhere", "--reason", "r"),
        ("stages", "add", "qa1", "--reason", "r"),
        ("stages", "add", "qa3", "--sees", "nowhere", "--reason", "r"),
        ("stages", "unfreeze", "qa1", "--reason", " "),
    ):
        r = same_locally_and_remotely(root, url, token, *args)
        assert r.exit_code == 1 and r.stderr.startswith("error: "), (args, r.output)


def test_yank_and_stage_changes_need_their_scopes_remotely(
    server: tuple[LiveServer, Path, str], tmp_path: Path
) -> None:
    live, root, token = server
    url = live.manage_url
    folder = version_of(tmp_path / "pkgs", "6.0.0")
    assert cli("publish", str(folder), "--store", str(root)).exit_code == 0
    made = cli("tokens", "create", "qa", "--scope", "yank:staging", "--json", "--store", url, token=token)  # fmt: skip
    qa = json.loads(made.stdout)["token"]
    with Store.open(root) as store:
        before = (store.catalog.events(), store.catalog.stages().as_config())
    for args, scope in (
        (("yank", "hello_nginx", "6.0.0", "--stage", "snapshot", "--reason", "r"), "yank:snapshot"),
        (("unyank", "hello_nginx", "6.0.0", "--stage", "snapshot", "--reason", "r"), "yank:snapshot"),
        (("stages", "freeze", "snapshot", "--reason", "r"), "admin"),
        (("stages", "add", "qa", "--reason", "r"), "admin"),
    ):  # fmt: skip
        r = cli(*args, "--store", url, "--token", qa)
        assert (r.exit_code, r.stderr) == (
            1,
            f"error: token qa lacks the scope {scope} (it has: yank:staging)\n",
        ), args
    with Store.open(root) as store:
        assert (store.catalog.events(), store.catalog.stages().as_config()) == before
