"""The service-level contract: publish, promote, remove, yank, tag, rollback, revisions, fsck
and check behave the same on every store combination (``conftest.py``: SQLite or PostgreSQL
catalog x folder or S3 blobs), and copy-store moves a store between any of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_service import make_package

from package_storage.errors import PolicyError
from package_storage.packages.signing import generate_key, public_key_of, verify_detached
from package_storage.store.keyring import PASSPHRASE_ENV
from package_storage.store.storage.base import content_digest
from package_storage.transfer.copystore import copy_store
from service_contract.combinations import Combination, open_combination


def state(combo: Combination) -> tuple[Any, ...]:
    cat = combo.catalog
    names = cat.stages().names
    return (
        {st: cat.entries(st) for st in names},
        {d: cat.revisions(d) for d in names},
        cat.distributions(),
        cat.events(),
        cat.tags(),
        cat.change_counter(),
        cat.referenced_blobs(),
    )


def served(combo: Combination, distribution: str) -> dict[tuple[str, str], str]:
    rev = combo.catalog.current_revision(distribution)
    assert rev is not None
    return {
        (e.name, e.version): e.artifact
        for e in combo.catalog.revision_entries(distribution, rev.number)
    }


def assert_digests(combo: Combination) -> None:
    """Every revision's stored digest is the content digest of what it serves."""
    for dist in combo.catalog.distributions():
        for rev in combo.catalog.revisions(dist):
            entries = combo.catalog.revision_entries(dist, rev.number)
            assert rev.digest == content_digest((e.name, e.version, e.artifact) for e in entries)
            assert rev.count == len(entries)


def test_publish_promote_and_cascade(combo: Combination, tmp_path: Path) -> None:
    svc = combo.service()
    first = svc.publish(make_package(tmp_path / "p", "1.0.0"))
    assert first.changed and {r.distribution for r in first.revisions} == {"snapshot"}
    (entry,) = combo.catalog.entries("snapshot")
    assert combo.blobs.verify(entry.artifact)
    assert svc.publish(make_package(tmp_path / "p", "1.0.0")).changed is False  # same bytes
    promoted = svc.promote("hello_nginx", "1.0.0", to="staging")
    assert {r.distribution for r in promoted.revisions} == {"snapshot", "staging"}
    svc.promote("hello_nginx", "1.0.0", to="production")
    assert served(combo, "production") == {("hello_nginx", "1.0.0"): entry.artifact}
    assert served(combo, "snapshot") == served(combo, "production")  # snapshot sees production
    assert [e.action for e in combo.catalog.events()] == ["publish", "promote", "promote"]
    assert_digests(combo)


def test_remove_yank_tag_rollback_and_revisions(combo: Combination, tmp_path: Path) -> None:
    svc = combo.service()
    for version in ("1.0.0", "1.1.0"):
        svc.publish(make_package(tmp_path / "p", version))
        svc.promote("hello_nginx", version, to="staging")
        svc.promote("hello_nginx", version, to="production")
    tag = svc.tag("production", "two")
    svc.publish(make_package(tmp_path / "p", "1.2.0"))
    svc.promote("hello_nginx", "1.2.0", to="staging")
    svc.promote("hello_nginx", "1.2.0", to="production")
    svc.yank("hello_nginx", "1.1.0", stage="production", reason="broken")
    (yanked,) = [e for e in combo.catalog.entries("production") if e.yanked]
    assert yanked.version == "1.1.0"
    tagged = combo.catalog.tag("production", "two")
    assert tagged.revision == tag.revision
    rolled = svc.rollback("production", "two", reason="back to two")
    assert rolled.changed
    current = combo.catalog.current_revision("production")
    assert current is not None and current.number == tag.revision
    assert set(served(combo, "production")) == {("hello_nginx", "1.0.0"), ("hello_nginx", "1.1.0")}
    # 1.2.0 went back to staging, where it was promoted from: nothing lost
    assert [e.version for e in combo.catalog.entries("staging")] == ["1.2.0"]
    svc.publish(make_package(tmp_path / "p", "2.0.0"))
    svc.remove("hello_nginx", "2.0.0", stage="snapshot", reason="gone")
    assert combo.catalog.entries("snapshot") == []
    numbers = [r.number for r in combo.catalog.revisions("production")]
    assert numbers == sorted(numbers) and numbers[0] == 1
    assert_digests(combo)
    report = svc.fsck()
    assert report.ok and not report.orphaned, report


def test_refusals_change_nothing(combo: Combination, tmp_path: Path) -> None:
    svc = combo.service()
    svc.publish(make_package(tmp_path / "p", "1.0.0"))
    svc.promote("hello_nginx", "1.0.0", to="staging")
    svc.promote("hello_nginx", "1.0.0", to="production")
    before = state(combo)
    with pytest.raises(PolicyError):
        svc.publish(make_package(tmp_path / "p", "1.0.1"), stage="production")
    with pytest.raises(PolicyError):
        svc.remove("hello_nginx", "1.0.0", stage="production", reason="no")
    with pytest.raises(PolicyError):
        svc.promote("hello_nginx", "1.0.0", to="snapshot")
    assert state(combo) == before


def test_a_second_opener_sees_every_change(combo: Combination, tmp_path: Path) -> None:
    svc = combo.service()
    svc.publish(make_package(tmp_path / "p", "1.0.0"))
    other = combo.reopen()
    try:
        assert other.change_counter() == combo.catalog.change_counter()
        assert other.entries("snapshot") == combo.catalog.entries("snapshot")
        assert other.revisions("snapshot") == combo.catalog.revisions("snapshot")
    finally:
        other.close()


def test_fsck_finds_a_missing_blob(combo: Combination, tmp_path: Path) -> None:
    svc = combo.service()
    svc.publish(make_package(tmp_path / "p", "1.0.0"))
    assert svc.fsck().ok and combo.catalog.check(deep=True) == []
    (entry,) = combo.catalog.entries("snapshot")
    combo.blobs.delete(entry.artifact)
    report = svc.fsck()
    assert not report.ok and report.missing == (entry.artifact,)


def test_publish_signs_with_the_store_key(
    combo: Combination, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "contract")
    key = generate_key("Contract <c@example.com>")
    combo.keyring().set_signing_key(key.armored)
    combo.service().publish(make_package(tmp_path / "p", "1.0.0"))
    (entry,) = combo.catalog.entries("snapshot")
    artifact = combo.catalog.get_artifact(entry.artifact)
    assert artifact is not None and artifact.signature_digest is not None
    data, sig = combo.blobs.get(entry.artifact), combo.blobs.get(artifact.signature_digest)
    assert verify_detached([public_key_of(key)], data, sig).ok
    assert combo.service().verify("hello_nginx", "1.0.0")[0].ok


def test_copy_store_to_and_from_the_default_combination(
    combo: Combination, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "contract")
    svc = combo.service()
    combo.keyring().set_signing_key(generate_key("Copy").armored)
    combo.keyring().add_trusted(public_key_of(generate_key("Trusted")).armored)
    for version in ("1.0.0", "1.1.0"):
        svc.publish(make_package(tmp_path / "p", version))
    svc.promote("hello_nginx", "1.0.0", to="staging")
    svc.tag("staging", "t1")
    svc.yank("hello_nginx", "1.1.0", stage="snapshot", reason="bad")
    svc.create_token("ci", ["publish:snapshot"])
    with open_combination("sqlite+folder", tmp_path / "default") as middle:
        there = copy_store(combo, middle)
        assert there.same, there.problems
        assert state(middle) == state(combo)
        with open_combination(combo.name, tmp_path / "back") as back:
            again = copy_store(middle, back)
            assert again.same, again.problems
            assert state(back) == state(combo)
            assert back.service().fsck().ok
            keyring = back.keyring()
            assert keyring.signing_key() is not None and len(keyring.trusted_keys()) == 1
            assert [t.name for t in back.catalog.tokens()] == ["ci"]
            # the copy takes the next change: ids and sequences continue after the copied ones
            last = back.catalog.events()[-1].id
            back.service().publish(make_package(tmp_path / "p", "2.0.0"))
            assert [e.id for e in back.catalog.events()][-1] > last
            assert back.catalog.check(deep=True) == []
