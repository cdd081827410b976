"""The importer (``importer.py``): folders, zips, bundles and git branches into a real store
(SQLite catalog + blob folder in a temporary directory).

Packages are copies of ``examples/packages`` with edited versions; git repositories are built
with the ``git`` command (branches production/staging/snapshot, each with ``packages/``).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from git_repos import ACME, make_repo, make_version
from package_storage.errors import NotFoundError, PolicyError
from package_storage.packages.artifacts import build_zip
from package_storage.packages.signing import SecretKey, generate_key, public_key_of, sign_detached
from package_storage.packages.trees import FolderTree
from package_storage.store.directory import Store
from package_storage.store.keyring import StoreKeyring
from package_storage.store.service import ImportItem
from package_storage.store.storage.base import EventFilter
from package_storage.transfer import importer
from package_storage.transfer.export import export_bundle
from package_storage.transfer.gitsource import GitPackage, GitReader, MemoryTree, git_tree
from package_storage.transfer.importer import (
    ImportOptions,
    ImportReport,
    import_sources,
    plan_git_import,
    scan_folder,
)

INLINE = ImportOptions(workers=0)
REPORT = ImportOptions(workers=0, on_invalid="report")


# --- helpers ---------------------------------------------------------------------------------


def break_package(folder: Path) -> Path:
    (folder / "manifest.yml").write_text("name: [unclosed\n")
    return folder


def make_zip(folder: Path, out: Path, *, sig: bytes | None = None) -> Path:
    """``out/<name>-<version>.zip`` built from ``folder`` (+ ``.sig`` when given)."""
    name, version = folder.parent.name, folder.name
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{version}.zip"
    path.write_bytes(build_zip(FolderTree(folder), name, version))
    if sig is not None:
        Path(f"{path}.sig").write_bytes(sig)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.init(tmp_path / "store") as s:
        yield s


def stage_digests(store: Store, stage: str) -> dict[tuple[str, str], str]:
    return {(e.name, e.version): e.artifact for e in store.catalog.entries(stage)}


def revision_count(store: Store, distribution: str) -> int:
    return len(store.catalog.revisions(distribution))


def run(store: Store, sources: list[importer.ImportSource], **kw: object) -> ImportReport:
    options = kw.pop("options", INLINE)
    assert isinstance(options, ImportOptions)
    return import_sources(store.service("importer"), sources, options=options, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def key() -> SecretKey:
    return generate_key("Store <store@example.com>")


# --- folders ---------------------------------------------------------------------------------


def test_folder_layout_into_production_batches_revisions_and_records_import_events(
    store: Store, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for v in ("1.0.0", "1.0.1", "1.0.2"):
        make_version(src, v)
    make_version(src, "1.0.0", source=ACME)
    sources = scan_folder(src, "production")
    assert [(s.name, s.version) for s in sources] == [
        ("acme_input", "1.0.0"),
        ("hello_nginx", "1.0.0"),
        ("hello_nginx", "1.0.1"),
        ("hello_nginx", "1.0.2"),
    ]
    report = run(store, sources, options=ImportOptions(workers=0, batch_size=3))
    assert len(report.imported) == 4 and not report.skipped and not report.rejected
    assert report.batches == 2
    assert report.files > 4 * 5
    # production is filled by promotion, yet accepts an import
    assert set(stage_digests(store, "production")) == {
        ("acme_input", "1.0.0"),
        ("hello_nginx", "1.0.0"),
        ("hello_nginx", "1.0.1"),
        ("hello_nginx", "1.0.2"),
    }
    # one new revision per affected distribution per batch, not per package
    for dist in ("production", "staging", "snapshot"):
        assert revision_count(store, dist) == 2
    assert report.revisions == {"production": 2, "staging": 2, "snapshot": 2}
    events = store.catalog.events(EventFilter(action="import"))
    assert len(events) == 4
    ev = next(e for e in events if e.name == "hello_nginx" and e.version == "1.0.1")
    assert ev.stage == "production" and ev.actor == "importer"
    assert ev.detail["source"] == "folder"
    assert ev.detail["location"] == str(src / "hello_nginx" / "1.0.1")
    assert ev.detail["run"] == report.run
    assert ev.detail["digest"] == stage_digests(store, "production")[("hello_nginx", "1.0.1")]
    # the artifact is the deterministic build of the folder
    folder = src / "hello_nginx" / "1.0.1"
    data = build_zip(FolderTree(folder), "hello_nginx", "1.0.1")
    assert store.blobs.get(ev.detail["digest"]) == data


def test_progress_counts_prepared_versions_before_their_batch_is_recorded(
    store: Store, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for v in ("1.0.0", "1.0.1", "1.0.2"):
        make_version(src, v)
    seen: list[importer.ImportProgress] = []
    report = run(
        store,
        scan_folder(src, "snapshot"),
        options=ImportOptions(workers=0, batch_size=10),
        progress=seen.append,
    )
    assert [(p.done, p.imported, p.pending) for p in seen] == [
        (1, 0, 1),
        (2, 0, 2),
        (3, 0, 3),
        (3, 3, 0),
    ]
    assert seen[-1].files == report.files and seen[-1].total == 3


def test_second_run_skips_everything_without_building(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    for v in ("1.0.0", "1.0.1"):
        make_version(src, v)
    run(store, scan_folder(src, "staging"))
    revisions = revision_count(store, "staging")
    events = len(store.catalog.events())

    def no_build(*args: object, **kw: object) -> bytes:
        raise AssertionError("an unchanged folder must be skipped before it is zipped")

    monkeypatch.setattr(importer, "build_zip", no_build)
    report = run(store, scan_folder(src, "staging"))
    assert len(report.skipped) == 2 and not report.imported and not report.rejected
    assert revision_count(store, "staging") == revisions
    assert len(store.catalog.events()) == events
    assert report.batches == 0 and report.revisions == {}


def test_a_changed_folder_is_imported_again_where_the_stage_allows(
    store: Store, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_version(src, "1.0.0")
    run(store, scan_folder(src, "snapshot"))
    before = stage_digests(store, "snapshot")[("hello_nginx", "1.0.0")]
    readme = src / "hello_nginx" / "1.0.0" / "docs" / "README.md"
    readme.write_text(readme.read_text() + "\nchanged\n")
    report = run(store, scan_folder(src, "snapshot"))
    assert [v.status for v in report.imported] == ["overwritten"]
    ev = store.catalog.events(EventFilter(action="import", newest_first=True))[0]
    assert ev.detail["previous"] == before


def test_production_never_overwrites_and_staging_needs_force_and_reason(
    store: Store, tmp_path: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    make_version(first, "1.0.0")
    make_version(second, "1.0.0", note="other bytes")
    for stage in ("production", "staging"):
        run(store, scan_folder(first, stage))
    blobs = set(store.blobs.iter_digests())
    report = run(store, scan_folder(second, "production"), options=REPORT)
    assert not report.imported and len(report.rejected) == 1
    assert "stage production never overwrites a version" in report.rejected[0].reason
    assert report.rejected[0].code == "policy_refused"
    assert set(store.blobs.iter_digests()) == blobs  # refused before any blob was written
    report = run(store, scan_folder(second, "staging"), options=REPORT)
    assert "only when forced" in report.rejected[0].reason
    report = run(
        store, scan_folder(second, "staging"), options=ImportOptions(workers=0, force=True)
    )
    assert report.stopped and "needs --force and --reason" in report.rejected[0].reason
    report = run(
        store,
        scan_folder(second, "staging"),
        options=ImportOptions(workers=0, force=True, reason="re-import the fixed README"),
    )
    assert [v.status for v in report.imported] == ["overwritten"]
    ev = store.catalog.events(EventFilter(action="import", newest_first=True))[0]
    assert ev.reason == "re-import the fixed README" and ev.detail["forced"] is True


def _item(folder: Path, stage: str) -> ImportItem:
    name, version = folder.parent.name, folder.name
    data = build_zip(FolderTree(folder), name, version)
    return ImportItem(
        stage=stage,
        name=name,
        version=version,
        digest=hashlib.sha256(data).hexdigest(),
        size=len(data),
        signature_digest=None,
        summary={"source": "folder"},
        location=str(folder),
        data=data,
    )


def test_import_batch_applies_the_overwrite_rule_inside_the_transaction(
    store: Store, tmp_path: Path
) -> None:
    service = store.service("t")
    first = service.import_batch([_item(make_version(tmp_path / "a", "1.0.0"), "production")])
    assert [r.status for r in first.results] == ["imported"]
    assert [r.distribution for r in first.revisions] == ["production", "staging", "snapshot"]
    items = [
        _item(make_version(tmp_path / "b", "1.0.1"), "production"),
        _item(make_version(tmp_path / "b", "1.0.0", note="other"), "production"),
        _item(make_version(tmp_path / "b", "1.0.2"), "production"),
    ]
    stopped = service.import_batch(items, stop_on_refusal=True)
    assert stopped.stopped
    assert [r.status for r in stopped.results] == ["imported", "refused"]
    assert "never overwrites" in stopped.results[1].reason
    assert set(stage_digests(store, "production")) == {
        ("hello_nginx", "1.0.0"),
        ("hello_nginx", "1.0.1"),
    }
    carried = service.import_batch(items)
    assert [r.status for r in carried.results] == ["unchanged", "refused", "imported"]
    assert revision_count(store, "production") == 3
    nothing = service.import_batch(items[:1])
    assert [r.status for r in nothing.results] == ["unchanged"] and nothing.revisions == ()


def test_frozen_stage_refuses_the_whole_import(store: Store, tmp_path: Path) -> None:
    with store.catalog.transaction() as tx:
        tx.set_stages(tx.stages().with_frozen_stage("production-7.9"))
    make_version(tmp_path / "src", "1.0.0")
    with pytest.raises(PolicyError, match=r"stage production-7\.9 is frozen"):
        run(store, scan_folder(tmp_path / "src", "production-7.9"))
    assert store.catalog.entries("production-7.9") == []
    with pytest.raises(NotFoundError, match="stage nope does not exist"):
        run(store, scan_folder(tmp_path / "src", "nope"))


def test_on_invalid_stop_imports_what_comes_before_and_nothing_after(
    store: Store, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for v in ("1.0.0", "1.0.1", "1.0.2"):
        make_version(src, v)
    break_package(src / "hello_nginx" / "1.0.1")
    report = run(store, scan_folder(src, "production"))
    assert report.stopped
    assert [v.version for v in report.imported] == ["1.0.0"]
    assert [r.location for r in report.rejected] == [str(src / "hello_nginx" / "1.0.1")]
    assert report.not_tried == 1
    assert set(stage_digests(store, "production")) == {("hello_nginx", "1.0.0")}


def test_on_invalid_report_carries_on_and_lists_every_reason(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for v in ("1.0.0", "1.0.1", "1.0.2"):
        make_version(src, v)
    break_package(src / "hello_nginx" / "1.0.1")
    (src / "hello_nginx" / "9.9.9").mkdir()  # a version folder without a manifest
    report = run(store, scan_folder(src, "production"), options=REPORT)
    assert not report.stopped and report.not_tried == 0
    assert [v.version for v in report.imported] == ["1.0.0", "1.0.2"]
    reasons = {r.version: r.reason for r in report.rejected}
    assert set(reasons) == {"1.0.1", "9.9.9"}
    assert "manifest.yml" in reasons["1.0.1"]
    assert "no manifest.yml" in reasons["9.9.9"]


def test_publish_level_validation_is_stricter(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_version(src, "1.0.0")
    (src / "hello_nginx" / "1.0.0" / "changelog.yml").unlink()
    assert run(store, scan_folder(src, "snapshot"), options=REPORT).imported
    strict = ImportOptions(workers=0, on_invalid="report", validation="publish")
    other = tmp_path / "other"
    make_version(other, "1.0.0")
    (other / "hello_nginx" / "1.0.0" / "changelog.yml").unlink()
    report = run(store, scan_folder(other, "staging"), options=strict)
    assert not report.imported and "changelog" in report.rejected[0].reason


def test_folder_published_before_is_skipped_after_building(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    folder = make_version(src, "1.0.0")
    store.service("ci").publish(folder)  # no import fingerprint recorded
    report = run(store, scan_folder(src, "snapshot"))
    assert len(report.skipped) == 1 and not report.imported


def test_scan_folder_accepts_a_checkout_root_and_refuses_empty_folders(tmp_path: Path) -> None:
    make_version(tmp_path / "checkout" / "packages", "1.0.0")
    (tmp_path / "checkout" / ".git").mkdir()
    assert [s.location for s in scan_folder(tmp_path / "checkout", "snapshot")] == [
        str(tmp_path / "checkout" / "packages" / "hello_nginx" / "1.0.0")
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError, match="no packages in"):
        scan_folder(tmp_path / "empty", "snapshot")
    with pytest.raises(NotFoundError, match="is not a folder"):
        scan_folder(tmp_path / "missing", "snapshot")


# --- zips and bundles ------------------------------------------------------------------------


def test_zips_with_and_without_signatures(store: Store, tmp_path: Path, key: SecretKey) -> None:
    folders = tmp_path / "folders"
    out = tmp_path / "zips"
    signed = make_zip(make_version(folders, "1.0.0"), out, sig=None)
    sig = sign_detached(key, signed.read_bytes())
    Path(f"{signed}.sig").write_bytes(sig)
    unsigned = make_zip(make_version(folders, "1.0.1"), out)
    sources = scan_folder(out, "production")
    assert [(s.name, s.version, s.signature_path is not None) for s in sources] == [
        ("hello_nginx", "1.0.0", True),
        ("hello_nginx", "1.0.1", False),
    ]
    report = run(store, sources)
    assert len(report.imported) == 2
    digests = stage_digests(store, "production")
    assert digests[("hello_nginx", "1.0.0")] == hashlib.sha256(signed.read_bytes()).hexdigest()
    rec = store.catalog.get_artifact(digests[("hello_nginx", "1.0.0")])
    assert rec is not None and rec.signature_digest is not None
    assert store.blobs.get(rec.signature_digest) == sig
    rec = store.catalog.get_artifact(digests[("hello_nginx", "1.0.1")])
    assert rec is not None and rec.signature_digest is None
    # resumable: the second run skips both (hash compare, nothing validated)
    again = run(store, scan_folder(out, "production"))
    assert len(again.skipped) == 2
    # a signature that appears later is added to the stored artifact
    Path(f"{unsigned}.sig").write_bytes(sign_detached(key, unsigned.read_bytes()))
    later = run(store, scan_folder(out, "production"))
    assert [v.status for v in later.imported] == ["signature_added"]


def test_signatures_are_checked_against_trusted_keys(
    store: Store, tmp_path: Path, key: SecretKey
) -> None:
    keyring = StoreKeyring(store.root)
    keyring.add_trusted(public_key_of(key).armored)
    stranger = generate_key("Stranger <s@example.com>")
    out = tmp_path / "zips"
    good = make_zip(make_version(tmp_path / "f", "1.0.0"), out)
    Path(f"{good}.sig").write_bytes(sign_detached(key, good.read_bytes()))
    bad = make_zip(make_version(tmp_path / "f", "1.0.1"), out)
    Path(f"{bad}.sig").write_bytes(sign_detached(stranger, bad.read_bytes()))
    empty = make_zip(make_version(tmp_path / "f", "1.0.2"), out, sig=b"")
    report = run(store, scan_folder(out, "production"), options=REPORT, keyring=keyring)
    assert [v.version for v in report.imported] == ["1.0.0"]
    reasons = {r.location: r.reason for r in report.rejected}
    assert "signature refused" in reasons[str(bad)]
    assert "signature file is empty" in reasons[str(empty)]


def test_store_signing_key_signs_folder_artifacts(
    store: Store, tmp_path: Path, key: SecretKey
) -> None:
    keyring = StoreKeyring(store.root)
    keyring.set_signing_key(key.armored)
    make_version(tmp_path / "src", "1.0.0")
    run(store, scan_folder(tmp_path / "src", "snapshot"), keyring=keyring)
    digest = stage_digests(store, "snapshot")[("hello_nginx", "1.0.0")]
    rec = store.catalog.get_artifact(digest)
    assert rec is not None and rec.signature_digest is not None
    from package_storage.store.keyring import verify_artifact

    result = verify_artifact(
        keyring, store.blobs.get(digest), store.blobs.get(rec.signature_digest)
    )
    assert result.ok
    again = run(store, scan_folder(tmp_path / "src", "snapshot"), keyring=keyring)
    assert len(again.skipped) == 1


def test_broken_zip_is_rejected(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "zips"
    out.mkdir()
    (out / "broken-1.0.0.zip").write_bytes(b"PK\x03\x04 not really a zip")
    report = run(store, scan_folder(out, "snapshot"), options=REPORT)
    assert report.rejected and "zip" in report.rejected[0].reason


def test_same_version_twice_in_one_run_is_a_conflict(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    folder = make_version(src, "1.0.0")
    make_zip(folder, src)
    report = run(store, scan_folder(src, "snapshot"), options=REPORT)
    assert len(report.imported) == 1
    assert "already imported into snapshot" in report.rejected[0].reason


def test_export_bundle_imports_into_another_store(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for v in ("1.0.0", "1.0.1"):
        make_version(src, v)
    run(store, scan_folder(src, "production"))
    export_bundle(
        store.catalog,
        store.blobs,
        "production",
        tmp_path / "bundle",
        kibana_version=None,
        latest=None,
    )
    with Store.init(tmp_path / "other") as other:
        report = import_sources(
            other.service("t"), scan_folder(tmp_path / "bundle", "production"), options=INLINE
        )
        assert len(report.imported) == 2
        assert stage_digests(other, "production") == stage_digests(store, "production")


def test_process_pool_gives_the_same_artifacts(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(10):
        make_version(src, f"1.0.{i}")
    break_package(src / "hello_nginx" / "1.0.4")
    pooled = run(
        store, scan_folder(src, "snapshot"), options=ImportOptions(workers=2, on_invalid="report")
    )
    assert pooled.workers == 2
    assert len(pooled.imported) == 9 and len(pooled.rejected) == 1
    with Store.init(tmp_path / "other") as other:
        inline = import_sources(other.service("t"), scan_folder(src, "snapshot"), options=REPORT)
        assert len(inline.imported) == 9
        assert stage_digests(other, "snapshot") == stage_digests(store, "snapshot")
    # the order of the report is the order of the sources, whatever the workers did
    assert [v.version for v in pooled.imported] == [v.version for v in inline.imported]


# --- git -------------------------------------------------------------------------------------


@pytest.fixture
def packages(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "pkgs"
    made = {f"hello_nginx/{v}": make_version(root, v) for v in ("1.0.0", "1.1.0", "1.2.0", "2.0.0")}
    made["acme_input/1.0.0"] = make_version(root, "1.0.0", source=ACME)
    made["broken/1.0.0"] = break_package(make_version(root / "b", "1.0.0"))
    return made


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_git_branches_become_stages_and_half_done_promotions_end_up_once(
    store: Store, tmp_path: Path, packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(
        tmp_path,
        {
            "production": {
                "hello_nginx/1.0.0": packages["hello_nginx/1.0.0"],
                "acme_input/1.0.0": packages["acme_input/1.0.0"],
            },
            "staging": {
                "hello_nginx/1.0.0": packages["hello_nginx/1.0.0"],  # half-done promotion
                "hello_nginx/1.1.0": packages["hello_nginx/1.1.0"],
            },
            "snapshot": {
                "hello_nginx/1.1.0": packages["hello_nginx/1.1.0"],
                "hello_nginx/2.0.0": packages["hello_nginx/2.0.0"],
                "broken/1.0.0": packages["broken/1.0.0"],
            },
        },
    )
    graph = store.catalog.stages()
    plan = plan_git_import(repo, importer.default_branches(graph), graph)
    assert [(s, b) for s, b, _ in plan.branches] == [
        ("production", "production"),
        ("staging", "staging"),
        ("snapshot", "snapshot"),
    ]
    assert [(d.name, d.version, d.kept, d.dropped) for d in plan.duplicates] == [
        ("hello_nginx", "1.0.0", "production", (("staging", True),)),
        ("hello_nginx", "1.1.0", "staging", (("snapshot", True),)),
    ]
    report = run(store, list(plan.sources), options=REPORT, duplicates=plan.duplicates)
    assert [(r.stage, r.name) for r in report.rejected] == [("snapshot", "broken")]
    assert set(stage_digests(store, "production")) == {
        ("acme_input", "1.0.0"),
        ("hello_nginx", "1.0.0"),
    }
    assert set(stage_digests(store, "staging")) == {("hello_nginx", "1.1.0")}
    assert set(stage_digests(store, "snapshot")) == {("hello_nginx", "2.0.0")}
    # one run, one batch: one revision per distribution
    for dist in ("production", "staging", "snapshot"):
        assert revision_count(store, dist) == 1
    ev = store.catalog.events(EventFilter(name="acme_input"))[0]
    assert ev.detail["source"] == "git" and ev.detail["branch"] == "production"
    assert ev.detail["commit"] == plan.branches[0][2]
    # the same content from a folder gives the same artifact
    folder_zip = build_zip(FolderTree(packages["hello_nginx/2.0.0"]), "hello_nginx", "2.0.0")
    assert store.blobs.get(stage_digests(store, "snapshot")[("hello_nginx", "2.0.0")]) == (
        folder_zip
    )

    # resumable: nothing is read from git again (tree ids match the recorded fingerprints)
    read_tree = git_tree
    read: list[str] = []

    def tracking_read(pkg: GitPackage, reader: GitReader) -> MemoryTree:
        read.append(pkg.name)
        return read_tree(pkg, reader)

    monkeypatch.setattr(importer, "git_tree", tracking_read)
    again = run(store, list(plan.sources), options=REPORT)
    assert len(again.skipped) == 4 and not again.imported
    assert len(again.rejected) == 1
    assert read == ["broken"]  # only the rejected one is read again
    assert revision_count(store, "production") == 1
    assert again.left_behind == []


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_git_duplicate_already_in_the_lower_stage_is_reported(
    store: Store, tmp_path: Path, packages: dict[str, Path]
) -> None:
    v100 = packages["hello_nginx/1.0.0"]
    graph = store.catalog.stages()
    first = make_repo(tmp_path / "one", {"staging": {"hello_nginx/1.0.0": v100}})
    run(store, list(plan_git_import(first, [("staging", "staging")], graph).sources))
    # later the promotion to production was started but staging was not cleaned up
    second = make_repo(
        tmp_path / "two",
        {"production": {"hello_nginx/1.0.0": v100}, "staging": {"hello_nginx/1.0.0": v100}},
    )
    plan = plan_git_import(second, [("production", "production"), ("staging", "staging")], graph)
    report = run(store, list(plan.sources), duplicates=plan.duplicates)
    assert [(v.stage, v.version) for v in report.imported] == [("production", "1.0.0")]
    assert report.left_behind == [("hello_nginx", "1.0.0", "staging")]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_git_missing_branches_and_other_content_in_two_branches(
    store: Store, tmp_path: Path, packages: dict[str, Path]
) -> None:
    other = make_version(tmp_path / "other", "1.0.0", note="staging copy differs")
    repo = make_repo(
        tmp_path,
        {
            "production": {"hello_nginx/1.0.0": packages["hello_nginx/1.0.0"]},
            "staging": {"hello_nginx/1.0.0": other},
        },
    )
    graph = store.catalog.stages()
    plan = plan_git_import(repo, importer.default_branches(graph), graph)
    assert plan.missing == (("snapshot", "snapshot"),)
    assert plan.duplicates[0].dropped == (("staging", False),)
    with pytest.raises(NotFoundError, match="has none of the branches"):
        plan_git_import(repo, [("snapshot", "nope")], graph)
    with pytest.raises(NotFoundError, match="does not exist"):
        plan_git_import(tmp_path / "missing", [("snapshot", "snapshot")], graph)


def test_validation_none_imports_what_the_rules_refuse_and_records_it(
    store: Store, tmp_path: Path
) -> None:
    from git_history import package_files

    root = tmp_path / "src"
    for rel, data in package_files("exp-1", "1.0.0").items():  # a `-` in the name: refused today
        (root / "exp-1" / "1.0.0" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "exp-1" / "1.0.0" / rel).write_bytes(data)
    refused = run(store, importer.scan_folder(root, "snapshot"), options=REPORT)
    assert len(refused.rejected) == 1
    report = run(
        store,
        importer.scan_folder(root, "snapshot"),
        options=ImportOptions(workers=0, validation="none"),
    )
    assert [v.version for v in report.imported] == ["1.0.0"]
    (event,) = store.catalog.events(EventFilter(action="import"))
    assert event.detail["validation"] == "none"
