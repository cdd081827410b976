from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import pytest
from test_sources_cache import _paths, _rendered

from package_storage.errors import PackageError
from package_storage.packages.model import Package
from package_storage.registry import sources
from package_storage.registry.sources import (
    PackagePathsWatcher,
    discover_folders,
    discover_zips,
    load_sources,
)

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "epr"
PACKAGE = FIXTURES / "package"
SECOND = FIXTURES / "second_package_path"
LOCAL = FIXTURES / "local-storage"

SETUP_A = [str(LOCAL), str(SECOND), str(PACKAGE)]


def keys(packages: list[Package]) -> list[tuple[str, str]]:
    return [p.key for p in packages]


def by_key(packages: list[Package]) -> dict[tuple[str, str], Package]:
    return {p.key: p for p in packages}


@pytest.fixture(scope="module")
def setup_a() -> list[list[Package]]:
    return load_sources(SETUP_A, validate=True, require_signatures=False, workers=1)


def test_setup_a_zip_source_first(setup_a: list[list[Package]]) -> None:
    zips, folders = setup_a
    assert keys(zips) == [("example", "1.0.1"), ("nodirentries", "1.0.0")]
    assert all(p.tree.kind == "zip" for p in zips)
    assert all(p.tree.kind == "folder" for p in folders)


def test_setup_a_folder_order_follows_paths(setup_a: list[list[Package]]) -> None:
    folders = setup_a[1]
    # second_package_path is listed before package: its packages come first
    assert folders[0].key == ("multiversion", "1.1.0")
    assert Path(folders[0].tree.location).parent.parent == SECOND
    # then package/ in bytewise directory order
    names = [p.name for p in folders[1:]]
    assert names[0] == "agent_privileges"
    assert names.index("example") < names.index("foo")
    versions = [str(p.version) for p in folders if p.name == "example"]
    assert versions == ["0.0.2", "1.0.0", "1.0.1", "1.1.0", "1.2.0-rc1"]


def test_duplicates_first_path_wins(setup_a: list[list[Package]]) -> None:
    folders = setup_a[1]
    multiversion = [p for p in folders if p.key == ("multiversion", "1.1.0")]
    assert len(multiversion) == 1
    assert multiversion[0].tree.location.startswith(str(SECOND))
    # the fixture directories hold 45 version dirs; one duplicate is dropped
    assert len(folders) == 44


def test_duplicates_order_reversed() -> None:
    _zips, folders = load_sources(
        [str(PACKAGE), str(SECOND)], validate=True, require_signatures=False, workers=1
    )
    pkg = by_key(folders)[("multiversion", "1.1.0")]
    assert pkg.tree.location.startswith(str(PACKAGE))


def test_zip_beats_folder_for_example_101(setup_a: list[list[Package]]) -> None:
    from package_storage.registry.index import RegistryIndex

    zips, folders = setup_a
    assert ("example", "1.0.1") in by_key(zips)
    assert ("example", "1.0.1") in by_key(folders)
    served = RegistryIndex(setup_a).lookup("example", "1.0.1")
    assert served is not None
    assert served.tree.kind == "zip"


def test_zip_signature_detected(setup_a: list[list[Package]]) -> None:
    zips = by_key(setup_a[0])
    assert "signature_path" in zips[("example", "1.0.1")].document
    assert "signature_path" not in zips[("nodirentries", "1.0.0")].document
    assert "signature_path" not in by_key(setup_a[1])[("example", "1.0.1")].document


def test_deprecations_propagated_per_source(setup_a: list[list[Package]]) -> None:
    multiversion = [p for p in setup_a[1] if p.name == "multiversion"]
    assert len(multiversion) == 4
    for pkg in multiversion:
        assert pkg.deprecated is not None, pkg.key


def test_missing_paths_are_skipped(tmp_path: Path) -> None:
    result = load_sources(
        [str(tmp_path / "nope"), str(LOCAL)], validate=True, require_signatures=False, workers=1
    )
    assert keys(result[0]) == [("example", "1.0.1"), ("nodirentries", "1.0.0")]
    assert result[1] == []


def test_nothing_found_gives_empty_sources(tmp_path: Path) -> None:
    assert load_sources([str(tmp_path)], workers=1) == [[], []]


@pytest.mark.parametrize("executor", ["serial", "thread", "process"])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_independent_of_pool(
    monkeypatch: pytest.MonkeyPatch,
    setup_a: list[list[Package]],
    executor: sources.ExecutorKind,
    workers: int,
) -> None:
    monkeypatch.setattr(sources, "PARALLEL_MIN_TASKS", 0)
    result = load_sources(SETUP_A, workers=workers, executor=executor)
    assert [keys(s) for s in result] == [keys(s) for s in setup_a]
    assert [[p.tree.location for p in s] for s in result] == [
        [p.tree.location for p in s] for s in setup_a
    ]
    assert [[p.document for p in s] for s in result] == [[p.document for p in s] for s in setup_a]
    # trees work after a process pool (they are re-opened in the parent)
    example = by_key(result[0])[("example", "1.0.1")]
    assert example.tree.read("manifest.yml").startswith(b"")
    assert example.tree.stat("manifest.yml") is not None


def test_workers_must_be_positive() -> None:
    with pytest.raises(PackageError, match="greater than 0"):
        load_sources(SETUP_A, workers=0)


# --- signatures --------------------------------------------------------------------------------


def test_required_signatures_list_every_unsigned_package() -> None:
    with pytest.raises(PackageError) as info:
        load_sources([str(LOCAL), str(PACKAGE)], validate=True, require_signatures=True, workers=1)
    message = info.value.message
    lines = message.splitlines()
    assert "package nodirentries-1.0.0 is missing a required signature file" in message
    assert "package example-1.0.0 is missing a required signature file" in message
    assert "package multiversion-1.2.0 is missing a required signature file" in message
    # the signed zip is not listed; every folder package (44) and nodirentries are
    assert "example-1.0.1.zip:" not in message
    assert sum("is missing a required signature file" in line for line in lines) == 45
    assert "--require-package-signatures=false" in message
    assert "EPR_REQUIRE_PACKAGE_SIGNATURES=false" in message


def test_signed_packages_pass(tmp_path: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(PACKAGE / "example" / "1.0.0", root / "example" / "1.0.0")
    (root / "example" / "1.0.0.sig").write_bytes(b"sig")
    shutil.copy(LOCAL / "example-1.0.1.zip", root / "example-1.0.1.zip")
    shutil.copy(LOCAL / "example-1.0.1.zip.sig", root / "example-1.0.1.zip.sig")
    zips, folders = load_sources([str(root)], require_signatures=True, workers=1)
    assert keys(zips) == [("example", "1.0.1")]
    assert keys(folders) == [("example", "1.0.0")]
    assert folders[0].document["signature_path"].endswith("example-1.0.0.zip.sig")


# --- load errors -------------------------------------------------------------------------------


def _broken_copy(tmp_path: Path) -> Path:
    root = tmp_path / "packages"
    for name, version in [("example", "1.0.0"), ("foo", "1.0.0"), ("multiversion", "1.2.0")]:
        shutil.copytree(PACKAGE / name / version, root / name / version)
    # no title
    manifest = root / "example" / "1.0.0" / "manifest.yml"
    manifest.write_text(
        "\n".join(
            line for line in manifest.read_text().splitlines() if not line.startswith("title:")
        )
    )
    # no README
    (root / "foo" / "1.0.0" / "docs" / "README.md").unlink()
    return root


def test_every_broken_package_is_named(tmp_path: Path) -> None:
    root = _broken_copy(tmp_path)
    with pytest.raises(PackageError) as info:
        load_sources([str(root)], validate=True, workers=1)
    message = info.value.message
    assert message.splitlines()[0] == "2 packages failed to load:"
    assert str(root / "example" / "1.0.0") in message
    assert "no title set" in message
    assert str(root / "foo" / "1.0.0") in message
    assert "README.md" in message
    assert str(root / "multiversion") not in message


def test_broken_packages_with_validation_disabled(tmp_path: Path) -> None:
    root = _broken_copy(tmp_path)
    with pytest.raises(PackageError) as info:
        load_sources([str(root)], validate=False, workers=1)
    # the README rule always applies; the title rule is a validation rule
    assert "README.md" in info.value.message
    assert "no title set" not in info.value.message


def test_version_dir_must_match_manifest(tmp_path: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(PACKAGE / "example" / "1.0.0", root / "example" / "9.9.9")
    with pytest.raises(PackageError) as info:
        load_sources([str(root)], validate=True, workers=1)
    assert str(root / "example" / "9.9.9") in info.value.message


def test_invalid_zip_skipped_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    (tmp_path / "deep").mkdir()
    shutil.copy(LOCAL / "nodirentries-1.0.0.zip", tmp_path / "deep" / "nodirentries-1.0.0.zip")
    with caplog.at_level(logging.WARNING, logger="package_storage"):
        zips, folders = load_sources([str(tmp_path)], workers=1)
    assert keys(zips) == [("nodirentries", "1.0.0")]
    assert folders == []
    assert any(
        r.getMessage() == "ignoring invalid zip file"
        and r.__dict__["fields"]["file.path"] == str(tmp_path / "broken.zip")
        for r in caplog.records
    )


def test_zip_walk_order_is_lexical(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in ["a/z.zip", "b.zip", "a.zip"]:
        shutil.copy(LOCAL / "nodirentries-1.0.0.zip", tmp_path / name)
    found = [
        Path(t.location).relative_to(tmp_path).as_posix()
        for t in discover_zips([tmp_path.as_posix()])
    ]
    # Go's filepath.Walk: entries of a directory in name order ("a" < "a.zip" < "b.zip")
    assert found == ["a/z.zip", "a.zip", "b.zip"]


def test_folder_layout_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copytree(PACKAGE / "foo" / "1.0.0", tmp_path / "foo" / "1.0.0")
    (tmp_path / "foo" / "latest").mkdir()
    (tmp_path / "foo" / "notes.txt").write_text("x")
    (tmp_path / "README.md").write_text("top-level files are ignored silently")
    with caplog.at_level(logging.WARNING, logger="package_storage"):
        tasks = discover_folders([str(tmp_path)])
    assert [t.location for t in tasks] == [str(tmp_path / "foo" / "1.0.0")]
    messages = {(r.getMessage(), r.__dict__["fields"]["file.path"]) for r in caplog.records}
    assert ("ignoring unexpected directory", str(tmp_path / "foo" / "latest")) in messages
    assert ("ignoring unexpected file", str(tmp_path / "foo" / "notes.txt")) in messages
    assert not any("README.md" in path for _m, path in messages)


# --- watcher -----------------------------------------------------------------------------------


def test_watcher_reload_keeps_old_sources_on_failure() -> None:
    received: list[list[list[Package]]] = []

    def failing() -> list[list[Package]]:
        raise PackageError("broken", path="/somewhere")

    watcher = PackagePathsWatcher(["/nowhere"], failing, received.append)
    assert watcher.reload() is False
    assert received == []
    assert watcher.failures == 1


def test_watcher_reload_hands_over_new_sources() -> None:
    received: list[list[list[Package]]] = []
    watcher = PackagePathsWatcher(
        [str(LOCAL)], lambda: load_sources([str(LOCAL)], workers=1), received.append
    )
    assert watcher.reload() is True
    assert [keys(s) for s in received[0]] == [[("example", "1.0.1"), ("nodirentries", "1.0.0")], []]


def test_watcher_notices_a_new_package(tmp_path: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(PACKAGE / "foo" / "1.0.0", root / "foo" / "1.0.0")
    changed = threading.Event()
    received: list[list[list[Package]]] = []

    def on_change(new: list[list[Package]]) -> None:
        received.append(new)
        changed.set()

    watcher = PackagePathsWatcher(
        [str(root)],
        lambda: load_sources([str(root)], workers=1),
        on_change,
        interval=0.02,
        debounce=0.02,
    )
    watcher.start()
    try:
        shutil.copytree(PACKAGE / "example" / "1.0.0", root / "example" / "1.0.0")
        assert changed.wait(30), "watcher did not reload"
    finally:
        watcher.stop()
    assert keys(received[-1][1]) == [("example", "1.0.0"), ("foo", "1.0.0")]


# --- cache of read packages by content -----------------------------------------------------


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_a_restart_over_unchanged_packages_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: sources.ExecutorKind
) -> None:
    from package_storage.packages import manifest
    from package_storage.packages.derived import LazyTree
    from package_storage.packages.doccache import DocCache

    monkeypatch.setattr(sources, "PARALLEL_MIN_TASKS", 0)
    paths = _paths(tmp_path)
    cache = DocCache(tmp_path / "cache")
    plain = load_sources(paths, require_signatures=False, workers=2, executor=executor)
    first = load_sources(paths, workers=2, executor=executor, cache=cache)
    assert _rendered(first) == _rendered(plain)

    def no_reading(*args: object, **kwargs: object) -> Package:
        raise AssertionError("a cached package was read again")

    monkeypatch.setattr(manifest, "read_package", no_reading)
    again = load_sources(paths, workers=2, executor=executor, cache=cache)
    assert _rendered(again) == _rendered(plain)
    zips = [p for p in again[0]]
    assert zips and all(isinstance(p.tree, LazyTree) and not p.tree.is_open for p in zips)
    example = by_key(again[0])[("example", "1.0.1")]
    assert example.tree.stat("manifest.yml") is not None  # opened now
    # The folder packages' trees are real folder trees (static files are served from disk).
    assert all(p.tree.kind == "folder" and not isinstance(p.tree, LazyTree) for p in again[1])


def test_a_changed_package_is_read_again_and_the_others_come_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from package_storage.packages import manifest
    from package_storage.packages.doccache import DocCache

    paths = _paths(tmp_path)
    cache = DocCache(tmp_path / "cache")
    load_sources(paths, workers=1, cache=cache)
    read: list[str] = []
    real = manifest.read_package

    def counting(tree: object, **kwargs: object) -> Package:
        read.append(getattr(tree, "location", "?"))
        return real(tree, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(manifest, "read_package", counting)
    changed = Path(paths[1]) / "example" / "1.0.0" / "manifest.yml"
    changed.write_text(changed.read_text().replace("title:", "title: New", 1))
    # a file deep inside another package: size and time change
    deep = next((Path(paths[1]) / "multiversion" / "1.2.0").rglob("*.yml"))
    deep.write_bytes(deep.read_bytes() + b"\n")
    result = load_sources(paths, workers=1, cache=cache)
    assert sorted(read) == sorted(
        [str(Path(paths[1]) / "example" / "1.0.0"), str(Path(paths[1]) / "multiversion" / "1.2.0")]
    )
    example = by_key(result[1])[("example", "1.0.0")]
    assert example.document["title"].startswith("New")


def test_the_cache_keeps_validation_apart(tmp_path: Path) -> None:
    """A package accepted without validation is still validated (and refused) with it."""
    from package_storage.packages.doccache import DocCache

    root = tmp_path / "packages"
    shutil.copytree(PACKAGE / "example" / "1.0.0", root / "example" / "1.0.0")
    manifest = root / "example" / "1.0.0" / "manifest.yml"
    manifest.write_text(
        "\n".join(ln for ln in manifest.read_text().splitlines() if not ln.startswith("title:"))
    )
    cache = DocCache(tmp_path / "cache")
    assert len(load_sources([str(root)], validate=False, workers=1, cache=cache)[1]) == 1
    with pytest.raises(PackageError, match="no title set"):
        load_sources([str(root)], validate=True, workers=1, cache=cache)


def test_content_keys_follow_links_and_refuse_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "pkg" / "1.0.0"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / "README.md").write_text("x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f").write_text("a")
    (folder / "link").symlink_to(tmp_path / "outside")
    (folder / "loop").symlink_to(folder)
    (folder / "dangling").symlink_to(tmp_path / "nowhere")
    task = sources.LoadTask("folder", str(folder), None, version_dir="1.0.0")
    first = sources.content_key(task, True)
    assert sources.content_key(task, True) == first
    assert sources.content_key(task, False) != first
    (tmp_path / "outside" / "f").write_text("ab")  # seen through the link
    assert sources.content_key(task, True) != first
