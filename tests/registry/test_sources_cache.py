"""The content-keyed cache of drop-in loading: a restart over unchanged package paths reads one
bulk file (no YAML, no per-package document, no pool); any changed, added or removed file of a
package (content or metadata) reads that package again, and only it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from package_storage.errors import PackageError
from package_storage.packages import manifest, render
from package_storage.packages.bulkcache import BulkCache
from package_storage.packages.doccache import DocCache
from package_storage.packages.model import Package
from package_storage.registry import sources
from package_storage.registry.sources import load_sources

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "epr"
PACKAGE = FIXTURES / "package"
LOCAL = FIXTURES / "local-storage"


def _paths(tmp_path: Path) -> list[str]:
    root = tmp_path / "paths"
    shutil.copytree(PACKAGE, root / "package")
    shutil.copytree(LOCAL, root / "local-storage")
    return [str(root / "local-storage"), str(root / "package")]


def _rendered(result: list[list[Package]]) -> list[list[tuple[str, bytes, bytes]]]:
    return [
        [(p.tree.location, render.dumps(p.document), render.dumps(p.search_entry)) for p in s]
        for s in result
    ]


class Reads:
    """Records the packages read from their files (``manifest.read_package``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.locations: list[str] = []
        real = manifest.read_package

        def counting(tree: object, **kwargs: object) -> Package:
            self.locations.append(getattr(tree, "location", "?"))
            return real(tree, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(manifest, "read_package", counting)


def _forbid(monkeypatch: pytest.MonkeyPatch, target: object, name: str) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{name} called")

    monkeypatch.setattr(target, name, refused)


def test_a_restart_reads_one_bulk_file_and_forks_no_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "PARALLEL_MIN_TASKS", 0)
    paths = _paths(tmp_path)
    cache = DocCache(tmp_path / "cache")
    plain = load_sources(paths, workers=2, executor="serial")
    first = load_sources(paths, workers=2, executor="process", cache=cache)
    assert _rendered(first) == _rendered(plain)
    bulk_files = list((tmp_path / "cache").glob("bulk-*/*.docs"))
    assert len(bulk_files) == 1
    stamp = bulk_files[0].stat().st_mtime_ns

    _forbid(monkeypatch, manifest, "read_package")
    _forbid(monkeypatch, DocCache, "get")
    _forbid(monkeypatch, DocCache, "put")
    _forbid(monkeypatch, BulkCache, "write")  # nothing changed: not rewritten
    _forbid(monkeypatch, sources, "ProcessPoolExecutor")
    _forbid(monkeypatch, sources.zipfile, "is_zipfile")  # a cached zip is known to be one
    again = load_sources(paths, workers=2, executor="process", cache=cache)
    assert _rendered(again) == _rendered(plain)
    assert bulk_files[0].stat().st_mtime_ns == stamp


def test_a_damaged_bulk_file_falls_back_to_the_documents_of_each_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _paths(tmp_path)
    cache = DocCache(tmp_path / "cache")
    plain = load_sources(paths, workers=1, cache=cache)
    (bulk_file,) = (tmp_path / "cache").glob("bulk-*/*.docs")
    data = bulk_file.read_bytes()
    bulk_file.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    _forbid(monkeypatch, manifest, "read_package")
    again = load_sources(paths, workers=1, cache=cache)
    assert _rendered(again) == _rendered(plain)
    assert bulk_file.read_bytes() == data  # written again


def _same_size_and_mtime(path: Path, old: bytes, new: bytes) -> None:
    """Replace the last ``old`` by ``new`` (same length) in the file, in place, and put its
    modification
    time back: only its change time tells (bounded retries until the clock moved it)."""
    assert len(old) == len(new)
    before = path.stat()
    data = path.read_bytes()
    at = data.rindex(old)
    for _ in range(200):
        path.write_bytes(data[:at] + new + data[at + len(old) :])
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        if path.stat().st_ctime_ns != before.st_ctime_ns:
            break
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert after.st_ctime_ns != before.st_ctime_ns


EXAMPLE = "package/example/1.0.0"


def _title(pkg: Path) -> None:
    _same_size_and_mtime(pkg / "manifest.yml", b"title: Example", b"title: Exempla")


def _deep(pkg: Path) -> None:
    path = next(p for p in sorted((pkg / "data_stream").rglob("*.yml")) if p.stat().st_size)
    data = path.read_bytes()
    _same_size_and_mtime(path, data[-1:], b" " if data[-1:] != b" " else b"\n")


def _added(pkg: Path) -> None:
    (pkg / "docs" / "extra.md").write_text("more")


def _added_folder(pkg: Path) -> None:
    (pkg / "kibana" / "new").mkdir()


def _removed(pkg: Path) -> None:
    next((pkg / "kibana" / "visualization").iterdir()).unlink()


def _renamed(pkg: Path) -> None:
    first = next((pkg / "kibana" / "visualization").iterdir())
    first.rename(first.with_name("renamed-" + first.name))


def _replaced(pkg: Path) -> None:
    path = pkg / "manifest.yml"
    before = path.stat()
    new = pkg / ".manifest.new"
    new.write_bytes(path.read_bytes().replace(b"title: Example", b"title: Exempla", 1))
    os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))
    new.rename(path)


def _chmod(pkg: Path) -> None:
    (pkg / "manifest.yml").chmod(0o600)


def _linked(pkg: Path) -> None:
    (pkg / "docs" / "link.md").symlink_to(pkg / "docs" / "README.md")


EDITS: dict[str, Callable[[Path], None]] = {
    "content, same size and mtime": _title,
    "deep file, same size and mtime": _deep,
    "added file": _added,
    "added folder": _added_folder,
    "removed file": _removed,
    "renamed file": _renamed,
    "replaced file": _replaced,
    "mode": _chmod,
    "added link": _linked,
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_any_change_reads_that_package_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: str
) -> None:
    paths = _paths(tmp_path)
    root = Path(paths[1]).parent
    pkg = root / EXAMPLE
    (pkg / "manifest.yml").chmod(0o644)
    cache = DocCache(tmp_path / "cache")
    load_sources(paths, workers=1, cache=cache)
    EDITS[edit](pkg)
    reads = Reads(monkeypatch)
    result = load_sources(paths, workers=1, cache=cache)
    assert reads.locations == [str(pkg)]
    fresh = load_sources(paths, workers=1)  # no cache: what the files say now
    assert _rendered(result) == _rendered(fresh)
    if edit in ("content, same size and mtime", "replaced file"):
        example = next(p for p in result[1] if p.tree.location == str(pkg))
        assert example.document["title"] == "Exempla Integration"
    # and the next restart has it cached again
    reads.locations.clear()
    load_sources(paths, workers=1, cache=cache)
    assert reads.locations == []


def test_added_and_removed_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _paths(tmp_path)
    root = Path(paths[1])
    cache = DocCache(tmp_path / "cache")
    load_sources(paths, workers=1, cache=cache)
    shutil.rmtree(root / "foo" / "1.0.0")
    shutil.copytree(PACKAGE / "foo" / "1.0.0", tmp_path / "elsewhere" / "foo" / "1.0.0")
    reads = Reads(monkeypatch)
    result = load_sources([*paths, str(tmp_path / "elsewhere")], workers=1, cache=cache)
    assert reads.locations == [str(tmp_path / "elsewhere" / "foo" / "1.0.0")]
    assert _rendered(result) == _rendered(
        load_sources([*paths, str(tmp_path / "elsewhere")], workers=1)
    )
    reads.locations.clear()
    result = load_sources(paths, workers=1, cache=cache)
    assert reads.locations == []
    assert ("foo", "1.0.0") not in [p.key for p in result[1]]


def test_a_changed_zip_is_read_again(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    cache = DocCache(tmp_path / "cache")
    load_sources(paths, workers=1, cache=cache)
    zip_path = Path(paths[0]) / "example-1.0.1.zip"
    data = zip_path.read_bytes()
    # a stored file's name in the central directory, in place: same size and mtime
    index = data.rindex(b"manifest.yml")
    _same_size_and_mtime(zip_path, data[index : index + 12], b"manifest.ym_")
    with pytest.raises(PackageError, match=r"example-1\.0\.1\.zip"):
        load_sources(paths, workers=1, cache=cache)  # read again: it has no manifest now
