"""The store commands against a remote store: ``--store http://127.0.0.1:PORT`` of a real
``package-storage serve --manage-address`` on loopback, token from ``PACKAGE_STORAGE_TOKEN``
or ``--token``. The same command on the directory and on the URL prints the same lines, the
same ``--json`` and exits with the same status."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
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
