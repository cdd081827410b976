"""Rules of the store service (publish / promote / remove / tag / rollback / history / fsck).

Packages are built from the project's own valid examples (``examples/packages``): copied to a
temporary folder, with the version rewritten in ``manifest.yml`` and ``changelog.yml``.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from package_storage.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PolicyError,
    UnsafePackageError,
)
from package_storage.packages.artifacts import build_zip
from package_storage.packages.signing import generate_key, sign_detached
from package_storage.packages.trees import FolderTree
from package_storage.store.directory import Store
from package_storage.store.service import (
    ChangeResult,
    PublishValidationError,
    StoreService,
    check_tag_name,
    event_title,
)
from package_storage.store.storage.base import ArtifactRecord, Event, EventFilter, content_digest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "packages"

MakePackage = Callable[..., Path]


def make_package(
    root: Path,
    version: str,
    *,
    name: str = "hello_nginx",
    base: str = "hello_nginx/1.1.0",
    extra: str = "",
) -> Path:
    """A valid package folder ``root/<name>/<version>`` built from an example package.

    ``extra`` is appended to the README, so the same version can be built with other bytes.
    """
    dest = root / name / version
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(EXAMPLES / base, dest)
    manifest = dest / "manifest.yml"
    text = manifest.read_text()
    text = re.sub(r"(?m)^version: .*$", f"version: {version}", text, count=1)
    text = re.sub(r"(?m)^name: .*$", f"name: {name}", text, count=1)
    manifest.write_text(text)
    changelog = dest / "changelog.yml"
    changelog.write_text(
        f'- version: "{version}"\n'
        "  changes:\n"
        f"    - description: Release {version}.\n"
        "      type: enhancement\n"
        f"      link: https://example.com/package-storage/{name}/{version}\n"
    )
    if extra:
        readme = dest / "docs" / "README.md"
        readme.write_text(readme.read_text() + f"\n{extra}\n")
    return dest


def make_zip(folder: Path, dest_dir: Path, *, signature: bytes | None = None) -> Path:
    """The folder packaged as ``dest_dir/<name>-<version>.zip`` (and its ``.sig``)."""
    name, version = folder.parent.name, folder.name
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{name}-{version}.zip"
    path.write_bytes(build_zip(FolderTree(folder), name, version))
    if signature is not None:
        path.with_name(path.name + ".sig").write_bytes(signature)
    return path


# A real armored detached signature (of other bytes): the store checks that a .sig parses, and
# verifies it only against trusted keys (none are configured in these tests).
SIGNATURE = sign_detached(generate_key("Service Tests <tests@example.com>"), b"other bytes")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store.init(tmp_path / "store")
    try:
        yield st
    finally:
        st.close()


@pytest.fixture
def svc(store: Store) -> StoreService:
    return store.service("tester")


@pytest.fixture
def pkg(tmp_path: Path) -> MakePackage:
    root = tmp_path / "packages"

    def make(version: str, **kwargs: Any) -> Path:
        return make_package(root, version, **kwargs)

    return make


def state(store: Store, *, blobs: bool = True) -> tuple[Any, ...]:
    """Everything an operation could change in the catalog, plus (with ``blobs``) the set of
    blobs."""
    cat = store.catalog
    names = cat.stages().names
    catalog = (
        {st: cat.entries(st) for st in names},
        {d: cat.revisions(d) for d in names},
        cat.distributions(),
        cat.events(),
        cat.tags(),
        cat.change_counter(),
        cat.referenced_blobs(),
    )
    return (*catalog, sorted(store.blobs.iter_digests())) if blobs else catalog


def served(store: Store, distribution: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(name, version) -> (artifact, stage) of the distribution's current revision."""
    rev = store.catalog.current_revision(distribution)
    assert rev is not None
    return {
        (e.name, e.version): (e.artifact, e.stage)
        for e in store.catalog.revision_entries(distribution, rev.number)
    }


def numbers(result: ChangeResult) -> dict[str, int]:
    return {r.distribution: r.number for r in result.revisions}


def to_production(svc: StoreService, path: Path, name: str, version: str) -> None:
    svc.publish(path)
    svc.promote(name, version, to="staging")
    svc.promote(name, version, to="production")


# --- publish ---------------------------------------------------------------------------------


def test_publish_folder_stores_deterministic_zip_and_records_event(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    folder = pkg("1.2.3")
    result = svc.publish(folder)
    assert result.changed
    assert numbers(result) == {"snapshot": 1}  # only snapshot sees snapshot
    entry = store.catalog.get_entry("snapshot", "hello_nginx", "1.2.3")
    assert entry is not None and entry.added_by == "tester"
    expected = build_zip(FolderTree(folder), "hello_nginx", "1.2.3")
    assert store.blobs.get(entry.artifact) == expected
    record = store.catalog.get_artifact(entry.artifact)
    assert record is not None
    assert record.size == len(expected)
    assert record.signature_digest is None
    assert record.manifest["title"] == "Hello NGINX"
    assert record.manifest["type"] == "integration"
    assert record.manifest["release"] == "ga"
    assert record.manifest["format_version"] == "3.1.0"
    assert record.manifest["kibana_version"] == "^8.13.0 || ^9.0.0"
    assert result.event is not None
    assert result.event.action == "publish"
    assert result.event.actor == "tester"
    assert result.event.detail["digest"] == entry.artifact
    assert event_title(result.event) == "[snapshot] Publish hello_nginx-1.2.3"
    assert served(store, "snapshot") == {("hello_nginx", "1.2.3"): (entry.artifact, "snapshot")}
    assert svc.fsck().ok


def test_publish_stores_the_derived_document_a_server_reads(
    store: Store, svc: StoreService, pkg: MakePackage, tmp_path: Path
) -> None:
    """Publish (folder or zip) keeps the package document and search entry of the artifact
    (``DIR/derived``), equal to what reading the stored zip gives; a server reads it instead
    of the zip."""
    from package_storage.packages import render
    from package_storage.packages.derived import load_package
    from package_storage.packages.manifest import read_package
    from package_storage.packages.trees import ZipTree
    from package_storage.serving.store_registry import StoreRegistry

    folder = pkg("1.2.3")
    svc.publish(folder)
    zipped = make_zip(pkg("1.2.4"), tmp_path / "zips")
    svc.publish(zipped)
    for version in ("1.2.3", "1.2.4"):
        entry = store.catalog.get_entry("snapshot", "hello_nginx", version)
        assert entry is not None
        data = store.derived.get(entry.artifact)
        assert data is not None, version
        tree = ZipTree.from_bytes(store.blobs.get(entry.artifact), version)
        back = load_package(data, tree)
        expected = read_package(tree, validate=False)
        assert back is not None
        assert render.dumps(back.document) == render.dumps(expected.document)
        assert render.dumps(back.search_entry) == render.dumps(expected.search_entry)
    registry = StoreRegistry(store.catalog, store.blobs, derived=store.derived)
    assert registry.current["snapshot"].parsed == 0
    assert svc.fsck().ok  # derived documents are no blobs: nothing orphaned


def test_publish_identical_bytes_again_is_a_no_op(
    store: Store, svc: StoreService, pkg: MakePackage, tmp_path: Path
) -> None:
    folder = pkg("1.2.3")
    svc.publish(folder)
    before = state(store)
    again = svc.publish(folder)
    assert not again.changed and again.event is None and again.revisions == ()
    assert "already in snapshot" in again.message
    # The same bytes as a zip are the same artifact: still nothing to do.
    zipped = make_zip(folder, tmp_path / "zips")
    assert not svc.publish(zipped).changed
    assert state(store) == before


def test_publish_zip_stores_bytes_as_they_are_with_signature(
    store: Store, svc: StoreService, pkg: MakePackage, tmp_path: Path
) -> None:
    zipped = make_zip(pkg("2.0.0"), tmp_path / "zips", signature=SIGNATURE)
    result = svc.publish(zipped)
    entry = store.catalog.get_entry("snapshot", "hello_nginx", "2.0.0")
    assert entry is not None
    assert store.blobs.get(entry.artifact) == zipped.read_bytes()
    record = store.catalog.get_artifact(entry.artifact)
    assert record is not None and record.signature_digest is not None
    assert store.blobs.get(record.signature_digest) == SIGNATURE
    assert record.manifest["source"] == "zip"
    assert result.event is not None and result.event.detail["signature"] == record.signature_digest
    (location,) = svc.show("hello_nginx", "2.0.0")
    assert location.signed and location.artifact_size == zipped.stat().st_size
    assert svc.fsck().ok


def test_publish_same_zip_later_with_signature_adds_it(
    store: Store, svc: StoreService, pkg: MakePackage, tmp_path: Path
) -> None:
    zipped = make_zip(pkg("2.0.0"), tmp_path / "zips")
    svc.publish(zipped)
    zipped.with_name(zipped.name + ".sig").write_bytes(SIGNATURE)
    result = svc.publish(zipped)
    assert result.changed
    assert result.event is not None
    assert event_title(result.event) == "[snapshot] Publish hello_nginx-2.0.0 (signature added)"
    (location,) = svc.show("hello_nginx", "2.0.0")
    assert location.signed
    # Now fully identical: a no-op.
    assert not svc.publish(zipped).changed


def test_publish_bytes_and_unknown_path(
    store: Store, svc: StoreService, pkg: MakePackage, tmp_path: Path
) -> None:
    data = build_zip(FolderTree(pkg("3.0.0")), "hello_nginx", "3.0.0")
    result = svc.publish_bytes(data, location="upload.zip", signature=SIGNATURE)
    assert result.changed
    entry = store.catalog.get_entry("snapshot", "hello_nginx", "3.0.0")
    assert entry is not None and store.blobs.get(entry.artifact) == data
    with pytest.raises(NotFoundError, match="does-not-exist"):
        svc.publish(tmp_path / "does-not-exist")


def test_overwrite_in_snapshot_is_allowed_and_recorded(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    first = svc.publish(pkg("1.0.0"))
    second = svc.publish(pkg("1.0.0", extra="other bytes"))
    assert second.changed and second.event is not None
    assert second.event.action == "overwrite"
    assert first.event is not None
    assert second.event.detail["previous"] == first.event.detail["digest"]
    assert second.event.detail["digest"] != first.event.detail["digest"]
    assert event_title(second.event) == "[snapshot] Overwrite hello_nginx-1.0.0"
    assert numbers(second) == {"snapshot": 2}
    # The old revision still serves the old bytes.
    (old,) = store.catalog.revision_entries("snapshot", 1)
    assert old.artifact == first.event.detail["digest"]


@pytest.mark.parametrize(
    ("stage", "rule"),
    [
        ("staging", "stage staging is filled by promotion from snapshot: publish to snapshot"),
        ("production", "stage production is filled by promotion from staging"),
    ],
)
def test_publish_into_promotion_stage_is_refused_and_changes_nothing(
    store: Store, svc: StoreService, pkg: MakePackage, stage: str, rule: str
) -> None:
    svc.publish(pkg("1.0.0"))
    before = state(store)
    with pytest.raises(PolicyError, match=re.escape(rule)):
        svc.publish(pkg("1.1.0"), stage=stage)
    after = state(store)
    # The blob was written before the refusal: an orphan, never referenced.
    assert after[:7] == before[:7]
    assert set(after[7]) - set(before[7]) <= set(svc.fsck().orphaned)


def test_publish_unknown_stage(svc: StoreService, pkg: MakePackage) -> None:
    with pytest.raises(NotFoundError, match="stage nightly does not exist"):
        svc.publish(pkg("1.0.0"), stage="nightly")


def test_validation_failure_lists_every_problem_and_changes_nothing(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    svc.publish(pkg("1.0.0"))
    before = state(store)
    bad = pkg("1.1.0")
    (bad / "changelog.yml").unlink()
    (bad / "docs" / "README.md").unlink()
    with pytest.raises(PublishValidationError) as info:
        svc.publish(bad)
    rules = {p.rule for p in info.value.problems}
    assert {"changelog-missing"} <= rules and len(info.value.problems) >= 2
    message = str(info.value)
    assert message.startswith(str(bad))
    assert "changelog.yml: changelog.yml does not exist [changelog-missing]" in message
    assert state(store) == before  # validation runs before any blob is written


def test_version_mismatch_with_folder_name_is_refused(
    store: Store, svc: StoreService, pkg: MakePackage, tmp_path: Path
) -> None:
    folder = pkg("1.0.0")
    wrong = folder.parent / "1.0.1"
    folder.rename(wrong)
    before = state(store)
    with pytest.raises(UnsafePackageError, match=r"\[identity-version\]"):
        svc.publish(wrong)
    assert state(store) == before


def _corrupt_member(data: bytes) -> bytes:
    """Flip a byte inside the compressed data of the largest member (CRC no longer matches)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = max(archive.infolist(), key=lambda i: i.compress_size)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    pos = start + info.compress_size // 2
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1 :]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "crc"])
def test_broken_zip_is_refused_naming_it_and_changes_nothing(
    store: Store, svc: StoreService, pkg: MakePackage, tmp_path: Path, damage: str
) -> None:
    svc.publish(pkg("1.0.0"))
    good = make_zip(pkg("1.1.0"), tmp_path / "zips").read_bytes()
    broken = {
        "garbage": b"this is not a zip at all",
        "truncated": good[: len(good) // 2],
        "crc": _corrupt_member(good),
    }[damage]
    path = tmp_path / "zips" / "broken-1.1.0.zip"
    path.write_bytes(broken)
    before = state(store)
    with pytest.raises(UnsafePackageError) as info:  # the archive-safety gate
        svc.publish(path)
    assert str(path) in str(info.value)
    assert "[zip-" in str(info.value)
    assert state(store) == before


# --- promote ---------------------------------------------------------------------------------


def test_promotion_moves_one_step_and_cascades(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    svc.publish(pkg("1.0.0"))
    digest = store.catalog.entries("snapshot")[0].artifact
    to_staging = svc.promote("hello_nginx", "1.0.0", to="staging")
    assert store.catalog.get_entry("snapshot", "hello_nginx", "1.0.0") is None
    staged = store.catalog.get_entry("staging", "hello_nginx", "1.0.0")
    assert staged is not None and staged.artifact == digest
    assert numbers(to_staging) == {"staging": 1, "snapshot": 2}
    assert to_staging.event is not None
    assert event_title(to_staging.event) == "[staging] Promote hello_nginx-1.0.0 from snapshot"
    assert to_staging.event.detail["from"] == "snapshot"

    to_prod = svc.promote("hello_nginx", "1.0.0", to="production", source="staging")
    # A promotion to production makes new revisions of production, staging and snapshot.
    assert numbers(to_prod) == {"production": 1, "staging": 2, "snapshot": 3}
    assert to_prod.event is not None
    assert event_title(to_prod.event) == "[production] Promote hello_nginx-1.0.0 from staging"
    for dist in ("production", "staging", "snapshot"):
        assert served(store, dist) == {("hello_nginx", "1.0.0"): (digest, "production")}
    # The version was never in two stages: each revision resolves it from exactly one stage.
    assert store.catalog.revision_entries("staging", 1)[0].stage == "staging"
    assert svc.fsck().ok


def test_promotion_refusals_change_nothing(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    svc.publish(pkg("1.0.0"))
    before = state(store)
    with pytest.raises(
        PolicyError, match="stage snapshot promotes only to staging, not to production"
    ):
        svc.promote("hello_nginx", "1.0.0", to="production", source="snapshot")
    with pytest.raises(
        NotFoundError, match=r"hello_nginx 1\.0\.0 is not in stage staging \(it is in snapshot\)"
    ):
        svc.promote("hello_nginx", "1.0.0", to="production")
    with pytest.raises(
        NotFoundError, match=r"hello_nginx 9\.9\.9 is not in stage snapshot \(it is in no stage\)"
    ):
        svc.promote("hello_nginx", "9.9.9", to="staging")
    with pytest.raises(PolicyError, match="stage snapshot is not filled by promotion"):
        svc.promote("hello_nginx", "1.0.0", to="snapshot")
    with pytest.raises(PolicyError, match="stage production promotes to no stage"):
        svc.promote("hello_nginx", "1.0.0", to="staging", source="production")
    with pytest.raises(NotFoundError, match="stage nightly does not exist"):
        svc.promote("hello_nginx", "1.0.0", to="nightly")
    assert state(store) == before


def test_production_never_takes_other_bytes_for_a_version_it_holds(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    to_production(svc, pkg("1.0.0"), "hello_nginx", "1.0.0")
    svc.publish(pkg("1.0.0", extra="rebuilt"))
    svc.promote("hello_nginx", "1.0.0", to="staging")
    before = state(store)
    with pytest.raises(
        PolicyError,
        match=re.escape(
            "stage production never overwrites a version: hello_nginx 1.0.0 exists with other bytes"
        ),
    ):
        svc.promote("hello_nginx", "1.0.0", to="production", force=True, reason="please")
    assert state(store) == before


def test_staging_overwrite_needs_force_and_reason(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    svc.publish(pkg("1.0.0"))
    svc.promote("hello_nginx", "1.0.0", to="staging")
    old = store.catalog.entries("staging")[0].artifact
    svc.publish(pkg("1.0.0", extra="fixed"))
    new = store.catalog.entries("snapshot")[0].artifact
    before = state(store)
    with pytest.raises(PolicyError, match="stage staging overwrites a version only when forced"):
        svc.promote("hello_nginx", "1.0.0", to="staging")
    with pytest.raises(PolicyError, match="needs --force and --reason"):
        svc.promote("hello_nginx", "1.0.0", to="staging", force=True)
    with pytest.raises(PolicyError, match="needs --force and --reason"):
        svc.promote("hello_nginx", "1.0.0", to="staging", force=True, reason="   ")
    assert state(store) == before
    result = svc.promote("hello_nginx", "1.0.0", to="staging", force=True, reason="bad build")
    assert result.event is not None
    assert result.event.reason == "bad build"
    assert result.event.detail == {
        "from": "snapshot",
        "digest": new,
        "previous": old,
        "already_present": False,
        "forced": True,
    }
    assert event_title(result.event) == "[staging] Promote hello_nginx-1.0.0 from snapshot (forced)"
    assert store.catalog.entries("staging")[0].artifact == new
    assert store.catalog.entries("snapshot") == []


def test_promoting_a_version_already_present_with_same_bytes_removes_it_from_source(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    folder = pkg("1.0.0")
    svc.publish(folder)
    svc.promote("hello_nginx", "1.0.0", to="staging")
    svc.publish(folder)  # same bytes back into snapshot
    result = svc.promote("hello_nginx", "1.0.0", to="staging")
    assert result.changed and result.event is not None
    assert result.event.detail["already_present"] is True
    assert store.catalog.entries("snapshot") == []
    assert len(store.catalog.entries("staging")) == 1


def test_clash_the_more_stable_stage_copy_is_served(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    svc.publish(pkg("1.0.0"))
    svc.promote("hello_nginx", "1.0.0", to="staging")
    staging_digest = store.catalog.entries("staging")[0].artifact
    result = svc.publish(pkg("1.0.0", extra="snapshot rebuild"))
    snapshot_digest = store.catalog.entries("snapshot")[0].artifact
    assert snapshot_digest != staging_digest
    assert "staging holds other bytes" in result.message
    assert served(store, "snapshot") == {("hello_nginx", "1.0.0"): (staging_digest, "staging")}
    (location,) = svc.show("hello_nginx", "1.0.0")
    assert [e.stage for e in location.entries] == ["staging", "snapshot"]
    assert location.digest == staging_digest
    assert [a.digest for a in location.artifacts] == [staging_digest, snapshot_digest]


# --- remove ----------------------------------------------------------------------------------


def test_remove_rules(store: Store, svc: StoreService, pkg: MakePackage) -> None:
    svc.publish(pkg("1.0.0"))
    svc.publish(pkg("1.1.0"))
    svc.publish(pkg("1.2.0"))
    svc.promote("hello_nginx", "1.1.0", to="staging")
    svc.promote("hello_nginx", "1.2.0", to="staging")
    svc.promote("hello_nginx", "1.2.0", to="production")

    removed = svc.remove("hello_nginx", "1.0.0", stage="snapshot", reason="not needed")
    assert removed.event is not None and removed.event.reason == "not needed"
    assert event_title(removed.event) == "[snapshot] Remove hello_nginx-1.0.0"
    assert numbers(removed) == {"snapshot": 7}

    before = state(store)
    with pytest.raises(PolicyError, match="stage staging removes a version only when forced"):
        svc.remove("hello_nginx", "1.1.0", stage="staging", reason="why")
    with pytest.raises(PolicyError, match="stage staging removes a version only with a reason"):
        svc.remove("hello_nginx", "1.1.0", stage="staging", force=True)
    for force in (False, True):
        with pytest.raises(PolicyError, match="stage production never removes a version"):
            svc.remove("hello_nginx", "1.2.0", stage="production", force=force, reason="r")
    with pytest.raises(
        NotFoundError, match=r"hello_nginx 1\.0\.0 is not in stage snapshot \(it is in no stage\)"
    ):
        svc.remove("hello_nginx", "1.0.0", stage="snapshot")
    assert state(store) == before

    forced = svc.remove("hello_nginx", "1.1.0", stage="staging", force=True, reason="broken")
    assert forced.event is not None
    assert event_title(forced.event) == "[staging] Remove hello_nginx-1.1.0 (forced)"
    assert numbers(forced).keys() == {"staging", "snapshot"}
    assert store.catalog.entries("staging") == []


def test_old_revisions_keep_their_entries(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    svc.publish(pkg("1.0.0"))
    svc.publish(pkg("1.1.0"))
    rev2 = store.catalog.revision_entries("snapshot", 2)
    svc.remove("hello_nginx", "1.0.0", stage="snapshot")
    svc.publish(pkg("1.1.0", extra="changed"))
    assert [(e.name, e.version) for e in store.catalog.revision_entries("snapshot", 1)] == [
        ("hello_nginx", "1.0.0")
    ]
    assert store.catalog.revision_entries("snapshot", 2) == rev2
    assert [(e.version) for e in store.catalog.revision_entries("snapshot", 4)] == ["1.1.0"]
    assert store.catalog.check(deep=True) == []


# --- tags ------------------------------------------------------------------------------------


def test_tags_are_permanent(store: Store, svc: StoreService, pkg: MakePackage) -> None:
    to_production(svc, pkg("1.0.0"), "hello_nginx", "1.0.0")
    tag = svc.tag("production", "8.12.0")
    assert (tag.distribution, tag.tag, tag.revision, tag.created_by) == (
        "production",
        "8.12.0",
        1,
        "tester",
    )
    (ev,) = svc.history(EventFilter(action="tag"))
    assert event_title(ev) == "[production] Tag 8.12.0 -> revision 1"
    to_production(svc, pkg("1.1.0"), "hello_nginx", "1.1.0")
    before = state(store)
    for revision in (None, 1, 2):
        with pytest.raises(ConflictError, match=r"production@8\.12\.0 already names revision 1"):
            svc.tag("production", "8.12.0", revision=revision)
    assert state(store) == before
    assert store.catalog.tag("production", "8.12.0").revision == 1
    assert svc.tag("production", "8.13.0", revision=1).revision == 1
    assert [t.tag for t in svc.tags("production")] == ["8.12.0", "8.13.0"]
    assert svc.revisions("production")[0].tags == ("8.12.0", "8.13.0")
    assert svc.resolve_revision("production", "8.12.0").number == 1
    with pytest.raises(NotFoundError, match="distribution production has no revision 9"):
        svc.tag("production", "later", revision=9)
    with pytest.raises(NotFoundError, match="stage nightly does not exist"):
        svc.tag("nightly", "x")


@pytest.mark.parametrize("name", ["8.12.0", "v8.12.0", "release_1", "9.0.0-rc1", "latest"])
def test_tag_names_allowed(name: str) -> None:
    assert check_tag_name(name) == name


@pytest.mark.parametrize("name", ["", "12", "a@b", "a/b", ".hidden", "-x", "sp ace", "x" * 129])
def test_tag_names_refused(store: Store, svc: StoreService, pkg: MakePackage, name: str) -> None:
    svc.publish(pkg("1.0.0"))
    before = state(store)
    with pytest.raises(InvalidInputError, match="is not valid"):
        svc.tag("snapshot", name)
    assert state(store) == before


def test_tag_before_any_revision(svc: StoreService) -> None:
    with pytest.raises(NotFoundError, match="distribution production has no revision yet"):
        svc.tag("production", "8.12.0")


# --- rollback --------------------------------------------------------------------------------


def test_rollback_production_to_tag_and_build_on_it(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    to_production(svc, pkg("1.0.0"), "hello_nginx", "1.0.0")
    svc.tag("production", "8.12.0")
    good = served(store, "production")
    to_production(svc, pkg("1.1.0"), "hello_nginx", "1.1.0")  # the bad change
    staging_before = len(svc.revisions("staging"))
    assert len(svc.revisions("production")) == 2

    result = svc.rollback("production", "8.12.0", reason="1.1.0 breaks Kibana 8.12")
    assert result.changed and result.event is not None
    assert event_title(result.event) == "[production] Rollback to revision 1 (8.12.0)"
    assert result.event.reason == "1.1.0 breaks Kibana 8.12"
    digest = result.event.detail["removed"][0]["digest"]
    assert result.event.detail["removed"] == [
        {"name": "hello_nginx", "version": "1.1.0", "digest": digest, "returned_to": "staging"}
    ]
    assert result.event.detail["restored"] == []
    assert result.event.detail["previous_revision"] == 2
    assert "1 returned to the stage they were promoted from" in result.message
    # The pointer moves back, no new production revision; staging and snapshot get new ones.
    assert len(svc.revisions("production")) == 2
    current = store.catalog.current_revision("production")
    assert current is not None and current.number == 1
    assert served(store, "production") == good
    assert len(svc.revisions("staging")) == staging_before + 1
    # Nothing is lost: 1.1.0 went back to staging, where it came from.
    assert served(store, "staging") == {**good, ("hello_nginx", "1.1.0"): (digest, "staging")}
    assert [e.version for e in store.catalog.entries("production")] == ["1.0.0"]
    assert [e.version for e in store.catalog.entries("staging")] == ["1.1.0"]
    # Tags never move, even through a rollback.
    assert store.catalog.tag("production", "8.12.0").revision == 1
    # show and the package's events say so, with the reason
    (loc,) = svc.show("hello_nginx", "1.1.0")
    assert [e.stage for e in loc.entries] == ["staging"]
    titles = [event_title(e) for e in loc.events]
    assert titles[-2:] == [
        "[staging] Return hello_nginx-1.1.0 from production (the rollback of production)",
        "[production] Rollback takes out hello_nginx-1.1.0: returned to staging",
    ]
    assert {e.reason for e in loc.events[-2:]} == {"1.1.0 breaks Kibana 8.12"}

    # The next change builds on the rolled-back state: 1.1.0 does not come back.
    to_production(svc, pkg("1.2.0"), "hello_nginx", "1.2.0")
    rev = store.catalog.current_revision("production")
    assert rev is not None and rev.number == 3
    assert sorted(v for _, v in served(store, "production")) == ["1.0.0", "1.2.0"]
    # ... and it can be promoted again once fixed
    svc.promote("hello_nginx", "1.1.0", to="production")
    assert sorted(v for _, v in served(store, "production")) == ["1.0.0", "1.1.0", "1.2.0"]
    assert store.catalog.check(deep=True) == []
    assert svc.fsck().ok


def _reachable(store: Store) -> set[tuple[str, str, str]]:
    """(name, version, artifact) served by some distribution's current revision."""
    found: set[tuple[str, str, str]] = set()
    for dist in store.catalog.stages().names:
        rev = store.catalog.current_revision(dist)
        if rev is not None:
            found |= {
                (e.name, e.version, e.artifact)
                for e in store.catalog.revision_entries(dist, rev.number)
            }
    return found


def test_rollback_loses_nothing_reachable_and_dry_run_changes_nothing(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    to_production(svc, pkg("1.0.0"), "hello_nginx", "1.0.0")
    svc.tag("production", "8.12.0")
    to_production(svc, pkg("1.1.0"), "hello_nginx", "1.1.0")
    svc.publish(pkg("1.2.0"))
    svc.promote("hello_nginx", "1.2.0", to="staging")
    svc.promote("hello_nginx", "1.2.0", to="production")
    svc.publish(pkg("1.2.0", extra="a snapshot rebuild"))  # snapshot holds other bytes now
    svc.publish(pkg("1.3.0"))
    before_state = state(store)
    before = _reachable(store)
    latest = svc.revisions("production")[-1].number

    plan = svc.rollback_plan("production", "8.12.0")
    assert state(store) == before_state  # a dry run changes nothing
    assert [(m.action, m.version, m.stage) for m in plan.moves] == [
        ("return", "1.1.0", "staging"),
        ("return", "1.2.0", "staging"),
    ]
    svc.rollback("production", "8.12.0")
    after = _reachable(store)
    assert before <= after, before - after
    # rolling staging back too would send 1.2.0 to snapshot, which holds other bytes:
    # refused (it would be lost) until that copy is gone
    first_staging = svc.revisions("staging")[0].number
    middle = state(store)
    with pytest.raises(PolicyError, match=r"would lose hello_nginx 1\.2\.0: snapshot"):
        svc.rollback("staging", first_staging)
    assert state(store) == middle
    svc.remove("hello_nginx", "1.2.0", stage="snapshot")
    before = _reachable(store)
    svc.rollback("staging", first_staging)
    assert before <= _reachable(store)
    assert sorted(e.version for e in store.catalog.entries("snapshot")) == [
        "1.1.0",
        "1.2.0",
        "1.3.0",
    ]
    # forward again: the versions are taken back from where the rollback put them
    svc.rollback("production", latest)
    assert sorted(e.version for e in store.catalog.entries("production")) == [
        "1.0.0",
        "1.1.0",
        "1.2.0",
    ]
    assert store.catalog.check(deep=True) == []


def test_rollback_restores_removed_and_overwritten_versions(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    svc.publish(pkg("1.0.0"))
    svc.publish(pkg("1.1.0"))  # snapshot rev 2
    rev2 = served(store, "snapshot")
    svc.remove("hello_nginx", "1.0.0", stage="snapshot")
    svc.publish(pkg("1.1.0", extra="overwritten"))
    svc.publish(pkg("1.2.0"))
    result = svc.rollback("snapshot", "2")
    assert result.event is not None
    detail = result.event.detail
    assert [(i["version"]) for i in detail["removed"]] == ["1.2.0"]
    assert [(i["version"], "replaced" in i) for i in detail["restored"]] == [
        ("1.0.0", False),
        ("1.1.0", True),
    ]
    assert event_title(result.event) == "[snapshot] Rollback to revision 2"
    assert served(store, "snapshot") == rev2
    assert {
        (e.name, e.version): (e.artifact, e.stage) for e in store.catalog.entries("snapshot")
    } == rev2
    assert numbers(result) == {"snapshot": 2}  # nothing else sees snapshot
    # Rolling back to where it already is: nothing to do.
    before = state(store)
    again = svc.rollback("snapshot", 2)
    assert not again.changed
    assert state(store) == before


def test_rollback_leaves_versions_served_from_a_more_stable_stage(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    svc.publish(pkg("1.0.0"))
    svc.promote("hello_nginx", "1.0.0", to="staging")
    svc.publish(pkg("1.0.0", extra="shadowed"))  # snapshot holds it too, staging wins
    rev = store.catalog.current_revision("snapshot")
    assert rev is not None
    svc.publish(pkg("1.1.0"))
    svc.rollback("snapshot", rev.number)
    assert [e.version for e in store.catalog.entries("snapshot")] == ["1.0.0"]


def test_rollback_refusals(store: Store, svc: StoreService, pkg: MakePackage) -> None:
    svc.publish(pkg("1.0.0"))
    with store.catalog.transaction() as tx:
        tx.set_stages(tx.stages().with_frozen_stage("production-7.9"))
    before = state(store)
    with pytest.raises(PolicyError, match=r"stage production-7\.9 is frozen"):
        svc.rollback("production-7.9", "1")
    with pytest.raises(NotFoundError, match="distribution snapshot has no tag nope"):
        svc.rollback("snapshot", "nope")
    with pytest.raises(NotFoundError, match="distribution snapshot has no revision 7"):
        svc.rollback("snapshot", "7")
    assert state(store) == before


# --- reads -----------------------------------------------------------------------------------


def test_history_show_diff_and_lists(store: Store, svc: StoreService, pkg: MakePackage) -> None:
    svc.publish(pkg("1.0.0"))
    svc.publish(pkg("1.1.0"))
    svc.publish(pkg("1.0.0", name="other_pkg"))
    svc.promote("hello_nginx", "1.0.0", to="staging")
    svc.publish(pkg("1.0.0", extra="again"))
    titles = [event_title(e) for e in svc.history()]
    assert titles == [
        "[snapshot] Publish hello_nginx-1.0.0",
        "[snapshot] Publish hello_nginx-1.1.0",
        "[snapshot] Publish other_pkg-1.0.0",
        "[staging] Promote hello_nginx-1.0.0 from snapshot",
        "[snapshot] Publish hello_nginx-1.0.0",
    ]
    assert [e.id for e in svc.history(EventFilter(stage="staging"))] == [4]
    assert len(svc.history(EventFilter(name="other_pkg"))) == 1
    with pytest.raises(NotFoundError):
        svc.history(EventFilter(stage="nightly"))

    locations = svc.show("hello_nginx")
    assert [loc.version for loc in locations] == ["1.0.0", "1.1.0"]
    assert [e.action for e in locations[0].events] == ["publish", "promote", "publish"]
    assert [e.stage for e in locations[0].entries] == ["staging", "snapshot"]
    with pytest.raises(NotFoundError, match="package nothing is in no stage"):
        svc.show("nothing")
    svc.remove("hello_nginx", "1.1.0", stage="snapshot")
    (gone,) = svc.show("hello_nginx", "1.1.0")
    assert gone.entries == () and [e.action for e in gone.events] == ["publish", "remove"]

    diff = svc.diff("snapshot", "staging")
    assert [(e.name, e.version) for e in diff.only_a] == [("other_pkg", "1.0.0")]
    assert diff.only_b == ()
    assert [(a.version, b.version) for a, b in diff.different] == [("1.0.0", "1.0.0")]
    assert not diff.same

    assert [(e.stage, e.name) for e in svc.list_entries()] == [
        ("staging", "hello_nginx"),
        ("snapshot", "hello_nginx"),
        ("snapshot", "other_pkg"),
    ]
    assert len(svc.list_entries(stage="snapshot")) == 2
    dist = svc.list_entries(distribution="snapshot")
    assert [(e.name, e.version, e.stage) for e in dist] == [
        ("hello_nginx", "1.0.0", "staging"),
        ("other_pkg", "1.0.0", "snapshot"),
    ]
    assert len(svc.list_entries(distribution="snapshot", revision="1")) == 1
    assert svc.list_entries(distribution="production") == []
    assert svc.revisions("production") == []
    with pytest.raises(NotFoundError):
        svc.revisions("nightly")


def test_event_titles() -> None:
    def ev(action: str, stage: str | None, **detail: Any) -> Event:
        return Event(1, datetime.now(UTC), "me", action, stage, "apache", "1.2.3", None, detail)

    assert event_title(ev("publish", "snapshot")) == "[snapshot] Publish apache-1.2.3"
    assert (
        event_title(ev("promote", "staging", **{"from": "snapshot"}))
        == "[staging] Promote apache-1.2.3 from snapshot"
    )
    assert (
        event_title(ev("overwrite", "staging", forced=True))
        == "[staging] Overwrite apache-1.2.3 (forced)"
    )
    assert event_title(ev("remove", "snapshot")) == "[snapshot] Remove apache-1.2.3"
    tag = Event(
        2,
        datetime.now(UTC),
        "me",
        "tag",
        "production",
        None,
        None,
        None,
        {"tag": "8.12.0", "revision": 7},
    )
    assert event_title(tag) == "[production] Tag 8.12.0 -> revision 7"
    rb = Event(
        3, datetime.now(UTC), "me", "rollback", "production", None, None, None, {"revision": 5}
    )
    assert event_title(rb) == "[production] Rollback to revision 5"


# --- fsck ------------------------------------------------------------------------------------


def test_fsck_reports_and_repairs(
    store: Store, svc: StoreService, pkg: MakePackage, tmp_path: Path
) -> None:
    svc.publish(pkg("1.0.0"))
    svc.publish(make_zip(pkg("1.1.0"), tmp_path / "zips", signature=SIGNATURE))
    report = svc.fsck()
    assert report.ok and report.checked == 3 and report.orphaned == ()

    orphan = store.blobs.put(b"nobody references me")
    report = svc.fsck()
    assert report.ok and report.orphaned == (orphan,)
    repaired = svc.fsck(repair=True)
    assert repaired.repaired == (orphan,)
    assert not store.blobs.exists(orphan)
    assert svc.fsck().orphaned == ()

    digests = sorted(store.catalog.referenced_blobs())
    corrupt_path = store.blobs.path_for(digests[0])
    assert corrupt_path is not None
    corrupt_path.chmod(0o644)
    corrupt_path.write_bytes(b"rotten")
    store.blobs.delete(digests[1])
    report = svc.fsck(repair=True)
    assert not report.ok
    assert report.corrupt == (digests[0],)
    assert report.missing == (digests[1],)
    assert report.repaired == ()


def test_fsck_repair_cannot_lose_the_blob_of_a_publish_in_flight(
    store: Store, svc: StoreService, pkg: MakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsck --repair deletes an orphan between a publish's blob put and its transaction: the
    publish puts the blob back under the write lock."""
    import package_storage.store.service as service_mod

    def repair_now(point: str) -> None:
        if point == "publish:after-blob-put":
            assert svc.fsck(repair=True).repaired  # the new blob is an orphan right now

    monkeypatch.setattr(service_mod, "crash_point", repair_now)
    svc.publish(pkg("1.0.0"))
    report = svc.fsck()
    assert report.ok and report.missing == ()


# --- cost --------------------------------------------------------------------------------------


def _fill(store: Store, count: int) -> None:
    """``count`` versions of a filler package in snapshot, staging and production."""
    with store.catalog.transaction() as tx:
        for i in range(count):
            for stage in ("snapshot", "staging", "production"):
                digest = content_digest([(stage, str(i), "filler")])
                tx.add_artifact(ArtifactRecord(digest, 1, "filler", f"1.{i}.0"))
                tx.put_entry(stage, "filler", f"1.{i}.0", digest, actor="fill")
        for dist in ("production", "staging", "snapshot"):
            tx.new_revision(dist)


def _statements(store: Store, action: Callable[[], object]) -> tuple[int, int]:
    """(SQL statements, SQLite VM steps) that ``action`` runs: the steps grow with the rows a
    statement visits, so a scan over every entry shows up even though it is one statement."""
    statements = 0
    steps = 0

    def before(*_args: object) -> None:
        nonlocal statements
        statements += 1

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    def checkout(dbapi_conn: Any, *_args: object) -> None:
        dbapi_conn.set_progress_handler(step, 1)

    def checkin(dbapi_conn: Any, *_args: object) -> None:
        dbapi_conn.set_progress_handler(None, 1)

    engine = store.catalog.engine
    engine.pool.dispose()  # fresh connections get the handler on checkout
    sa_event.listen(engine, "before_cursor_execute", before)
    sa_event.listen(engine.pool, "checkout", checkout)
    sa_event.listen(engine.pool, "checkin", checkin)
    try:
        action()
    finally:
        sa_event.remove(engine, "before_cursor_execute", before)
        sa_event.remove(engine.pool, "checkout", checkout)
        sa_event.remove(engine.pool, "checkin", checkin)
    return statements, steps


def _operation_statements(root: Path, pkg: MakePackage, op: str, size: int) -> tuple[int, int]:
    with Store.init(root) as store:
        svc = store.service("tester")
        _fill(store, size)
        folder = pkg("5.0.0")
        if op == "publish":
            count = _statements(store, lambda: svc.publish(folder))
        else:
            svc.publish(folder)
            count = _statements(store, lambda: svc.promote("hello_nginx", "5.0.0", to="staging"))
        assert store.catalog.check() == []
        return count


@pytest.mark.parametrize("op", ["publish", "promote"])
def test_operation_cost_does_not_grow_with_store_size(
    tmp_path: Path, pkg: MakePackage, op: str
) -> None:
    """The SQL statements of a publish/promote are the same for 10 and 400 stored versions
    (no operation reads all entries)."""
    counts = [
        _operation_statements(tmp_path / f"store-{size}", pkg, op, size) for size in (10, 400)
    ]
    (small_statements, small_steps), (large_statements, large_steps) = counts
    assert small_statements == large_statements
    # 1,170 more rows per stage: a scan over them would cost thousands of steps more.
    assert large_steps - small_steps < 300


# --- yank ------------------------------------------------------------------------------------


def test_yank_hides_a_release_from_search_but_keeps_it_downloadable(
    store: Store, svc: StoreService, pkg: MakePackage
) -> None:
    import asyncio

    import httpx

    from package_storage.registry.http.app import AppOptions, create_app
    from package_storage.serving.store_registry import StoreRegistry

    to_production(svc, pkg("1.0.0"), "hello_nginx", "1.0.0")
    to_production(svc, pkg("1.1.0"), "hello_nginx", "1.1.0")
    before = len(svc.revisions("production"))
    with pytest.raises(PolicyError, match="needs a reason"):
        svc.yank("hello_nginx", "1.1.0", stage="production", reason="")
    with pytest.raises(NotFoundError, match="not in stage production"):
        svc.yank("hello_nginx", "9.9.9", stage="production", reason="bad")
    result = svc.yank("hello_nginx", "1.1.0", stage="production", reason="breaks ingest")
    assert result.changed and result.event is not None
    assert event_title(result.event) == "[production] Yank hello_nginx-1.1.0"
    assert result.event.reason == "breaks ingest"
    assert len(svc.revisions("production")) == before + 1  # servers see the change
    assert not svc.yank("hello_nginx", "1.1.0", stage="production", reason="again").changed
    # marked in list and show; nothing removed
    listed = {e.version: e.yanked for e in svc.list_entries(distribution="production")}
    assert listed == {"1.0.0": False, "1.1.0": True}
    (loc,) = svc.show("hello_nginx", "1.1.0")
    assert [(e.stage, e.yanked) for e in loc.entries] == [("production", True)]
    assert loc.events[-1].action == "yank"
    # served: not in /search or /categories (latest is 1.0.0), still there by exact version
    registry = StoreRegistry(store.catalog, store.blobs)
    app = create_app(
        registry,
        AppOptions(
            cache_time_index=1.0,
            cache_time_search=1.0,
            cache_time_categories=1.0,
            cache_time_catch_all=1.0,
        ),
    )

    def get(target: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get(target)

        return asyncio.run(go())

    latest = get("/search?package=hello_nginx").json()
    assert [e["version"] for e in latest] == ["1.0.0"]
    every = get("/search?package=hello_nginx&all=true").json()
    assert [e["version"] for e in every] == ["1.0.0"]
    assert get("/snapshot/search?package=hello_nginx").json()[0]["version"] == "1.0.0"
    doc = get("/package/hello_nginx/1.1.0/")
    assert doc.status_code == 200 and doc.json()["yanked"] is True
    assert "yanked" not in get("/package/hello_nginx/1.0.0/").json()
    zipped = get("/epr/hello_nginx/hello_nginx-1.1.0.zip")
    assert zipped.status_code == 200 and zipped.content == store.blobs.get(loc.entries[0].artifact)
    # the revision before the yank still lists it
    old = get(f"/production@{before}/search?package=hello_nginx&all=true").json()
    assert [e["version"] for e in old] == ["1.0.0", "1.1.0"]
    # unyank lists it again
    svc.yank("hello_nginx", "1.1.0", stage="production", reason="fixed upstream", yanked=False)
    registry.refresh()
    assert [e["version"] for e in get("/search?package=hello_nginx").json()] == ["1.1.0"]
    assert [e.action for e in svc.show("hello_nginx", "1.1.0")[0].events][-2:] == [
        "yank",
        "unyank",
    ]
    # a frozen stage refuses
    with store.catalog.transaction() as tx:
        tx.set_stages(tx.stages().with_frozen_stage("production-7.9"))
    with pytest.raises(PolicyError, match="frozen"):
        svc.yank("hello_nginx", "1.1.0", stage="production-7.9", reason="x")
    assert store.catalog.check(deep=True) == []
