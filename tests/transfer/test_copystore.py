"""copy-store (``transfer/copystore.py``, ``cli/copystore.py``): a whole store copied to
another, resumable, refusing an unrelated target, checked by revision digests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from test_service import make_package

from package_storage.cli.main import main
from package_storage.errors import ConflictError, SignatureError
from package_storage.packages.signing import generate_key, is_sealed, public_key_of
from package_storage.store.directory import Store
from package_storage.store.keyring import PASSPHRASE_ENV, StoreKeyring
from package_storage.store.storage import schema as s
from package_storage.store.storage.keystore import CatalogKeyStore
from package_storage.transfer.copystore import (
    CopyProgress,
    check_key_files,
    copied_tables,
    copy_store,
    snapshot,
)


def build_store(root: Path, packages: Path) -> Store:
    """A store with a history of every kind: publish, overwrite, promote, yank, remove, tag,
    rollback, a token."""
    store = Store.init(root)
    svc = store.service("builder")
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        svc.publish(make_package(packages, version))
    svc.publish(make_package(packages, "1.2.0", extra="again"))  # overwrite in snapshot
    svc.publish(make_package(packages, "0.1.0", name="other_pkg"))
    for version in ("1.0.0", "1.1.0"):
        svc.promote("hello_nginx", version, to="staging")
        svc.promote("hello_nginx", version, to="production")
    svc.tag("production", "v1")
    svc.yank("hello_nginx", "1.0.0", stage="production", reason="broken")
    svc.remove("other_pkg", "0.1.0", stage="snapshot", reason="gone")
    svc.rollback("production", "v1", reason="back")
    svc.create_token("ci", ["publish:snapshot"], lifetime=timedelta(days=1))
    return store


def dump(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every copied table's rows, plus the change counter."""
    with snapshot(store.catalog.engine) as conn:
        tables = {
            t.name: [dict(r._mapping) for r in conn.execute(select(t).order_by(*t.primary_key))]
            for t in copied_tables(conn)
        }
        tables["catalog_state"] = [dict(r._mapping) for r in conn.execute(select(s.catalog_state))]
    return tables


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Store]:
    store = build_store(tmp_path / "src", tmp_path / "packages")
    try:
        yield store
    finally:
        store.close()


def test_copy_is_exact_and_checked(source: Store, tmp_path: Path) -> None:
    with Store.init(tmp_path / "dst") as target:
        report = copy_store(source, target)
        assert report.same, report.problems
        assert not report.refreshed
        assert report.blobs_skipped == 0
        assert report.blobs_copied == len(source.catalog.referenced_blobs())
        assert dump(target) == dump(source)
        assert sorted(target.blobs.iter_digests()) == sorted(source.blobs.iter_digests())
        assert {d.distribution for d in report.distributions} == {
            "production",
            "staging",
            "snapshot",
        }
        for check in report.distributions:
            assert check.source_digest == check.target_digest
            rev = target.catalog.current_revision(check.distribution)
            assert rev is not None and rev.digest == check.target_digest
        assert target.service("checker").fsck().ok
        # the copy works as a store: it takes the next change (ids continue after the copied ones)
        nxt = target.service("after").publish(make_package(tmp_path / "more", "2.0.0"))
        assert nxt.revisions
        events = target.catalog.events()
        assert events[-1].id == source.catalog.events()[-1].id + 1


def test_rerun_skips_blobs_and_refreshes_a_copy(source: Store, tmp_path: Path) -> None:
    with Store.init(tmp_path / "dst") as target:
        copy_store(source, target)
        source.service("later").publish(make_package(tmp_path / "more", "3.0.0"))
        report = copy_store(source, target)
        assert report.same and report.refreshed
        assert report.blobs_copied == 1
        assert report.blobs_skipped == len(source.catalog.referenced_blobs()) - 1
        assert dump(target) == dump(source)


def test_unrelated_target_is_refused_and_unchanged(source: Store, tmp_path: Path) -> None:
    with Store.init(tmp_path / "dst") as target:
        target.service("other").publish(make_package(tmp_path / "own", "9.0.0"))
        before = dump(target)
        blobs = sorted(target.blobs.iter_digests())
        with pytest.raises(ConflictError, match="not a copy of the source"):
            copy_store(source, target, target_name="dst")
        assert dump(target) == before
        assert sorted(target.blobs.iter_digests()) == blobs


def test_copy_that_went_on_after_the_copy_is_refused(source: Store, tmp_path: Path) -> None:
    with Store.init(tmp_path / "dst") as target:
        copy_store(source, target)
        target.service("diverged").publish(make_package(tmp_path / "own", "9.0.0"))
        with pytest.raises(ConflictError, match="empty store"):
            copy_store(source, target)


def test_interrupted_copy_changes_no_catalog_row_and_a_rerun_completes(
    source: Store, tmp_path: Path
) -> None:
    with Store.init(tmp_path / "dst") as target:
        before = dump(target)

        def stop_half_way(p: CopyProgress) -> None:
            if p.phase == "rows" and p.done >= 10:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            copy_store(source, target, batch=5, progress=stop_half_way)
        assert dump(target) == before  # the catalog part is one transaction
        assert len(list(target.blobs.iter_digests())) == len(source.catalog.referenced_blobs())
        report = copy_store(source, target, batch=5)
        assert report.same and not report.refreshed
        assert report.blobs_copied == 0
        assert dump(target) == dump(source)


def test_interrupted_blob_copy_resumes(source: Store, tmp_path: Path) -> None:
    with Store.init(tmp_path / "dst") as target:

        def stop_after_two(p: CopyProgress) -> None:
            if p.phase == "blobs" and p.done >= 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            copy_store(source, target, threads=1, progress=stop_after_two)
        assert target.catalog.events() == []
        have = len(list(target.blobs.iter_digests()))
        assert 0 < have < len(source.catalog.referenced_blobs())
        report = copy_store(source, target)
        assert report.same
        assert report.blobs_skipped == have
        assert dump(target) == dump(source)


def test_cli_copies_prints_digests_and_json(source: Store, tmp_path: Path) -> None:
    runner = CliRunner()
    dst = tmp_path / "new" / "copy"
    result = runner.invoke(main, ["copy-store", str(source.root), str(dst)])
    assert result.exit_code == 0, result.output
    assert f"copied {source.root} -> {dst}" in result.output
    current = source.catalog.current_revision("production")
    assert current is not None
    assert current.digest[:12] in result.output
    again = runner.invoke(main, ["copy-store", str(source.root), str(dst), "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["same"] is True and data["refreshed"] is True
    assert data["blobs"]["copied"] == 0
    prod = next(d for d in data["distributions"] if d["distribution"] == "production")
    assert prod["source_digest"] == prod["target_digest"] == current.digest
    assert prod["current"] == current.number


def test_cli_refuses_unrelated_target_with_one_line(source: Store, tmp_path: Path) -> None:
    with Store.init(tmp_path / "dst") as other:
        other.service("other").publish(make_package(tmp_path / "own", "9.0.0"))
    result = CliRunner().invoke(main, ["copy-store", str(source.root), str(tmp_path / "dst")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: target store")
    assert "copy into an empty store" in lines[0]


def test_cli_refuses_a_missing_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["copy-store", str(tmp_path / "nothing"), str(tmp_path / "dst")]
    )
    assert result.exit_code == 1
    assert "no package store at" in result.output
    assert not (tmp_path / "dst").exists()


# --- keys ------------------------------------------------------------------------------------


def test_keys_travel_catalog_rows_and_old_key_files(
    source: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    signing, old_trusted, new_trusted = (generate_key(n) for n in ("Sign", "Old", "New"))
    files = StoreKeyring(source.root)  # an older store: keys as files in DIR/keys
    files.set_signing_key(signing.armored)
    files.add_trusted(public_key_of(old_trusted).armored)
    source.keyring().add_trusted(public_key_of(new_trusted).armored)  # in the catalog
    with Store.init(tmp_path / "dst") as target:
        report = copy_store(source, target)
        assert report.same and report.key_files == 2
        keyring = target.keyring()
        assert {k.fingerprint for k in keyring.trusted_keys()} == {
            old_trusted.fingerprint,
            new_trusted.fingerprint,
        }
        assert keyring.signing_key() is not None  # no passphrase: the target's DIR/keys
        assert (target.root / "keys" / "signing.asc").is_file()
    # with a passphrase the key goes into the target's catalog, sealed
    monkeypatch.setenv(PASSPHRASE_ENV, "pw")
    with Store.init(tmp_path / "sealed") as target:
        assert copy_store(source, target).same
        records = CatalogKeyStore(target.catalog).records()
        (record,) = [r for r in records if r.role == "signing"]
        assert record.fingerprint == signing.fingerprint and is_sealed(record.secret or "")
        assert not (target.root / "keys" / "signing.asc").exists()
        assert target.keyring().signing_key() is not None


def test_a_clear_key_file_is_refused_up_front_for_a_catalog_only_target(
    source: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    StoreKeyring(source.root).set_signing_key(generate_key("Sign").armored)
    with Store.init(tmp_path / "dst") as target:
        catalog_only = StoreKeyring(None, keystore=CatalogKeyStore(target.catalog))
        with pytest.raises(SignatureError, match="never in clear") as info:
            check_key_files(source.keyring(), catalog_only, "postgresql://db")
        assert PASSPHRASE_ENV in str(info.value)


# --- stores named by URL ---------------------------------------------------------------------


def test_cli_copies_a_directory_store_into_postgresql_and_back(
    source: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pg_server import temporary_database

    monkeypatch.setenv(PASSPHRASE_ENV, "pw")
    source.keyring().set_signing_key(generate_key("Sign").armored)
    runner = CliRunner()
    with temporary_database("ps_copy") as url:
        uninitialised = runner.invoke(main, ["copy-store", str(source.root), url])
        assert uninitialised.exit_code == 1
        assert "init --store" in uninitialised.output  # a database store is made by init
        made = runner.invoke(main, ["init", "--store", url, "--blobs", str(tmp_path / "pgblobs")])
        assert made.exit_code == 0, made.output
        there = runner.invoke(main, ["copy-store", str(source.root), url, "--json"])
        assert there.exit_code == 0, there.output
        assert json.loads(there.output)["same"] is True
        back = runner.invoke(main, ["copy-store", url, str(tmp_path / "back"), "--json"])
        assert back.exit_code == 0, back.output
        report = json.loads(back.output)
        assert report["same"] is True and report["blobs"]["copied"] > 0
        with Store.open(tmp_path / "back") as copy:
            assert dump(copy) == dump(source)
            assert copy.keyring().signing_key() is not None  # the sealed key came along
        listed = runner.invoke(main, ["keys", "list", "--store", url, "--json"])
        assert [k["role"] for k in json.loads(listed.output)] == ["signing"]
