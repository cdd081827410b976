"""The archive-safety gate and the limits (``packages/safety.py``, ``packages/limits.py``).

The hostile corpus (``hostile_corpus.py``) is published through the real service into a real
store: every case is refused with its rule code, in one line naming the input, and the store
is left exactly as it was. The same corpus goes through ``import`` and through the
``serve --config`` sources; ``tests/cli/test_hostile_publish.py`` runs it through the CLI.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import hostile_corpus as corpus
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_service import state

from package_storage.errors import ConfigError, NotFoundError, PackageError, UnsafePackageError
from package_storage.packages import limits, safety
from package_storage.packages.artifacts import build_zip
from package_storage.packages.limits import Limits
from package_storage.packages.trees import FolderTree
from package_storage.packages.yamlutil import load_yaml
from package_storage.registry.sources import load_sources
from package_storage.store.directory import Store
from package_storage.transfer.importer import ImportOptions, import_sources, scan_folder

CASES = corpus.cases()


@pytest.fixture
def case_limits(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    limits.set_active(None)


def _use(case: corpus.Case) -> None:
    limits.set_active(Limits.from_env(case.env))


def test_corpus_size_and_families() -> None:
    zips = [c for c in CASES if c.kind == "zip"]
    folders = [c for c in CASES if c.kind == "folder"]
    assert len(CASES) >= 60 and len(zips) >= 40 and len(folders) >= 20
    families = {c.family for c in CASES}
    assert families >= {"path", "type", "duplicate", "root", "structure", "overlap", "size"}
    assert families >= {"bomb", "limit", "yaml", "identity"}
    # every family that applies to both forms has folder and zip cases
    for family in ("path", "type", "size", "limit", "yaml", "identity"):
        assert {c.kind for c in CASES if c.family == family} == {"zip", "folder"}, family
    # every rule code the corpus names is a documented rule
    assert {c.rule for c in CASES} <= set(safety.RULES)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One store for the whole corpus, holding a good package: every refusal must leave it
    exactly as it was."""
    with Store.init(tmp_path_factory.mktemp("store") / "store") as store:
        store.service("tester").publish(corpus.good_folder(tmp_path_factory.mktemp("good")))
        yield store


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_publish_refuses_hostile_package(
    case: corpus.Case, tmp_path: Path, case_limits: None, shared_store: Store
) -> None:
    path = case.build(tmp_path / "in")
    _use(case)
    svc = shared_store.service("tester")
    before = state(shared_store)
    with pytest.raises(UnsafePackageError) as caught:
        svc.publish(path)
    assert state(shared_store) == before
    assert svc.fsck().ok
    err = caught.value
    message = str(err)
    assert err.rule == case.rule, message
    assert message.endswith(f"[{case.rule}]")
    assert "\n" not in message and message.startswith(str(path))


def test_good_packages_pass_the_gate(tmp_path: Path) -> None:
    folder = corpus.good_folder(tmp_path / "f")
    assert safety.check_folder(folder).files > 5
    checked = safety.check_zip_file(corpus.good_zip(tmp_path / "z"))
    assert checked.root == "hello_nginx-1.1.0"
    built = build_zip(FolderTree(folder), "hello_nginx", "1.1.0")
    assert safety.check_zip(built, "built.zip").root == "hello_nginx-1.1.0"
    for path in (folder, corpus.good_zip(tmp_path / "z2")):
        with Store.init(tmp_path / path.name / "store") as store:
            assert store.service("tester").publish(path).changed


def test_zipfile_written_archives_pass(tmp_path: Path) -> None:
    """Archives written by Python's zipfile, stored and deflated, with and without directory
    entries, data descriptors (a non-seekable writer) and zip64 extensions, are accepted."""

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.buf = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            data = bytes(b)  # type: ignore[call-overload]
            self.buf += data
            return len(data)

    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        for stream in (False, True):
            out: io.BytesIO | Unseekable = Unseekable() if stream else io.BytesIO()
            with zipfile.ZipFile(out, "w", compression=compression) as zf:  # type: ignore[arg-type]
                zf.writestr("p-1.0.0/manifest.yml", b"name: p\n" * 100)
                with zf.open("p-1.0.0/docs/README.md", "w", force_zip64=True) as fh:
                    fh.write(b"readme\n" * 1000)
            data = bytes(out.buf) if isinstance(out, Unseekable) else out.getvalue()
            checked = safety.check_zip(data, "p-1.0.0.zip")
            assert checked.root == "p-1.0.0"
            assert [m.path for m in checked.members] == [
                "p-1.0.0/manifest.yml",
                "p-1.0.0/docs/README.md",
            ]


def test_limits_from_env_and_assignments() -> None:
    assert Limits.from_env({}) == Limits()
    env = {"PACKAGE_STORAGE_MAX_FILE_BYTES": "1_000", "PACKAGE_STORAGE_MAX_ENTRIES": "7"}
    assert Limits.from_env(env) == Limits(file_bytes=1000, entries=7)
    with pytest.raises(ConfigError, match="PACKAGE_STORAGE_MAX_RATIO"):
        Limits.from_env({"PACKAGE_STORAGE_MAX_RATIO": "many"})
    with pytest.raises(ConfigError, match="greater than 0"):
        Limits.from_env({"PACKAGE_STORAGE_MAX_RATIO": "0"})
    assert limits.parse_assignment("file-bytes=42") == ("PACKAGE_STORAGE_MAX_FILE_BYTES", 42)
    with pytest.raises(ConfigError, match="FIELD one of"):
        limits.parse_assignment("nonsense=1")


def test_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACKAGE_STORAGE_MAX_YAML_DEPTH", "3")
    limits.set_active(None)
    try:
        assert limits.active().yaml_depth == 3
        with pytest.raises(UnsafePackageError, match=r"\[limit-yaml-depth\]"):
            load_yaml(b"a: {b: {c: {d: 1}}}", path="x.yml")
    finally:
        limits.set_active(None)


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"[" * 900 + b"]" * 900, "limit-yaml-depth"),
        (b"[" * 5000 + b"]" * 5000, "limit-yaml-depth"),  # past libyaml's own limit
        (b"&a [*a]", "limit-yaml-depth"),  # a recursive alias
        (corpus.alias_bomb(), "limit-yaml-aliases"),
        (b"[" + b"1," * 250_000 + b"1]", "limit-yaml-nodes"),
    ],
    ids=["deep-900", "deep-5000", "recursive", "alias-bomb", "many-values"],
)
def test_yaml_limits_are_one_line_refusals(data: bytes, rule: str) -> None:
    with pytest.raises(UnsafePackageError) as caught:
        load_yaml(data, path="pkg/data.yml")
    assert caught.value.rule == rule and "\n" not in str(caught.value)
    assert str(caught.value).startswith("pkg/data.yml: ")


def test_yaml_within_limits_loads() -> None:
    assert load_yaml(b"a: &x [1, 2]\nb: *x\nc: {d: {e: 1}}", path="f.yml") == {
        "a": [1, 2],
        "b": [1, 2],
        "c": {"d": {"e": 1}},
    }
    assert load_yaml(b"", path="f.yml") is None


@given(st.text(min_size=1, max_size=40))
@example("À:")  # found by hypothesis: not a drive letter (those are ASCII), a plain name
@example("c:/evil")
def test_check_name_never_lets_an_escaping_name_through(name: str) -> None:
    """Property: whatever the name, the gate either refuses it or returns a clean relative
    path (no '..', no empty or '.' component, no backslash, no NUL, not absolute)."""
    try:
        clean = safety.clean_entry_name("t.zip", name, name.endswith("/"))
    except UnsafePackageError as exc:
        assert exc.rule in safety.RULES
        return
    parts = clean.split("/")
    assert not clean.startswith("/") and "\\" not in clean and "\x00" not in clean
    assert all(p not in ("", ".", "..") for p in parts)
    assert not re.match(r"[A-Za-z]:", clean)  # Windows drive letters are ASCII


@given(st.binary(max_size=300))
def test_check_zip_on_arbitrary_bytes_refuses_with_a_rule(data: bytes) -> None:
    """Property: random bytes never crash the gate; they are refused with a known rule."""
    try:
        safety.check_zip(data, "random.zip")
    except UnsafePackageError as exc:
        assert exc.rule in safety.RULES and "\n" not in str(exc)


@given(st.integers(min_value=0, max_value=2000), st.binary(min_size=1, max_size=4))
def test_check_zip_on_damaged_archives_never_crashes(offset: int, patch: bytes) -> None:
    """Property: a good archive with a few bytes overwritten anywhere is accepted only when
    it still parses strictly; otherwise it is refused with a rule (never another error)."""
    data = bytearray(corpus.raw_zip(corpus.base_entries()))
    pos = offset % len(data)
    data[pos : pos + len(patch)] = patch
    try:
        safety.check_zip(bytes(data), "damaged.zip")
    except UnsafePackageError as exc:
        assert exc.rule in safety.RULES


def test_identity_rules() -> None:
    ok = safety.check_identity
    ok("x", "a", "1.0.0", folder="1.0.0", parent="a")
    ok("x", "a", "1.0.0", folder="a-1.0.0", parent="build")
    ok("x", "a", "1.0.0", folder="a", parent="packages")
    ok("x", "a", "1.0.0", zip_file="/p/a-1.0.0.zip", root_dir="a-1.0.0")
    ok("x", "a", "1.0.0", zip_file="<upload>")
    for kw, rule in [
        ({"folder": "1.0.0", "parent": "b"}, "identity-name"),
        ({"folder": "2.0.0", "parent": "a"}, "identity-version"),
        ({"folder": "a-2.0.0"}, "identity-version"),
        ({"folder": "b"}, "identity-name"),
        ({"zip_file": "a-2.0.0.zip"}, "identity-version"),
        ({"zip_file": "b-1.0.0.zip"}, "identity-name"),
        ({"root_dir": "a"}, "zip-root-folder"),
    ]:
        with pytest.raises(UnsafePackageError) as caught:
            ok("x", "a", "1.0.0", **kw)  # type: ignore[arg-type]
        assert caught.value.rule == rule, kw


def test_folder_tree_never_blocks_on_a_fifo_nor_reads_a_huge_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with open(tmp_path / "huge", "wb") as fh:
        fh.truncate(Limits().file_bytes + 1)
    tree = FolderTree(tmp_path)
    with pytest.raises(NotFoundError, match="not a regular file"):
        tree.read("pipe")
    with pytest.raises(UnsafePackageError, match=r"\[limit-file-size\]"):
        tree.read("huge")


# --- import and serve --config -----------------------------------------------------------------

SOURCE_CASES = [
    c
    for c in CASES
    if c.id
    in {
        "zip-dotdot",
        "zip-overlap-41",
        "zip-bomb-1g-docs",
        "zip-name-version-file",
        "folder-fifo-manifest",
        "folder-yaml-deep-manifest",
        "folder-other-name",
        "folder-symlink-out",
    }
]


@pytest.mark.parametrize("case", SOURCE_CASES, ids=[c.id for c in SOURCE_CASES])
def test_import_rejects_hostile_package(case: corpus.Case, tmp_path: Path) -> None:
    src = tmp_path / "src"
    path = case.build(src)
    if case.kind == "folder":
        source = scan_folder(path.parent.parent, "snapshot")
    else:
        source = scan_folder(src, "snapshot")
    with Store.init(tmp_path / "store") as store:
        before = state(store)
        report = import_sources(
            store.service("importer"),
            source,
            options=ImportOptions(workers=0, on_invalid="report"),
        )
        assert state(store) == before
    (rejected,) = report.rejected
    assert rejected.code == "unsafe_package"
    assert rejected.reason.endswith(f"[{case.rule}]") and "\n" not in rejected.reason


def _good_tree(root: Path) -> None:
    corpus.good_folder(root)
    corpus.good_zip(root / "zips")


@pytest.mark.parametrize("validate", [True, False])
def test_serve_sources_report_hostile_packages(
    tmp_path: Path, validate: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Folder mode: a FIFO manifest, 900 levels of YAML and a zip bomb among good packages.
    Validation on: startup is refused with every hostile package named with its rule;
    validation off: they are skipped with a warning and the good ones are served."""
    root = tmp_path / "packages"
    _good_tree(root)
    fifo = corpus.cases_by_id("folder-fifo-manifest").build(tmp_path / "a")
    deep = corpus.cases_by_id("folder-yaml-deep-manifest").build(tmp_path / "b")
    bomb = corpus.cases_by_id("zip-bomb-1g-docs").build(tmp_path / "c")
    # each hostile package has a package path of its own (<path>/hello_nginx/1.1.0)
    paths = [str(root), *(str(tmp_path / d) for d in "abc")]
    if validate:
        with pytest.raises(PackageError) as caught:
            load_sources(paths, validate=True, workers=1)
        text = str(caught.value)
        assert text.startswith("3 packages failed to load:")
        assert f"{fifo}: entry 'manifest.yml' is a FIFO" in text
        assert f"{deep}/manifest.yml: YAML nests deeper than" in text
        assert f"{bomb}: entry 'hello_nginx-1.1.0/docs/big.md'" in text
        for rule in ("special-file", "limit-yaml-depth", "limit-file-size"):
            assert f"[{rule}]" in text
    else:
        zips, folders = load_sources(paths, validate=False, workers=1)
        assert [p.key for p in zips] == [("hello_nginx", "1.1.0")]
        assert [p.key for p in folders] == [("hello_nginx", "1.1.0")]
        warned = [r.getMessage() for r in caplog.records if "skipping unsafe" in r.getMessage()]
        assert len(warned) == 3


def test_serve_sources_with_a_process_pool(tmp_path: Path) -> None:
    root = tmp_path / "packages"
    for i in range(70):  # above the serial threshold: the pool path
        corpus.good_folder(root / f"p{i}")
    corpus.cases_by_id("folder-fifo-manifest").build(root / "hostile")
    paths = [str(root / f"p{i}") for i in range(70)] + [str(root / "hostile")]
    zips, folders = load_sources(paths, validate=False, workers=2)
    assert zips == [] and len(folders) == 1  # one (name, version): the first path wins
    with pytest.raises(PackageError, match=r"\[special-file\]"):
        load_sources(paths, validate=True, workers=2)
