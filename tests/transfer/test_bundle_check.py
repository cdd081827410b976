"""An export bundle is verified before anything of it is imported (transfer/bundle.py).

A store with a signing key publishes two versions, promotes them to production and exports a
bundle (which carries the store's public key). Every alteration of the bundle (a zip, a .sig,
SHA256SUMS, bundle.json, an extra file, a missing file, a link, a forgery that keeps the
checksums consistent) refuses the whole import with one line naming the file and the rule;
the target store is unchanged (catalog and blobs). A good bundle imports, and with the
exporting store's key trusted, signatures are verified: a bad or missing one is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from test_service import make_package

from package_storage.cli.main import main
from package_storage.errors import BundleError
from package_storage.packages.signing import generate_key, sign_detached
from package_storage.store.directory import Store
from package_storage.store.keyring import StoreKeyring
from package_storage.transfer.bundle import check_bundle, parse_sums
from package_storage.transfer.export import _sums_line, export_bundle
from package_storage.transfer.importer import (
    ImportOptions,
    ImportReport,
    import_sources,
    scan_folder,
)

ZIP = "packages/hello_nginx-2.0.0.zip"
SIG = ZIP + ".sig"
OTHER = "packages/hello_nginx-2.1.0.zip"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of production (two signed versions) written by a store with a signing key."""
    root = tmp_path_factory.mktemp("source")
    store = Store.init(root / "store")
    keyring = StoreKeyring(store.root)
    keyring.set_signing_key(generate_key("Exporter <export@example.com>").armored)
    service = store.service("tester")
    for version in ("2.0.0", "2.1.0"):
        service.publish(make_package(root / "p", version))
        service.promote("hello_nginx", version, to="staging")
        service.promote("hello_nginx", version, to="production")
    out = root / "bundle"
    export_bundle(
        store.catalog,
        store.blobs,
        "production",
        out,
        kibana_version=None,
        latest=None,
        public_key=keyring.signing_public_key(),
    )
    store.close()
    return out


@pytest.fixture
def bundle(exported: Path, tmp_path: Path) -> Path:
    """A fresh copy of the bundle to alter."""
    copy = tmp_path / "bundle"
    shutil.copytree(exported, copy)
    return copy


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Store]:
    store = Store.init(tmp_path / "target")
    yield store
    store.close()


def _state(store: Store) -> tuple[object, ...]:
    """Everything a refused import must leave as it was: entries, events, revisions, blobs."""
    catalog = store.catalog
    entries = sorted(
        (e.stage, e.name, e.version, e.artifact) for e in catalog.entries("production")
    )
    blobs = sorted(
        p.relative_to(store.root).as_posix()
        for p in store.root.rglob("*")
        if p.is_file() and "blobs" in p.parts
    )
    return (entries, catalog.change_counter(), catalog.distributions(), blobs)


def _import(store: Store, source: Path) -> ImportReport:
    keyring = StoreKeyring(store.root)
    sources = scan_folder(source, "production", keyring=keyring)
    return import_sources(
        store.service("tester"), sources, options=ImportOptions(workers=0), keyring=keyring
    )


def _resum(bundle: Path, *files: str) -> None:
    """Recompute the SHA256SUMS lines of ``files`` (a forger keeping the sums consistent)."""
    sums = parse_sums((bundle / "SHA256SUMS").read_text())
    for rel in files:
        if (bundle / rel).exists():
            sums[rel] = hashlib.sha256((bundle / rel).read_bytes()).hexdigest()
        else:
            sums.pop(rel, None)
    (bundle / "SHA256SUMS").write_text("".join(_sums_line(sums[r], r) for r in sorted(sums)))


def _edit_json(bundle: Path, change: Callable[[dict[str, object]], None]) -> None:
    path = bundle / "bundle.json"
    description = json.loads(path.read_text())
    change(description)
    path.write_text(json.dumps(description, indent=2) + "\n")


def _flip(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


# --- alterations -----------------------------------------------------------------------------


def _alter_zip(b: Path) -> None:
    _flip(b / ZIP)


def _alter_sig(b: Path) -> None:
    (b / SIG).write_text((b / SIG).read_text().replace("\n", "\n\n", 1))


def _alter_sums_digest(b: Path) -> None:
    text = (b / "SHA256SUMS").read_text()
    digest = hashlib.sha256((b / ZIP).read_bytes()).hexdigest()
    changed = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    (b / "SHA256SUMS").write_text(text.replace(digest, changed))


def _alter_sums_syntax(b: Path) -> None:
    with open(b / "SHA256SUMS", "a") as fh:
        fh.write("not a checksum line\n")


def _alter_sums_path(b: Path) -> None:
    with open(b / "SHA256SUMS", "a") as fh:
        fh.write("0" * 64 + "  ../outside.zip\n")


def _alter_json(b: Path) -> None:
    _edit_json(b, lambda d: d.update(created="2000-01-01T00:00:00Z"))


def _alter_json_consistently(b: Path) -> None:
    def change(d: dict[str, object]) -> None:
        packages = d["packages"]
        assert isinstance(packages, list)
        packages[0]["sha256"] = "0" * 64

    _edit_json(b, change)
    _resum(b, "bundle.json")


def _add_file(b: Path) -> None:
    (b / "packages" / "evil-1.0.0.zip").write_bytes(b"PK\x05\x06" + bytes(18))


def _add_described_nowhere(b: Path) -> None:
    shutil.copy(b / ZIP, b / "packages" / "hello_nginx-9.9.9.zip")
    _resum(b, "packages/hello_nginx-9.9.9.zip")


def _remove_zip(b: Path) -> None:
    (b / OTHER).unlink()


def _remove_json(b: Path) -> None:
    (b / "bundle.json").unlink()
    _resum(b, "bundle.json")


def _remove_sums(b: Path) -> None:
    (b / "SHA256SUMS").unlink()


def _add_link(b: Path) -> None:
    os.symlink("/etc/passwd", b / "packages" / "passwd")


def _wrong_size_in_json(b: Path) -> None:
    def change(d: dict[str, object]) -> None:
        packages = d["packages"]
        assert isinstance(packages, list)
        packages[1]["size"] = 1

    _edit_json(b, change)
    _resum(b, "bundle.json")


def _wrong_key_fingerprint(b: Path) -> None:
    _edit_json(
        b, lambda d: d.update(public_key={"file": "public-key.asc", "fingerprint": "AB" * 20})
    )
    _resum(b, "bundle.json")


ALTERATIONS = [
    (_alter_zip, ZIP, "bundle-checksum-mismatch"),
    (_alter_sig, SIG, "bundle-checksum-mismatch"),
    (_alter_sums_digest, ZIP, "bundle-checksum-mismatch"),
    (_alter_sums_syntax, "SHA256SUMS", "bundle-sums-invalid"),
    (_alter_sums_path, "SHA256SUMS", "bundle-sums-invalid"),
    (_alter_json, "bundle.json", "bundle-checksum-mismatch"),
    (_alter_json_consistently, "bundle.json", "bundle-json-mismatch"),
    (_wrong_size_in_json, "bundle.json", "bundle-json-mismatch"),
    (_wrong_key_fingerprint, "bundle.json", "bundle-json-mismatch"),
    (_add_file, "packages/evil-1.0.0.zip", "bundle-file-unlisted"),
    (_add_described_nowhere, "packages/hello_nginx-9.9.9.zip", "bundle-json-mismatch"),
    (_remove_zip, OTHER, "bundle-file-missing"),
    (_remove_json, "bundle.json", "bundle-json-missing"),
    (_remove_sums, "SHA256SUMS", "bundle-sums-missing"),
    (_add_link, "packages/passwd", "bundle-file-unsafe"),
]


@pytest.mark.parametrize(
    ("alter", "named", "rule"), ALTERATIONS, ids=[a[0].__name__.strip("_") for a in ALTERATIONS]
)
@pytest.mark.parametrize("given_as", ["bundle", "packages"])
def test_an_altered_bundle_is_refused_whole_naming_the_file(
    bundle: Path,
    target: Store,
    alter: Callable[[Path], None],
    named: str,
    rule: str,
    given_as: str,
) -> None:
    alter(bundle)
    before = _state(target)
    source = bundle if given_as == "bundle" else bundle / "packages"
    with pytest.raises(BundleError) as caught:
        _import(target, source)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{bundle / named}: "), message
    assert message.endswith(f"[{rule}]") and caught.value.rule == rule
    assert _state(target) == before


def test_a_good_bundle_imports(bundle: Path, target: Store) -> None:
    check = check_bundle(bundle, StoreKeyring(target.root))
    assert check is not None and not check.signatures_verified
    report = _import(target, bundle)
    assert sorted(v.version for v in report.imported) == ["2.0.0", "2.1.0"]
    assert all(e.artifact for e in target.catalog.entries("production"))


def test_a_folder_that_is_not_a_bundle_is_not_checked(bundle: Path, tmp_path: Path) -> None:
    plain = tmp_path / "zips"
    plain.mkdir()
    shutil.copy(bundle / ZIP, plain)
    assert check_bundle(plain) is None


def test_a_zip_changed_after_the_check_is_rejected(bundle: Path, target: Store) -> None:
    keyring = StoreKeyring(target.root)
    sources = scan_folder(bundle, "production", keyring=keyring)
    assert all(s.sha256 for s in sources)
    _flip(bundle / ZIP)
    report = import_sources(
        target.service("tester"), sources, options=ImportOptions(workers=0, on_invalid="report")
    )
    assert [r.reason for r in report.rejected] == [
        f"{bundle / ZIP}: changed since its bundle was verified"
    ]


# --- signatures ------------------------------------------------------------------------------


def _trust_bundle_key(store: Store, bundle: Path) -> None:
    StoreKeyring(store.root).add_trusted((bundle / "public-key.asc").read_text())


def test_with_the_exporters_key_trusted_signatures_are_verified(
    bundle: Path, target: Store
) -> None:
    description = json.loads((bundle / "bundle.json").read_text())
    key = StoreKeyring(target.root).add_trusted((bundle / "public-key.asc").read_text())
    assert description["public_key"] == {"file": "public-key.asc", "fingerprint": key.fingerprint}
    check = check_bundle(bundle, StoreKeyring(target.root))
    assert check is not None and check.signatures_verified
    assert len(_import(target, bundle).imported) == 2


def test_with_a_trusted_key_a_forged_signature_is_refused(bundle: Path, target: Store) -> None:
    _trust_bundle_key(target, bundle)
    # A forger replaces a zip and signs it with their own key, keeping every checksum and
    # bundle.json consistent: only the signature tells.
    other = generate_key("Forger <forger@example.com>")
    data = (bundle / OTHER).read_bytes()
    (bundle / ZIP).write_bytes(data)
    (bundle / SIG).write_bytes(sign_detached(other, data))

    def change(d: dict[str, object]) -> None:
        packages = d["packages"]
        assert isinstance(packages, list)
        packages[0]["sha256"] = hashlib.sha256(data).hexdigest()
        packages[0]["size"] = len(data)
        d.pop("selection_digest")  # a careful forger drops (or recomputes) it too

    _edit_json(bundle, change)
    _resum(bundle, ZIP, SIG, "bundle.json")
    before = _state(target)
    # Without a trusted key the forgery cannot be told from the real thing...
    assert check_bundle(bundle) is not None
    # ...with one it is refused.
    with pytest.raises(BundleError) as caught:
        _import(target, bundle)
    assert str(caught.value).startswith(f"{bundle / SIG}: signature refused")
    assert caught.value.rule == "bundle-signature-refused"
    assert _state(target) == before


def test_with_a_trusted_key_an_unsigned_package_is_refused(bundle: Path, target: Store) -> None:
    _trust_bundle_key(target, bundle)
    (bundle / SIG).unlink()

    def change(d: dict[str, object]) -> None:
        packages = d["packages"]
        counts = d["counts"]
        assert isinstance(packages, list) and isinstance(counts, dict)
        packages[0]["signature"] = None
        counts["signatures"] = 1

    _edit_json(bundle, change)
    _resum(bundle, SIG, "bundle.json")
    with pytest.raises(BundleError, match=r"has no signature.*\[bundle-signature-missing\]$"):
        _import(target, bundle)


# --- export side -----------------------------------------------------------------------------


def test_the_bundle_carries_the_public_key_listed_in_both_files(exported: Path) -> None:
    sums = parse_sums((exported / "SHA256SUMS").read_text())
    key = (exported / "public-key.asc").read_bytes()
    assert sums["public-key.asc"] == hashlib.sha256(key).hexdigest()
    assert key.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert (
        "keys import <this folder>/public-key.asc --trusted"
        in (exported / "README.txt").read_text()
    )


# --- the command line ------------------------------------------------------------------------


def test_import_command_refuses_an_altered_bundle_and_trusts_its_key(
    bundle: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = {"PACKAGE_STORAGE_ACTOR": "tester"}
    store = tmp_path / "site"
    assert runner.invoke(main, ["init", "--store", str(store)], env=env).exit_code == 0
    good = tmp_path / "good"
    shutil.copytree(bundle, good)
    _flip(bundle / ZIP)
    result = runner.invoke(
        main, ["import", str(bundle), "--stage", "production", "--store", str(store)], env=env
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {bundle / ZIP}: sha256 differs from SHA256SUMS [bundle-checksum-mismatch]\n"
    )
    assert "Traceback" not in result.output
    trusted = runner.invoke(
        main,
        ["keys", "import", str(good / "public-key.asc"), "--trusted", "--store", str(store)],
        env=env,
    )
    assert trusted.exit_code == 0, trusted.output
    result = runner.invoke(
        main, ["import", str(good), "--stage", "production", "--store", str(store)], env=env
    )
    assert result.exit_code == 0, result.output
    assert "2 imported" in result.stdout


# --- SHA256SUMS parsing ----------------------------------------------------------------------

_NAMES = st.lists(
    st.lists(
        st.text(
            st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
            min_size=1,
            max_size=12,
        ).filter(lambda p: p not in (".", "..")),
        min_size=1,
        max_size=3,
    )
    .map("/".join)
    .filter(lambda p: "\\" not in p and p != "SHA256SUMS"),
    unique=True,
    max_size=8,
)


@given(names=_NAMES, data=st.data())
def test_sums_written_by_export_parse_back(names: list[str], data: st.DataObject) -> None:
    sums = {n: data.draw(st.binary(min_size=32, max_size=32)).hex() for n in names}
    text = "".join(_sums_line(sums[n], n) for n in sorted(sums))
    assert parse_sums(text) == sums


@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_with_one_line(text: str) -> None:
    try:
        parse_sums(text)
    except BundleError as exc:
        assert "\n" not in str(exc) and exc.rule == "bundle-sums-invalid"
