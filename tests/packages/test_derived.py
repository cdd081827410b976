"""Derived documents: a package written down once and read back renders the same bytes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from package_storage.packages import derived, render
from package_storage.packages.derived import LazyTree, dump_package, load_package, opened
from package_storage.packages.manifest import propagate_deprecations, read_package, with_signature
from package_storage.packages.model import Documents, Package, PackageTree
from package_storage.packages.trees import FolderTree
from package_storage.packages.versions import Version

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "packages"
EPR_PACKAGES = ROOT / ".." / "shared" / "fixtures" / "epr" / "package"


def _folders() -> list[Path]:
    found = sorted(p.parent for p in EXAMPLES.glob("*/*/manifest.yml"))
    found += sorted(p.parent for p in EPR_PACKAGES.glob("*/*/manifest.yml"))
    return found


def _readable(folder: Path) -> Package | None:
    try:
        return read_package(FolderTree(folder), validate=False)
    except Exception:  # some EPR fixtures are broken on purpose
        return None


def _same(a: Package, b: Package) -> None:
    assert render.dumps(a.document) == render.dumps(b.document)
    assert render.dumps(a.search_entry) == render.dumps(b.search_entry)
    for field in dataclasses.fields(Package):
        if field.name in ("documents", "tree", "version"):
            continue
        assert getattr(a, field.name) == getattr(b, field.name), field.name
    assert str(a.version) == str(b.version)


@pytest.mark.parametrize("folder", _folders(), ids=lambda p: f"{p.parent.name}-{p.name}")
def test_every_fixture_package_round_trips(folder: Path) -> None:
    pkg = _readable(folder)
    if pkg is None:
        pytest.skip("not readable (a broken fixture)")
    data = dump_package(pkg)
    assert data is not None
    back = load_package(data, pkg.tree)
    assert back is not None
    _same(pkg, back)
    # What the server does to a package afterwards works on the loaded one the same way.
    _same(with_signature(pkg), with_signature(back))
    assert [render.dumps(p.document) for p in propagate_deprecations([pkg])] == [
        render.dumps(p.document) for p in propagate_deprecations([back])
    ]


def test_values_shared_by_both_documents_stay_one_object() -> None:
    pkg = read_package(FolderTree(EXAMPLES / "hello_nginx" / "1.1.0"), validate=False)
    data = dump_package(pkg)
    assert data is not None
    back = load_package(data, pkg.tree)
    assert back is not None
    document, entry = back.documents.pair()  # one decoding: values are shared inside it
    assert entry["name"] is document["name"]
    shared = [k for k in pkg.search_entry if pkg.document.get(k) is pkg.search_entry[k]]
    assert shared and all(document[k] is entry[k] for k in shared)


def test_a_loaded_package_holds_its_bytes_and_edits_them_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pkg = read_package(FolderTree(EXAMPLES / "hello_nginx" / "1.1.0"), validate=False)
    data = dump_package(pkg)
    assert data is not None
    back = load_package(data, pkg.tree)
    assert back is not None
    assert back.documents.is_encoded and back.documents.encoded_size == len(data)
    assert back.document is not back.document  # decoded anew each time, never kept
    assert dump_package(back) == data  # dumped again from one decoding: the same bytes
    decoded: list[bytes] = []
    real = derived.decode_documents

    def counting(raw: bytes) -> tuple[dict[str, object], dict[str, object]]:
        decoded.append(raw)
        return real(raw)

    monkeypatch.setattr(derived, "decode_documents", counting)
    again = load_package(data, pkg.tree)
    assert again is not None
    notice = {"description": "use another", "since": "1.0.0"}

    def newer_deprecated(p: Package) -> Package:
        return dataclasses.replace(p, deprecated=notice, version=Version.parse_strict("9.0.0"))

    signed, _ = propagate_deprecations([with_signature(again), newer_deprecated(again)])
    assert decoded == []  # signature and notice recorded, not applied yet
    assert signed.documents.is_encoded
    assert signed.document["signature_path"] == f"{pkg.document['download']}.sig"
    assert signed.search_entry["deprecated"] == notice
    expected, _ = propagate_deprecations([with_signature(pkg), newer_deprecated(pkg)])
    assert render.dumps(signed.document) == render.dumps(expected.document)
    assert render.dumps(signed.search_entry) == render.dumps(expected.search_entry)


def test_another_format_is_ignored() -> None:
    pkg = read_package(FolderTree(EXAMPLES / "hello_nginx" / "1.1.0"), validate=False)
    data = dump_package(pkg)
    assert data is not None
    raw = json.loads(data)
    raw["format"] = derived.FORMAT + 1
    assert load_package(json.dumps(raw).encode(), pkg.tree) is None


def test_a_document_json_cannot_render_the_same_is_not_derived() -> None:
    """YAML maps may have non-string keys (rendered with ``str``: ``True``); JSON would turn
    them into ``true``: such a package is not derived (read from its files each time)."""
    pkg = read_package(FolderTree(EXAMPLES / "hello_nginx" / "1.1.0"), validate=False)
    odd = dataclasses.replace(
        pkg,
        documents=Documents.parsed(
            {**pkg.document, "vars": [{"default": {True: 1}}]}, pkg.search_entry
        ),
    )
    assert dump_package(odd) is None


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_any_json_value_in_a_document_renders_the_same_or_is_refused(value: object) -> None:
    pkg = read_package(FolderTree(EXAMPLES / "hello_nginx" / "1.1.0"), validate=False)
    odd = dataclasses.replace(
        pkg, documents=Documents.parsed({**pkg.document, "extra": value}, pkg.search_entry)
    )
    data = dump_package(odd)
    if data is None:
        return
    back = load_package(data, pkg.tree)
    assert back is not None
    assert render.dumps(back.document) == render.dumps(odd.document)


class CountingTree:
    def __init__(self, tree: PackageTree) -> None:
        self.tree = tree
        self.opened = 0

    def __call__(self) -> PackageTree:
        self.opened += 1
        return self.tree


def test_a_lazy_tree_opens_its_tree_once_on_first_use() -> None:
    real = FolderTree(EXAMPLES / "hello_nginx" / "1.1.0")
    opener = CountingTree(real)
    lazy = LazyTree("folder", "somewhere", opener)
    assert (lazy.kind, lazy.location, lazy.is_open, opener.opened) == (
        "folder",
        "somewhere",
        False,
        0,
    )
    assert lazy.read("manifest.yml") == real.read("manifest.yml")
    assert lazy.stat("manifest.yml") == real.stat("manifest.yml")
    assert list(lazy.entries()) == list(real.entries())
    assert opened(lazy) is real and opened(real) is real
    assert opener.opened == 1 and lazy.is_open
