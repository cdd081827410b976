"""Air-gapped bundles: selection, layout, checksums, and serving the bundle from another cwd.

The store is built with the catalog and blob store directly (no service), from real fixture
packages zipped with ``artifacts.build_zip``, so the bundle also loads in ``serve``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from package_storage.errors import ConflictError, InvalidInputError, NotFoundError
from package_storage.packages.artifacts import build_zip
from package_storage.packages.trees import FolderTree
from package_storage.registry.config import Settings, load_config_file
from package_storage.store.storage.base import ArtifactRecord, BlobStore, Catalog
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.store.storage.sqlite import SQLiteCatalog
from package_storage.transfer.export import export_bundle, parse_distribution_ref

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / ".." / "shared" / "fixtures" / "epr" / "package"
EXAMPLES = REPO / "examples" / "packages"

# (folder, Kibana constraint or None, signed, summary carries kibana_version)
PACKAGES = [
    (FIXTURES / "example" / "0.0.2", ">=6.0.0", True, True),
    (FIXTURES / "example" / "1.0.0", "~7.x.x", True, False),
    (FIXTURES / "example" / "1.0.1", "~7.x.x", False, False),  # dotted kibana.version key
    (FIXTURES / "example" / "1.1.0", "^7.16.0 || ^8.0.0", True, True),
    (FIXTURES / "example" / "1.2.0-rc1", "^7.16.0 || ^8.0.0", False, False),
    (FIXTURES / "multiversion" / "1.0.3", ">6.7.0", False, True),
    (FIXTURES / "multiversion" / "1.0.4", ">6.7.0", False, False),
    (FIXTURES / "multiversion" / "1.1.0", ">6.7.0", False, True),
    (FIXTURES / "multiversion" / "1.2.0", ">6.7.0", False, False),
    (FIXTURES / "metricsonly" / "2.0.1", None, False, False),
    (EXAMPLES / "hello_nginx" / "1.0.0", "^8.13.0", True, False),
    (EXAMPLES / "demo_dashboards" / "1.0.0", "^8.16.0", False, True),
]
LATE = (EXAMPLES / "acme_input" / "1.0.0", "^8.14.0")  # added after the tag


@dataclass
class Stored:
    catalog: Catalog
    blobs: BlobStore
    keys: dict[tuple[str, str], str]  # (name, version) -> artifact digest


def _key(folder: Path) -> tuple[str, str]:
    return folder.parent.name, folder.name


def _add(
    catalog: Catalog,
    blobs: BlobStore,
    folder: Path,
    constraint: str | None,
    signed: bool,
    summary: bool,
) -> str:
    name, version = _key(folder)
    data = build_zip(FolderTree(folder), name, version)
    digest = blobs.put(data)
    sig = (
        blobs.put(f"-----BEGIN PGP SIGNATURE-----\n{name}-{version}\n".encode()) if signed else None
    )
    manifest = {"title": name, "kibana_version": constraint} if summary else {}
    with catalog.transaction() as tx:
        tx.add_artifact(ArtifactRecord(digest, len(data), name, version, sig, manifest))
        tx.put_entry("production", name, version, digest, actor="test")
        for dist in tx.stages().affected_distributions("production"):
            tx.new_revision(dist)
    return digest


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    root = tmp_path_factory.mktemp("store")
    catalog = SQLiteCatalog(root / "catalog.db")
    blobs = LocalBlobStore(root / "blobs", fsync=False)
    keys: dict[tuple[str, str], str] = {}
    for folder, constraint, signed, summary in PACKAGES:
        keys[_key(folder)] = _add(catalog, blobs, folder, constraint, signed, summary)
    current = catalog.current_revision("production")
    assert current is not None
    with catalog.transaction() as tx:
        tx.add_tag("production", "8.15.0", current.number, actor="test")
    keys[_key(LATE[0])] = _add(catalog, blobs, LATE[0], LATE[1], False, False)
    try:
        yield Stored(catalog, blobs, keys)
    finally:
        catalog.close()


def _bundle_keys(out: Path) -> set[tuple[str, str]]:
    doc = json.loads((out / "bundle.json").read_text())
    return {(p["name"], p["version"]) for p in doc["packages"]}


def _zip_keys(out: Path) -> set[tuple[str, str]]:
    found = set()
    for path in (out / "packages").glob("*.zip"):
        name, _, version = path.name[: -len(".zip")].partition("-")
        found.add((name, version))
    return found


ALL_TAGGED = {_key(p[0]) for p in PACKAGES}


# --- references ------------------------------------------------------------------------------


def test_parse_distribution_ref() -> None:
    assert parse_distribution_ref("production") == ("production", None, None)
    assert parse_distribution_ref("production@8.12.0") == ("production", "8.12.0", None)
    assert parse_distribution_ref("production@7") == ("production", None, 7)
    for bad in ("", "@1", "production@"):
        with pytest.raises(InvalidInputError):
            parse_distribution_ref(bad)


def test_unknown_references(store: Stored, tmp_path: Path) -> None:
    for ref in ("nosuch", "production@nosuchtag", "production@999"):
        with pytest.raises(NotFoundError):
            export_bundle(
                store.catalog, store.blobs, ref, tmp_path / "o", kibana_version=None, latest=None
            )
    with pytest.raises(InvalidInputError):
        export_bundle(
            store.catalog, store.blobs, "production", tmp_path / "o", kibana_version="x.y",
            latest=None,
        )  # fmt: skip
    with pytest.raises(InvalidInputError):
        export_bundle(
            store.catalog, store.blobs, "production", tmp_path / "o", kibana_version=None, latest=0
        )


# --- selection -------------------------------------------------------------------------------


def test_export_all_current(store: Stored, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    report = export_bundle(
        store.catalog, store.blobs, "production", out, kibana_version=None, latest=None
    )
    expected = ALL_TAGGED | {_key(LATE[0])}
    assert {(v.name, v.version) for v in report.exported} == expected
    assert _bundle_keys(out) == expected == _zip_keys(out)
    current = store.catalog.current_revision("production")
    assert current is not None
    assert report.revision == current.number and report.revision_digest == current.digest
    assert report.tag is None
    # artifacts are byte-identical to the blobs; signatures exist exactly where stored
    for (name, version), digest in store.keys.items():
        zip_path = out / "packages" / f"{name}-{version}.zip"
        assert hashlib.sha256(zip_path.read_bytes()).hexdigest() == digest
        record = store.catalog.get_artifact(digest)
        assert record is not None
        sig = zip_path.with_name(zip_path.name + ".sig")
        assert sig.is_file() == (record.signature_digest is not None)
    assert report.signatures == sum(1 for p in PACKAGES if p[2])
    doc = json.loads((out / "bundle.json").read_text())
    assert doc["format"] == "package-storage-bundle/1"
    assert doc["source"]["digest"] == current.digest
    assert doc["counts"]["versions"] == len(expected)
    # the reported size is what is on disk
    on_disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert report.bundle_bytes == on_disk
    assert report.files == sum(1 for p in out.rglob("*") if p.is_file())
    assert (out / "README.txt").read_text().count("sha256sum -c SHA256SUMS") == 1


def test_export_tag_and_revision_number(store: Stored, tmp_path: Path) -> None:
    tagged = export_bundle(
        store.catalog, store.blobs, "production@8.15.0", tmp_path / "t",
        kibana_version=None, latest=None,
    )  # fmt: skip
    assert tagged.tag == "8.15.0"
    assert _bundle_keys(tmp_path / "t") == ALL_TAGGED
    numbered = export_bundle(
        store.catalog, store.blobs, "production@2", tmp_path / "n",
        kibana_version=None, latest=None,
    )  # fmt: skip
    assert numbered.revision == 2
    assert _bundle_keys(tmp_path / "n") == {_key(PACKAGES[0][0]), _key(PACKAGES[1][0])}


@pytest.mark.parametrize(
    ("kibana", "expected"),
    [
        (
            "8.15.0",
            {
                ("example", "0.0.2"),
                ("example", "1.1.0"),
                ("example", "1.2.0-rc1"),
                ("multiversion", "1.0.3"),
                ("multiversion", "1.0.4"),
                ("multiversion", "1.1.0"),
                ("multiversion", "1.2.0"),
                ("metricsonly", "2.0.1"),
                ("hello_nginx", "1.0.0"),
            },
        ),
        (
            "7.10",  # lenient parse: 7.10.0
            {
                ("example", "0.0.2"),
                ("example", "1.0.0"),
                ("example", "1.0.1"),
                ("multiversion", "1.0.3"),
                ("multiversion", "1.0.4"),
                ("multiversion", "1.1.0"),
                ("multiversion", "1.2.0"),
                ("metricsonly", "2.0.1"),
            },
        ),
        ("6.0.0", {("example", "0.0.2"), ("metricsonly", "2.0.1")}),
    ],
)
def test_kibana_filter(
    store: Stored, tmp_path: Path, kibana: str, expected: set[tuple[str, str]]
) -> None:
    phases: list[tuple[str, int, int]] = []
    out = tmp_path / "k"
    report = export_bundle(
        store.catalog, store.blobs, "production@8.15.0", out, kibana_version=kibana,
        latest=None, progress=lambda *args: phases.append(args),
    )  # fmt: skip
    assert _bundle_keys(out) == expected == _zip_keys(out)
    assert report.excluded_by_kibana == len(ALL_TAGGED) - len(expected)
    assert phases[-1] == ("copy", len(expected), len(expected))
    assert ("scan", len(ALL_TAGGED), len(ALL_TAGGED)) in phases
    assert not report.warnings


def test_latest(store: Stored, tmp_path: Path) -> None:
    out = tmp_path / "l"
    report = export_bundle(
        store.catalog, store.blobs, "production@8.15.0", out, kibana_version=None, latest=2
    )
    assert _bundle_keys(out) == {
        ("example", "1.2.0-rc1"),  # prereleases count as versions
        ("example", "1.1.0"),
        ("multiversion", "1.2.0"),
        ("multiversion", "1.1.0"),  # semver order: 1.1.0 > 1.0.4
        ("metricsonly", "2.0.1"),
        ("hello_nginx", "1.0.0"),
        ("demo_dashboards", "1.0.0"),
    }
    assert report.excluded_by_latest == len(ALL_TAGGED) - 7


def test_kibana_then_latest(store: Stored, tmp_path: Path) -> None:
    out = tmp_path / "kl"
    export_bundle(
        store.catalog, store.blobs, "production@8.15.0", out, kibana_version="7.10.0", latest=1
    )
    # the newest *compatible* example is 1.0.1, not 1.2.0-rc1
    assert _bundle_keys(out) == {
        ("example", "1.0.1"),
        ("multiversion", "1.2.0"),
        ("metricsonly", "2.0.1"),
    }


# --- files -----------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs GNU sha256sum")
def test_sha256sums_verify(store: Stored, tmp_path: Path) -> None:
    out = tmp_path / "s"
    export_bundle(
        store.catalog, store.blobs, "production", out, kibana_version="8.15.0", latest=None
    )
    listed = {line.split("  ", 1)[1] for line in (out / "SHA256SUMS").read_text().splitlines()}
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert listed == files - {"SHA256SUMS"}
    ok = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=out, capture_output=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # and it catches damage
    victim = next((out / "packages").glob("*.zip"))
    victim.write_bytes(victim.read_bytes() + b"x")
    bad = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=out, capture_output=True)
    assert bad.returncode != 0


def test_refuses_non_empty_out_unless_forced(store: Stored, tmp_path: Path) -> None:
    out = tmp_path / "f"
    export_bundle(store.catalog, store.blobs, "production", out, kibana_version=None, latest=None)
    with pytest.raises(ConflictError):
        export_bundle(
            store.catalog, store.blobs, "production", out, kibana_version="6.0.0", latest=None
        )
    (out / "notes.txt").write_text("mine\n")
    export_bundle(
        store.catalog, store.blobs, "production", out, kibana_version="6.0.0", latest=None,
        force=True,
    )  # fmt: skip
    # stale zips of the earlier bundle are gone, other files stay and are covered
    assert _zip_keys(out) == {("example", "0.0.2"), ("metricsonly", "2.0.1")}
    assert {p.name for p in (out / "packages").iterdir()} == {
        "example-0.0.2.zip",
        "example-0.0.2.zip.sig",
        "metricsonly-2.0.1.zip",
    }
    assert "notes.txt" in (out / "SHA256SUMS").read_text()
    with pytest.raises(InvalidInputError):
        export_bundle(
            store.catalog, store.blobs, "production", out / "README.txt", kibana_version=None,
            latest=None,
        )  # fmt: skip


def test_link_mode(store: Stored, tmp_path: Path) -> None:
    out = tmp_path / "ln"
    export_bundle(
        store.catalog, store.blobs, "production", out, kibana_version=None, latest=None, link=True
    )
    for (name, version), digest in store.keys.items():
        zip_path = out / "packages" / f"{name}-{version}.zip"
        assert hashlib.sha256(zip_path.read_bytes()).hexdigest() == digest
    assert not [p for p in (out / "packages").iterdir() if p.name.startswith(".")]


def test_non_local_blob_store(store: Stored, tmp_path: Path) -> None:
    class Remote:
        """A blob store without local files (like S3): forces streaming and zip-from-bytes."""

        def __init__(self, inner: BlobStore) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def path_for(self, digest: str) -> Path | None:
            return None

    out = tmp_path / "r"
    remote: BlobStore = Remote(store.blobs)  # type: ignore[assignment]
    export_bundle(store.catalog, remote, "production", out, kibana_version="6.0.0", latest=None)
    assert _zip_keys(out) == {("example", "0.0.2"), ("metricsonly", "2.0.1")}


def test_config_paths_relative_to_config_file(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "config.yml").write_text(
        "package_paths:\n  - ./packages\n  - /abs/path\npackage_paths_relative_to_config: true\n"
    )
    settings = load_config_file(Settings(config_path=str(bundle / "config.yml")))
    assert settings.package_paths == (str(bundle / "packages"), "/abs/path")
    # without the key, paths stay as written (EPR behaviour)
    (bundle / "config.yml").write_text("package_paths:\n  - ./packages\n")
    settings = load_config_file(Settings(config_path=str(bundle / "config.yml")))
    assert settings.package_paths == ("./packages",)


# --- the bundle serves -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command() -> list[str]:
    script = Path(sys.executable).parent / "package-storage"
    return [str(script)] if script.exists() else [sys.executable, "-m", "package_storage.cli.main"]


def test_bundle_serves_from_another_cwd(store: Stored, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    report = export_bundle(
        store.catalog, store.blobs, "production@8.15.0", out, kibana_version="8.15.0", latest=None
    )
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "packages").mkdir(parents=True)  # a decoy ./packages in the working directory
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EPR_", "PACKAGE_STORAGE_"))}
    proc = subprocess.Popen(
        [
            *_command(), "serve", "--config", str(out / "config.yml"),
            "--address", f"127.0.0.1:{port}", "-require-package-signatures=false",
        ],
        cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"serve exited with {proc.returncode}: {proc.communicate()}")
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("serve did not become ready")
            time.sleep(0.1)
        found = httpx.get(base + "/search?all=true&prerelease=true", timeout=10).json()
        served = {(p["name"], p["version"]) for p in found}
        assert served == {(v.name, v.version) for v in report.exported}
        zip_resp = httpx.get(base + "/epr/example/example-1.1.0.zip", timeout=10)
        assert zip_resp.status_code == 200
        assert hashlib.sha256(zip_resp.content).hexdigest() == store.keys[("example", "1.1.0")]
        assert httpx.get(base + "/epr/example/example-1.1.0.zip.sig", timeout=10).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_export(store: Stored, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from package_storage.cli.bundle import export

    root = Path(str(store.catalog.path))  # type: ignore[attr-defined]
    out = tmp_path / "cli"
    args = ["production@8.15.0", str(out), "--kibana-version", "8.15.0", "--latest", "1"]
    result = CliRunner().invoke(export, [*args, "--store", str(root.parent)])
    assert result.exit_code == 0, result.output
    assert "versions: 4 of 12 (3 not compatible with Kibana 8.15.0, 5 older than" in result.stdout
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert f"({size} bytes)" in result.stdout
    again = CliRunner().invoke(export, [*args, "--store", str(root.parent), "--json"])
    assert again.exit_code == 1 and "not empty" in again.stderr
    forced = CliRunner().invoke(export, [*args, "--store", str(root.parent), "--json", "--force"])
    assert forced.exit_code == 0
    assert json.loads(forced.stdout)["bundle_bytes"] == size
    missing = CliRunner().invoke(export, ["production", str(tmp_path / "x"), "--store", "/nope"])
    assert missing.exit_code == 1
