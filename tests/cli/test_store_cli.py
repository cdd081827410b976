"""The store commands (``cli/store.py``, ``cli/demo.py``): through click's CliRunner, and a few
through a real subprocess of the installed ``package-storage`` script.

Exit codes: 0 done, 1 refused by a rule or validation (one ``error:`` line naming the rule),
2 usage. Test packages are copies of ``examples/packages`` with edited versions.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from package_storage.cli import common
from package_storage.cli import serve as serve_module
from package_storage.cli.demo import example_packages, promotion_plan
from package_storage.cli.main import main
from package_storage.packages.artifacts import build_zip
from package_storage.packages.signing import generate_key, sign_detached
from package_storage.packages.trees import FolderTree
from package_storage.store import directory as store_module
from process_helpers import clean_env, command, free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "packages"
FIXTURES = REPO / ".." / "shared" / "fixtures" / "epr"
HELLO = EXAMPLES / "hello_nginx" / "1.0.0"
HELLO_11 = EXAMPLES / "hello_nginx" / "1.1.0"
ACME = EXAMPLES / "acme_input" / "1.0.0"

DIGEST_NOTE = re.compile(r" \(sha256 [0-9a-f]{12}…\)$")


# --- helpers ---------------------------------------------------------------------------------


def make_version(source: Path, dest: Path, version: str, *, note: str = "") -> Path:
    """A copy of the package folder ``source`` as ``dest/<name>/<version>`` with ``version``."""
    name = source.parent.name
    target = dest / name / version
    shutil.copytree(source, target)
    manifest = target / "manifest.yml"
    text, count = re.subn(
        r"^version: .*$", f"version: {version}", manifest.read_text(), count=1, flags=re.M
    )
    assert count == 1
    manifest.write_text(text)
    changelog = target / "changelog.yml"
    entry = (
        f'- version: "{version}"\n  changes:\n'
        f"    - description: {note or 'Test release ' + version}.\n"
        "      type: enhancement\n"
        f"      link: https://example.com/package-storage/test/{version}\n"
    )
    changelog.write_text(entry + changelog.read_text())
    return target


def run(args: Sequence[str], store: Path | None, env: Mapping[str, str] | None = None) -> Result:
    full = [*args, "--store", str(store)] if store is not None else list(args)
    environ = {"PACKAGE_STORAGE_ACTOR": "tester", **(env or {})}
    return CliRunner().invoke(main, full, env=environ, catch_exceptions=False)


def ok(args: Sequence[str], store: Path | None, env: Mapping[str, str] | None = None) -> str:
    result = run(args, store, env)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def json_of(args: Sequence[str], store: Path) -> Any:
    return json.loads(ok([*args, "--json"], store))


def refused(args: Sequence[str], store: Path | None) -> str:
    """Run a command that must be refused (exit 1) with one ``error:`` line; return it."""
    result = run(args, store)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    directory = tmp_path / "store"
    ok(["init"], directory)
    return directory


@pytest.fixture
def published(store: Path) -> Path:
    """A store with hello_nginx 1.0.0 and 1.1.0 and acme_input 1.0.0 in snapshot."""
    ok(["publish", str(HELLO), str(HELLO_11), str(ACME)], store)
    return store


# --- init and the store option ------------------------------------------------------------------


def test_init_creates_the_store_and_is_idempotent(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "store"
    first = ok(["init"], directory)
    assert first.startswith(f"created store at {directory}")
    assert "snapshot" in first and "production" in first
    assert (directory / "catalog.db").is_file()
    again = ok(["init"], directory)
    assert again.startswith(f"store exists at {directory}")


def test_store_option_matches_the_store_module() -> None:
    assert common.STORE_ENV == store_module.STORE_ENV
    assert common.DEFAULT_STORE_DIR == store_module.DEFAULT_STORE_DIR


def test_store_from_the_environment(tmp_path: Path) -> None:
    directory = tmp_path / "env-store"
    env = {"PACKAGE_STORAGE_STORE": str(directory)}
    result = run(["init"], None, env=env)
    assert result.exit_code == 0
    assert (directory / "catalog.db").is_file()
    # the command says which store it acts on (stderr: stdout stays machine-readable)
    assert result.stderr.strip() == f"store: {directory} (from PACKAGE_STORAGE_STORE)"
    listed = run(["list", "--json"], None, env=env)
    assert json.loads(listed.stdout) == []
    assert f"store: {directory} (from PACKAGE_STORAGE_STORE)" in listed.stderr
    # an explicit --store is not announced
    explicit = run(["list", "--json"], directory, env=env)
    assert explicit.stderr == ""


def test_nonexistent_store_exits_1_with_a_hint_to_run_init(tmp_path: Path) -> None:
    missing = tmp_path / "nothing"
    for args in (["list"], ["history"], ["publish", str(HELLO)], ["tags"], ["fsck"]):
        line = refused(args, missing)
        assert str(missing) in line
        assert "package-storage init" in line
    assert not missing.exists()  # a typo in --store never creates a store


@pytest.mark.parametrize(
    "args",
    [
        ["publish", "--bogus", str(HELLO)],
        ["publish"],  # no PATH
        ["list", "--stage", "snapshot", "--distribution", "production"],
        ["list", "--revision", "1"],
        ["history", "--limit", "-1"],
        ["promote", "hello_nginx", "1.0.0"],  # --to is required
        ["remove", "hello_nginx", "1.0.0"],  # --stage is required
        ["tag", "production", "x", "--revision", "zero"],
        ["publish", "/does/not/exist"],
    ],
)
def test_usage_errors_exit_2(store: Path, args: list[str]) -> None:
    result = run(args, store)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "error: " not in result.stdout


# --- publish ------------------------------------------------------------------------------------


def test_publish_prints_one_line_per_package(store: Path) -> None:
    out = ok(["publish", str(HELLO), str(ACME)], store).splitlines()
    assert len(out) == 2
    assert out[0].startswith("published hello_nginx 1.0.0 to snapshot (sha256 ")
    assert out[1].startswith("published acme_input 1.0.0 to snapshot (sha256 ")
    assert all(DIGEST_NOTE.search(line) for line in out)
    again = ok(["publish", str(HELLO)], store).splitlines()
    assert len(again) == 1 and again[0].startswith("unchanged")


def test_publish_digest_is_the_stored_artifact(store: Path) -> None:
    line = ok(["publish", str(HELLO)], store).strip()
    listed = json_of(["list", "--stage", "snapshot"], store)
    assert len(listed) == 1
    assert listed[0]["artifact"][:12] in line


def test_publish_stops_at_the_first_refused_package(store: Path, tmp_path: Path) -> None:
    broken = make_version(HELLO, tmp_path / "pkgs", "1.0.1")
    (broken / "manifest.yml").write_text("name: hello_nginx\nversion: [not, a, version\n")
    later = make_version(HELLO, tmp_path / "pkgs", "1.0.2")
    result = run(["publish", str(HELLO), str(broken), str(later)], store)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout.startswith("published hello_nginx 1.0.0 to snapshot")
    assert "1.0.2" not in result.stdout
    err = result.stderr.strip().splitlines()
    assert err[0].startswith("error: ")
    assert err[1] == f"stopped at {broken}: 1 published, 0 unchanged, 1 not tried"
    versions = [e["version"] for e in json_of(["list", "--stage", "snapshot"], store)]
    assert versions == ["1.0.0"]  # already-published packages stay


def test_publish_refused_by_validation_names_the_rule(store: Path, tmp_path: Path) -> None:
    copy = make_version(HELLO, tmp_path / "pkgs", "1.0.1")
    (copy / "changelog.yml").unlink()
    line = refused(["publish", str(copy)], store)
    assert "changelog" in line and "[changelog-missing]" in line
    assert json_of(["list"], store) == []


def test_publish_to_a_promotion_only_stage_is_refused_naming_the_rule(store: Path) -> None:
    line = refused(["publish", "--stage", "production", str(HELLO)], store)
    assert "production" in line
    assert json_of(["list", "--stage", "production"], store) == []


def test_publish_overwrite_in_snapshot_and_forced_overwrite_in_staging(
    store: Path, tmp_path: Path
) -> None:
    ok(["publish", str(HELLO)], store)
    changed = tmp_path / "changed" / "hello_nginx" / "1.0.0"
    shutil.copytree(HELLO, changed)
    with (changed / "docs" / "README.md").open("a") as fh:
        fh.write("\nOne more line.\n")
    out = ok(["publish", str(changed)], store)
    assert out.startswith("overwrote hello_nginx 1.0.0 in snapshot (sha256 ")
    assert DIGEST_NOTE.search(out.strip())
    ok(["promote", "hello_nginx", "1.0.0", "--to", "staging"], store)
    ok(["publish", str(HELLO)], store)  # the original bytes again, in snapshot
    line = refused(["promote", "hello_nginx", "1.0.0", "--to", "staging"], store)
    assert "staging" in line
    line = refused(["promote", "hello_nginx", "1.0.0", "--to", "staging", "--force"], store)
    assert "reason" in line
    out = ok(
        ["promote", "hello_nginx", "1.0.0", "--to", "staging", "--force", "--reason", "rebuild"],
        store,
    )
    assert out.startswith("promoted hello_nginx 1.0.0 from snapshot to staging")
    assert DIGEST_NOTE.search(out.strip())
    events = json_of(["history", "--stage", "staging", "--limit", "1"], store)
    assert events[0]["reason"] == "rebuild"


def test_publish_a_new_version_of_a_copy(store: Path, tmp_path: Path) -> None:
    newer = make_version(HELLO_11, tmp_path / "pkgs", "1.2.0")
    out = ok(["publish", str(newer)], store)
    assert out.startswith("published hello_nginx 1.2.0 to snapshot")


def test_publish_a_zip_takes_the_signature_along(store: Path, tmp_path: Path) -> None:
    zip_path = tmp_path / "hello_nginx-1.0.0.zip"
    zip_path.write_bytes(build_zip(FolderTree(HELLO), "hello_nginx", "1.0.0"))
    # A real armored signature: it must parse; it is verified only against trusted keys.
    signer = generate_key("CLI Tests <cli@example.com>")
    Path(f"{zip_path}.sig").write_bytes(sign_detached(signer, zip_path.read_bytes()))
    out = ok(["publish", str(zip_path)], store)
    assert out.startswith("published hello_nginx 1.0.0 to snapshot")
    shown = json_of(["show", "hello_nginx", "1.0.0"], store)
    assert shown["versions"][0]["signed"] is True
    plain = make_version(ACME, tmp_path / "pkgs", "1.0.1")
    ok(["publish", str(plain)], store)
    assert json_of(["show", "acme_input"], store)["versions"][0]["signed"] is False


# --- promote / remove ------------------------------------------------------------------------------


def test_promote_through_the_stages(published: Path) -> None:
    out = ok(["promote", "hello_nginx", "1.0.0", "--to", "staging"], published)
    assert out.startswith("promoted hello_nginx 1.0.0 from snapshot to staging (sha256 ")
    out = ok(
        ["promote", "hello_nginx", "1.0.0", "--to", "production", "--from", "staging"], published
    )
    assert out.startswith("promoted hello_nginx 1.0.0 from staging to production")
    served = json_of(["list", "--distribution", "production"], published)
    assert [(e["name"], e["version"], e["stage"]) for e in served] == [
        ("hello_nginx", "1.0.0", "production")
    ]
    assert set(served[0]) == {"name", "version", "stage", "artifact", "yanked"}
    snapshot = json_of(["list", "--distribution", "snapshot"], published)
    assert {(e["name"], e["version"]) for e in snapshot} == {
        ("acme_input", "1.0.0"),
        ("hello_nginx", "1.0.0"),
        ("hello_nginx", "1.1.0"),
    }


def test_promote_skipping_a_stage_is_refused(published: Path) -> None:
    line = refused(["promote", "hello_nginx", "1.0.0", "--to", "production"], published)
    assert "hello_nginx 1.0.0" in line and "staging" in line


def test_promote_unknown_version_is_refused(published: Path) -> None:
    line = refused(["promote", "hello_nginx", "9.9.9", "--to", "staging"], published)
    assert "9.9.9" in line


def test_remove_obeys_the_stage_policy(published: Path) -> None:
    ok(["promote", "hello_nginx", "1.0.0", "--to", "staging"], published)
    ok(["promote", "hello_nginx", "1.0.0", "--to", "production"], published)
    line = refused(["remove", "hello_nginx", "1.0.0", "--stage", "production"], published)
    assert "production" in line
    line = refused(
        ["remove", "hello_nginx", "1.0.0", "--stage", "production", "--force", "--reason", "x"],
        published,
    )
    assert "production" in line
    out = ok(["remove", "acme_input", "1.0.0", "--stage", "snapshot"], published)
    assert out.strip() == "removed acme_input 1.0.0 from snapshot"
    assert json_of(["list", "--stage", "snapshot"], published)[0]["name"] == "hello_nginx"


def test_staging_removal_needs_force_and_a_reason(published: Path) -> None:
    ok(["promote", "acme_input", "1.0.0", "--to", "staging"], published)
    refused(["remove", "acme_input", "1.0.0", "--stage", "staging"], published)
    ok(
        ["remove", "acme_input", "1.0.0", "--stage", "staging", "--force", "--reason", "bad build"],
        published,
    )
    events = json_of(["history", "--package", "acme_input", "--limit", "1"], published)
    assert events[0]["reason"] == "bad build"
    assert events[0]["actor"] == "tester"


# --- list / show / diff / history ---------------------------------------------------------------


def test_list_json_shape(published: Path) -> None:
    entries = json_of(["list", "--stage", "snapshot"], published)
    assert [(e["name"], e["version"]) for e in entries] == [
        ("acme_input", "1.0.0"),
        ("hello_nginx", "1.0.0"),
        ("hello_nginx", "1.1.0"),
    ]
    for entry in entries:
        assert list(entry) == [
            "name",
            "version",
            "stage",
            "artifact",
            "added_at",
            "added_by",
            "yanked",
        ]
        assert re.fullmatch(r"[0-9a-f]{64}", entry["artifact"])
        assert entry["added_by"] == "tester"
        assert entry["added_at"].endswith("Z")


def test_list_human_table(published: Path) -> None:
    out = ok(["list", "--stage", "snapshot"], published)
    assert "stage snapshot: 3 versions" in out
    assert "hello_nginx" in out and "acme_input" in out and "1.1.0" in out


def test_show(published: Path) -> None:
    ok(["promote", "hello_nginx", "1.0.0", "--to", "staging"], published)
    shown = json_of(["show", "hello_nginx"], published)
    assert shown["name"] == "hello_nginx"
    by_version = {v["version"]: v for v in shown["versions"]}
    assert set(by_version) == {"1.0.0", "1.1.0"}
    v100 = by_version["1.0.0"]
    assert "staging" in [s["stage"] for s in v100["stages"]]
    assert v100["artifact_size"] > 0
    assert v100["signed"] is False
    actions = [e["action"] for e in v100["events"]]
    assert len(actions) >= 2
    assert all(e["version"] == "1.0.0" for e in v100["events"])
    human = ok(["show", "hello_nginx", "1.0.0"], published)
    assert "staging" in human and "hello_nginx events" in human


def test_show_unknown_package_is_refused(published: Path) -> None:
    line = refused(["show", "nope"], published)
    assert "nope" in line


def test_diff(published: Path) -> None:
    ok(["promote", "hello_nginx", "1.0.0", "--to", "staging"], published)
    d = json_of(["diff", "snapshot", "staging"], published)
    assert list(d) == ["stage_a", "stage_b", "only_a", "only_b", "different"]
    assert (d["stage_a"], d["stage_b"]) == ("snapshot", "staging")
    assert ("hello_nginx", "1.1.0") in {(e["name"], e["version"]) for e in d["only_a"]}
    assert ("hello_nginx", "1.0.0") in {(e["name"], e["version"]) for e in d["only_b"]}
    assert d["different"] == []
    human = ok(["diff", "snapshot", "staging"], published)
    assert "only in snapshot" in human and "only in staging" in human
    same = ok(["diff", "production", "production"], published)
    assert "same versions" in same


def test_history(published: Path) -> None:
    ok(["promote", "hello_nginx", "1.0.0", "--to", "staging"], published)
    events = json_of(["history"], published)
    assert len(events) == 4
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    newest = events[0]
    assert list(newest) == [
        "id",
        "time",
        "actor",
        "action",
        "stage",
        "name",
        "version",
        "reason",
        "title",
        "detail",
    ]
    assert newest["stage"] == "staging" and newest["name"] == "hello_nginx"
    assert "hello_nginx" in newest["title"]
    assert len(json_of(["history", "--limit", "2"], published)) == 2
    assert len(json_of(["history", "--stage", "staging"], published)) == 1
    assert {e["name"] for e in json_of(["history", "--package", "acme_input"], published)} == {
        "acme_input"
    }
    human = ok(["history"], published)
    assert "tester" in human and newest["title"] in human


# --- revisions / tags / rollback -----------------------------------------------------------------


def test_revisions_tag_and_rollback(published: Path) -> None:
    ok(["promote", "hello_nginx", "1.0.0", "--to", "staging"], published)
    ok(["promote", "hello_nginx", "1.0.0", "--to", "production"], published)
    revs = json_of(["revisions", "production"], published)
    assert revs, "production has revisions after a promotion"
    for rev in revs:
        assert isinstance(rev["revision"], int)
        assert re.fullmatch(r"[0-9a-f]{64}", rev["digest"])
        assert rev["created"].endswith("Z")
        assert isinstance(rev["current"], bool)
        assert isinstance(rev["tags"], list)
    assert [r["current"] for r in revs].count(True) == 1
    assert revs[-1]["current"] is True
    first_tagged = revs[-1]["revision"]

    out = ok(["tag", "production", "8.12.0"], published)
    assert out.startswith(f"tagged production@8.12.0 = revision {first_tagged} (digest ")
    line = refused(["tag", "production", "8.12.0"], published)  # tags never move
    assert "8.12.0" in line
    tags = json_of(["tags"], published)
    assert tags == [
        {
            "distribution": "production",
            "tag": "8.12.0",
            "revision": first_tagged,
            "created": tags[0]["created"],
            "created_by": "tester",
        }
    ]
    assert "production@8.12.0" in ok(["tags"], published)

    # A new production version makes a new revision; roll back to the tag.
    ok(["promote", "acme_input", "1.0.0", "--to", "staging"], published)
    ok(["promote", "acme_input", "1.0.0", "--to", "production"], published)
    after = json_of(["revisions", "production"], published)
    assert after[-1]["revision"] > first_tagged and after[-1]["current"]
    dry = ok(["rollback", "production", "8.12.0", "--dry-run"], published).splitlines()
    assert dry == [
        f"dry run: rolling production back to revision {first_tagged} (tag 8.12.0) would move"
        " 1 version (nothing changed)",
        "  acme_input 1.0.0: take out, return to staging",
    ]
    planned = json_of(["rollback", "production", "8.12.0", "--dry-run"], published)
    assert planned["moves"][0]["action"] == "return"
    assert planned["moves"][0]["returned_to"] == "staging"
    lines = ok(
        ["rollback", "production", "8.12.0", "--reason", "acme breaks 8.12"], published
    ).splitlines()
    assert lines[0].startswith(f"rolled production back to revision {first_tagged}")
    assert lines[1] == "  out: acme_input 1.0.0 (returned to staging)"
    assert lines[2].startswith(f"production now serves revision {first_tagged} (digest ")
    shown = json_of(["show", "acme_input", "1.0.0"], published)
    assert [s["stage"] for s in shown["versions"][0]["stages"]] == ["staging"]
    titles = [e["title"] for e in shown["versions"][0]["events"]]
    assert "[production] Rollback takes out acme_input-1.0.0: returned to staging" in titles
    assert {e["reason"] for e in shown["versions"][0]["events"][-2:]} == {"acme breaks 8.12"}
    again = ok(["rollback", "production", "8.12.0"], published)
    assert again.startswith("unchanged: ")
    old = json_of(
        ["list", "--distribution", "production", "--revision", str(after[-1]["revision"])],
        published,
    )
    assert len(old) == 2
    rolled = {r["revision"]: r for r in json_of(["revisions", "production"], published)}
    assert rolled[first_tagged]["current"] is True
    assert rolled[first_tagged]["tags"] == ["8.12.0"]
    served = json_of(["list", "--distribution", "production"], published)
    assert [(e["name"], e["version"]) for e in served] == [("hello_nginx", "1.0.0")]
    # and forward again by number
    forward = ok(["rollback", "production", str(after[-1]["revision"])], published)
    assert "  back: acme_input 1.0.0 (taken back from staging)" in forward.splitlines()
    assert len(json_of(["list", "--distribution", "production"], published)) == 2
    assert json_of(["list", "--stage", "staging"], published) == []
    human = ok(["revisions", "production"], published)
    assert "8.12.0" in human and "*" in human


def test_tag_an_older_revision_and_unknown_revision(published: Path) -> None:
    revs = json_of(["revisions", "snapshot"], published)
    assert len(revs) >= 2
    ok(["tag", "snapshot", "early", "--revision", str(revs[0]["revision"])], published)
    assert (
        json_of(["tags", "--distribution", "snapshot"], published)[0]["revision"]
        == revs[0]["revision"]
    )
    refused(["tag", "snapshot", "later", "--revision", "999"], published)
    refused(["rollback", "snapshot", "no-such-tag"], published)


# --- fsck --------------------------------------------------------------------------------------


def test_fsck(published: Path) -> None:
    out = ok(["fsck"], published)
    assert out.strip().endswith("is consistent")
    report = json_of(["fsck"], published)
    assert report["ok"] is True
    artifact = json_of(["list", "--stage", "snapshot"], published)[0]["artifact"]
    blob = next(p for p in (published / "blobs").rglob(artifact))
    blob.chmod(0o644)
    blob.write_bytes(b"not the artifact")
    result = run(["fsck"], published)
    assert result.exit_code == 1
    assert artifact in result.stdout
    assert result.stderr.startswith("error: ") and "inconsistent" in result.stderr


# --- demo ----------------------------------------------------------------------------------------


def test_promotion_plan_of_the_examples() -> None:
    plan = promotion_plan(example_packages(EXAMPLES))
    assert ("hello_nginx", "1.0.0", ("staging", "production")) in plan
    assert ("hello_nginx", "1.1.0", ("staging",)) in plan
    assert ("acme_input", "1.0.0", ("staging", "production")) in plan


def test_demo_without_examples_fails_clearly(tmp_path: Path) -> None:
    line = refused(["demo", "--examples", str(tmp_path / "none"), "--no-serve"], tmp_path / "d")
    assert "examples" in line


def test_demo_builds_and_reuses_its_store(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    args = ["demo", "--no-serve", "--address", "127.0.0.1:9999"]
    out = ok(args, directory)
    assert "http://127.0.0.1:9999/" in out
    assert "http://127.0.0.1:9999/snapshot/search" in out
    assert "http://127.0.0.1:9999/production@demo/search" in out
    production = json_of(["list", "--distribution", "production"], directory)
    assert ("hello_nginx", "1.0.0") in {(e["name"], e["version"]) for e in production}
    assert ("hello_nginx", "1.1.0") not in {(e["name"], e["version"]) for e in production}
    staging = json_of(["list", "--distribution", "staging"], directory)
    assert ("hello_nginx", "1.1.0") in {(e["name"], e["version"]) for e in staging}
    assert [t["tag"] for t in json_of(["tags"], directory)] == ["demo"]
    events = len(json_of(["history", "--limit", "0"], directory))
    again = ok(args, directory)
    assert "published" not in again and "promoted" not in again
    assert len(json_of(["history", "--limit", "0"], directory)) == events


def test_demo_serves_the_store_through_serve_store(tmp_path: Path, monkeypatch: Any) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_serve_store(store_dir: Path, address: str, *args: Any, **kwargs: Any) -> int:
        calls.append((store_dir, address))
        return 0

    monkeypatch.setattr(serve_module, "serve_store", fake_serve_store)
    out = ok(["demo", "--address", "127.0.0.1:9"], tmp_path / "d")
    assert calls == [(tmp_path / "d", "127.0.0.1:9")]
    assert "http://127.0.0.1:9/production@demo/search" in out


def test_demo_store_ignores_the_environment(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(
        ["demo", "--no-serve"], None, env={"PACKAGE_STORAGE_STORE": str(tmp_path / "real")}
    )
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "data" / "demo" / "catalog.db").is_file()
    assert not (tmp_path / "real").exists()


# --- a real subprocess ---------------------------------------------------------------------------


def run_process(args: Sequence[str], store: Path) -> subprocess.CompletedProcess[str]:
    env = clean_env({"PACKAGE_STORAGE_ACTOR": "ci"})
    return subprocess.run(
        [*command(), *args, "--store", str(store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_subprocess_exit_codes(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    missing = run_process(["list"], directory)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ") and "package-storage init" in missing.stderr
    assert "Traceback" not in missing.stderr
    usage = run_process(["list", "--frobnicate"], directory)
    assert usage.returncode == 2
    assert run_process(["init"], directory).returncode == 0


def test_subprocess_publish_and_list(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    assert run_process(["init"], directory).returncode == 0
    pub = run_process(["publish", str(HELLO)], directory)
    assert pub.returncode == 0, pub.stderr
    assert pub.stdout.startswith("published hello_nginx 1.0.0 to snapshot (sha256 ")
    refusal = run_process(["remove", "hello_nginx", "1.0.0", "--stage", "production"], directory)
    assert refusal.returncode == 1
    assert len(refusal.stderr.strip().splitlines()) == 1
    listed = run_process(["list", "--json"], directory)
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert [(e["name"], e["version"], e["stage"], e["added_by"]) for e in entries] == [
        ("hello_nginx", "1.0.0", "snapshot", "ci")
    ]


def test_subprocess_demo_serves_the_urls_it_prints(tmp_path: Path) -> None:
    port, manage_port = free_port(), free_port()
    env = clean_env()
    proc = subprocess.Popen(
        [
            *command(),
            "demo",
            "--store",
            str(tmp_path / "demo"),
            "--address",
            f"127.0.0.1:{port}",
            "--manage-address",
            f"127.0.0.1:{manage_port}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the demo server did not start"
            time.sleep(0.2)
        tagged = httpx.get(f"http://127.0.0.1:{port}/production@demo/search", timeout=10)
        assert tagged.status_code == 200
        assert ("hello_nginx", "1.0.0") in {(p["name"], p["version"]) for p in tagged.json()}
        snapshot = httpx.get(f"http://127.0.0.1:{port}/snapshot/search?all=true", timeout=10)
        assert ("hello_nginx", "1.1.0") in {(p["name"], p["version"]) for p in snapshot.json()}
        secret = (tmp_path / "demo" / "demo-token").read_text().strip()
        stages = httpx.get(
            f"http://127.0.0.1:{manage_port}/api/v1/stages",
            headers={"authorization": f"Bearer {secret}"},
            timeout=10,
        )
        assert stages.status_code == 200, stages.text
        ui = httpx.get(f"http://127.0.0.1:{manage_port}/", timeout=10, follow_redirects=True)
        assert ui.status_code == 200, ui.text
        assert "Sign in" in ui.text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert f"http://127.0.0.1:{port}/production@demo/search" in out
    assert f"http://127.0.0.1:{manage_port}/api/v1/openapi.json" in out
    assert f"http://127.0.0.1:{manage_port}/  " in out  # the operator web UI


# --- yank ----------------------------------------------------------------------------------------


def test_yank_and_unyank(published: Path) -> None:
    ok(["promote", "hello_nginx", "1.0.0", "--to", "staging"], published)
    ok(["promote", "hello_nginx", "1.0.0", "--to", "production"], published)
    line = refused(
        ["yank", "hello_nginx", "1.0.0", "--stage", "production", "--reason", " "], published
    )
    assert "needs a reason" in line
    out = ok(
        ["yank", "hello_nginx", "1.0.0", "--stage", "production", "--reason", "bad"], published
    )
    assert out.startswith("yanked hello_nginx 1.0.0 in production: hidden from search")
    again = ok(
        ["yank", "hello_nginx", "1.0.0", "--stage", "production", "--reason", "x"], published
    )
    assert again.startswith("unchanged: ")
    listed = json_of(["list", "--stage", "production"], published)
    assert [(e["version"], e["yanked"]) for e in listed] == [("1.0.0", True)]
    assert "yanked" in ok(["list", "--distribution", "production"], published)
    shown = json_of(["show", "hello_nginx", "1.0.0"], published)
    assert shown["versions"][0]["stages"][0]["yanked"] is True
    titles = [e["title"] for e in json_of(["history"], published)]
    assert titles[0] == "[production] Yank hello_nginx-1.0.0"
    ok(["unyank", "hello_nginx", "1.0.0", "--stage", "production", "--reason", "ok"], published)
    assert json_of(["list", "--stage", "production"], published)[0]["yanked"] is False
