"""Read app: stored artifact/signature files given by the index (bytes or files without an
extension) and route 10 with an empty file name (spec §1.1)."""

from __future__ import annotations

from pathlib import Path

from http_driver import FIXTURES, ONE_SECOND, PrefixRegistry, load_index, request

from package_storage.packages.model import Package
from package_storage.registry.http.app import ASGIApp, create_app
from package_storage.registry.index import RegistryIndex, StoredFile


class MemoryFiles:
    """Zips and signatures from a dict by package name (bytes or paths)."""

    def __init__(self, zips: dict[str, StoredFile], sigs: dict[str, StoredFile]) -> None:
        self.zips = zips
        self.sigs = sigs

    def zip_file(self, pkg: Package) -> StoredFile | None:
        return self.zips.get(pkg.name)

    def signature_file(self, pkg: Package) -> StoredFile | None:
        return self.sigs.get(pkg.name)


def _app(files: MemoryFiles) -> ASGIApp:
    plain = load_index(FIXTURES / "local-storage", FIXTURES / "package")
    index = RegistryIndex(plain.sources, files=files)
    return create_app(PrefixRegistry(index, {"dist": index}), ONE_SECOND)


def test_route_10_with_an_empty_file_is_not_redirected() -> None:
    app = create_app(
        PrefixRegistry(load_index(FIXTURES / "local-storage", FIXTURES / "package"), {}),
        ONE_SECOND,
    )
    for target in ("/package/Foo/1.0.0/", "/package/ex-ample/1.0.0/"):
        r = request(app, target)
        assert (r.status, r.text) == (404, "package revision not found\n"), target
        assert r.header("location") is None
        assert r.values("cache-control") == ["max-age=0", "private, no-store"]
    r = request(app, "/package/Foo/a.b/")
    assert (r.status, r.text) == (400, "invalid package version\n")
    # A trailing slash after a non-empty file still redirects (the file swallowed it).
    r = request(app, "/package/Foo/1.0.0/docs/")
    assert (r.status, r.header("location")) == (301, "/package/Foo/1.0.0/docs")


def test_stored_bytes_are_served_with_types_from_the_requested_name(tmp_path: Path) -> None:
    blob = tmp_path / "ab" / "abcdef"  # a blob file: no extension
    blob.parent.mkdir()
    blob.write_bytes(b"PK\x03\x04 not really a zip")
    app = _app(MemoryFiles({"example": blob}, {"example": b"-----BEGIN PGP SIGNATURE-----\n"}))
    for prefix in ("", "/dist"):
        r = request(app, f"{prefix}/epr/example/example-1.0.0.zip")
        assert r.status == 200
        assert r.body == blob.read_bytes()
        assert r.header("content-type") == "application/zip"
        assert r.header("last-modified") is not None
        assert r.header("accept-ranges") == "bytes"
        r = request(app, f"{prefix}/epr/example/example-1.0.0.zip.sig")
        assert r.status == 200
        assert r.body == b"-----BEGIN PGP SIGNATURE-----\n"
        assert r.header("last-modified") is None
        r = request(
            app, f"{prefix}/epr/example/example-1.0.0.zip.sig", headers=[("Range", "bytes=0-4")]
        )
        assert (r.status, r.body) == (206, b"-----")


def test_a_package_without_stored_signature_is_404() -> None:
    app = _app(MemoryFiles({}, {}))
    r = request(app, "/epr/example/example-1.0.0.zip.sig")
    assert (r.status, r.text) == (404, "signature file not found\n")
    assert r.values("cache-control") == ["max-age=0", "private, no-store"]
    # No stored zip: the zip is built from the folder package (as in plain EPR mode).
    r = request(app, "/epr/example/example-1.0.0.zip")
    assert r.status == 200
    assert r.body[:2] == b"PK"


def test_a_missing_stored_file_is_500(tmp_path: Path) -> None:
    app = _app(MemoryFiles({"example": tmp_path / "gone"}, {"example": tmp_path / "gone.sig"}))
    for target in ("/epr/example/example-1.0.0.zip", "/epr/example/example-1.0.0.zip.sig"):
        r = request(app, target)
        assert (r.status, r.text) == (500, "internal server error\n")


class RecordingRegistry:
    def __init__(self) -> None:
        self.asked: list[str | None] = []

    def resolve(self, prefix: str | None) -> RegistryIndex | None:
        self.asked.append(prefix)
        return None


def test_route_heads_are_never_resolved_as_prefixes() -> None:
    registry = RecordingRegistry()
    app = create_app(registry, ONE_SECOND)
    heads = ("search", "categories", "health", "favicon.ico", "index.json", "epr", "package")
    for head in heads:
        for target in (f"/{head}/x", f"/{head}/search", f"/{head}/x/y/"):
            request(app, target)
    request(app, "/production/search")
    assert [p for p in registry.asked if p is not None] == ["production"]
