"""Delta bundles end to end, through the CLI on real stores: export a full bundle at a tag,
change the upstream (new versions, a yank, a removal), export the delta since the tag, import
both into a fresh store and compare the revision digest and the served /search; a store without
the base refuses the delta; the bundle check covers the delta fields; unsigned bundles serve as
printed and fail fast when signatures are required."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from package_storage.cli.main import main
from package_storage.errors import BundleError
from package_storage.packages.artifacts import build_zip
from package_storage.packages.trees import FolderTree
from package_storage.registry.http.app import AppOptions, create_app
from package_storage.serving.store_registry import StoreRegistry
from package_storage.store.directory import Store
from package_storage.transfer.bundle import check_bundle

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / ".." / "shared" / "fixtures" / "epr" / "package"
EXAMPLES = REPO / "examples" / "packages"
FIRST = [
    FIXTURES / "example" / "0.0.2",
    FIXTURES / "example" / "1.0.0",
    FIXTURES / "multiversion" / "1.0.3",
    FIXTURES / "multiversion" / "1.0.4",
    EXAMPLES / "hello_nginx" / "1.0.0",
]
SECOND = [
    FIXTURES / "example" / "1.1.0",
    FIXTURES / "multiversion" / "1.1.0",
    EXAMPLES / "hello_nginx" / "1.1.0",
]
OPTIONS = AppOptions(
    cache_time_index=1.0, cache_time_search=1.0, cache_time_categories=1.0, cache_time_catch_all=1.0
)


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(
        main,
        [str(a) for a in args],
        env={"PACKAGE_STORAGE_ACTOR": "tester", "PACKAGE_STORAGE_PASSPHRASE": ""},
        catch_exceptions=False,
    )


def ok(*args: str | Path) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, (args, result.output)
    return result


def zips(folder: Path, versions: list[Path]) -> Path:
    folder.mkdir(parents=True)
    for src in versions:
        name, version = src.parent.name, src.name
        (folder / f"{name}-{version}.zip").write_bytes(build_zip(FolderTree(src), name, version))
    return folder


def new_store(path: Path) -> Path:
    ok("init", "--store", path)
    return path


def digest(store: Path, distribution: str) -> str:
    with Store.open(store) as s:
        current = s.catalog.current_revision(distribution)
        assert current is not None
        return current.digest


def search(store: Path, prefix: str) -> Any:
    with Store.open(store) as s:
        app = create_app(StoreRegistry(s.catalog, s.blobs), OPTIONS)

        async def fetch() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get(f"{prefix}/search?all=true&prerelease=true")

        response = asyncio.run(fetch())
        assert response.status_code == 200
        return response.json()


def description(bundle: Path) -> dict[str, Any]:
    data = json.loads((bundle / "bundle.json").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """production: FIRST, tagged 8.15.0; then SECOND and a yank of example 1.0.0."""
    store = new_store(tmp_path / "upstream")
    ok("import", zips(tmp_path / "first", FIRST), "--stage", "production", "--store", store)
    ok("tag", "production", "8.15.0", "--store", store)
    ok("import", zips(tmp_path / "second", SECOND), "--stage", "production", "--store", store)
    ok("yank", "example", "1.0.0", "--stage", "production", "--reason", "bad", "--store", store)
    return store


def test_full_plus_delta_reproduces_the_upstream_revision(upstream: Path, tmp_path: Path) -> None:
    full, delta = tmp_path / "full", tmp_path / "delta"
    ok("export", "production@8.15.0", full, "--store", upstream)
    exported = ok("export", "production", delta, "--since", "8.15.0", "--store", upstream)
    assert "delta on top of production@8.15.0" in exported.output
    doc = description(delta)
    assert doc["kind"] == "delta"
    assert {(p["name"], p["version"]) for p in doc["packages"]} == {
        (p.parent.name, p.name) for p in SECOND
    }
    assert doc["yanks"] == [{"name": "example", "version": "1.0.0"}]
    assert doc["removes"] == [] and doc["unyanks"] == []
    with Store.open(upstream) as s:
        tag = s.catalog.tag("production", "8.15.0")
        base = s.catalog.revision("production", tag.revision)
    assert doc["base"]["revision"] == base.number and doc["base"]["digest"] == base.digest
    assert doc["selection_digest"] == digest(upstream, "production")
    assert description(full)["selection_digest"] == base.digest
    assert len(list((delta / "packages").glob("*.zip"))) == len(SECOND)

    site = new_store(tmp_path / "site")
    ok("import", full, "--stage", "production", "--store", site)
    assert digest(site, "production") == base.digest
    applied = ok("import", delta, "--stage", "production", "--store", site)
    assert "1 yanked" in applied.output and "(the bundle's selection)" in applied.output
    assert digest(site, "production") == digest(upstream, "production")
    assert search(site, "/production") == search(upstream, "/production")
    assert search(site, "") == search(upstream, "")
    # The same delta again: accepted, nothing changes.
    ok("import", delta, "--stage", "production", "--store", site)
    assert digest(site, "production") == digest(upstream, "production")


def test_a_store_without_the_base_refuses_the_delta(upstream: Path, tmp_path: Path) -> None:
    delta = tmp_path / "delta"
    ok("export", "production", delta, "--since", "8.15.0", "--store", upstream)
    site = new_store(tmp_path / "site")
    result = cli("import", delta, "--stage", "production", "--store", site)
    assert result.exit_code != 0
    message = result.output.strip().splitlines()
    assert len(message) == 1, result.output
    assert "production@8.15.0" in message[0] and "does not hold that base" in message[0]
    assert "[bundle-base-missing]" in message[0]
    with Store.open(site) as s:
        assert s.catalog.entries("production") == []


def test_a_delta_carries_removals(tmp_path: Path) -> None:
    """snapshot removes versions: the delta lists them and the importer removes them."""
    upstream = new_store(tmp_path / "upstream")
    ok("import", zips(tmp_path / "first", FIRST), "--stage", "snapshot", "--store", upstream)
    ok("tag", "snapshot", "t1", "--store", upstream)
    ok("remove", "multiversion", "1.0.3", "--stage", "snapshot", "--store", upstream)
    ok("import", zips(tmp_path / "second", SECOND[:1]), "--stage", "snapshot", "--store", upstream)
    full, delta = tmp_path / "full", tmp_path / "delta"
    ok("export", "snapshot@t1", full, "--store", upstream)
    ok("export", "snapshot", delta, "--since", "t1", "--store", upstream)
    assert description(delta)["removes"] == [{"name": "multiversion", "version": "1.0.3"}]
    site = new_store(tmp_path / "site")
    ok("import", full, "--stage", "snapshot", "--store", site)
    applied = ok("import", delta, "--stage", "snapshot", "--store", site)
    assert "1 removed" in applied.output
    assert digest(site, "snapshot") == digest(upstream, "snapshot")
    assert search(site, "/snapshot") == search(upstream, "/snapshot")


def test_a_delta_since_the_exported_revision_is_refused(upstream: Path, tmp_path: Path) -> None:
    result = cli("export", "production@8.15.0", tmp_path / "d", "--since", "8.15.0",
                 "--store", upstream)  # fmt: skip
    assert result.exit_code != 0
    assert "the one exported" in result.output


# --- the bundle check of the delta fields ----------------------------------------------------


def _edit(bundle: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = description(bundle)
    change(doc)
    data = (json.dumps(doc, indent=2) + "\n").encode()
    (bundle / "bundle.json").write_bytes(data)
    sums = (bundle / "SHA256SUMS").read_text().splitlines()
    fixed = [
        f"{hashlib.sha256(data).hexdigest()}  bundle.json"
        if line.endswith("  bundle.json")
        else line
        for line in sums
    ]
    (bundle / "SHA256SUMS").write_text("\n".join(fixed) + "\n")


def _drop_base(d: dict[str, Any]) -> None:
    d["base"] = None


def _bad_base_digest(d: dict[str, Any]) -> None:
    d["base"]["digest"] = "nope"


def _remove_an_added(d: dict[str, Any]) -> None:
    first = d["packages"][0]
    d["removes"] = [{"name": first["name"], "version": first["version"]}]


def _bad_kind(d: dict[str, Any]) -> None:
    d["kind"] = "partial"


@pytest.mark.parametrize(
    ("change", "rule", "text"),
    [
        (_drop_base, "bundle-json-invalid", "without its base"),
        (_bad_base_digest, "bundle-json-invalid", "base digest is not"),
        (_remove_an_added, "bundle-json-mismatch", "both adds and removes"),
        (_bad_kind, "bundle-json-invalid", "neither full nor delta"),
    ],
)
def test_the_check_refuses_a_malformed_delta(
    upstream: Path,
    tmp_path: Path,
    change: Callable[[dict[str, Any]], None],
    rule: str,
    text: str,
) -> None:
    delta = tmp_path / "delta"
    ok("export", "production", delta, "--since", "8.15.0", "--store", upstream)
    check = check_bundle(delta)
    assert check is not None and check.changes.base is not None
    _edit(delta, change)
    with pytest.raises(BundleError) as caught:
        check_bundle(delta)
    assert caught.value.rule == rule and text in str(caught.value)


def test_a_full_bundle_whose_selection_digest_lies_is_refused(
    upstream: Path, tmp_path: Path
) -> None:
    full = tmp_path / "full"
    ok("export", "production", full, "--store", upstream)

    def lie(d: dict[str, Any]) -> None:
        d["selection_digest"] = "0" * 64

    _edit(full, lie)
    with pytest.raises(BundleError) as caught:
        check_bundle(full)
    assert caught.value.rule == "bundle-json-mismatch"


# --- item 4: the bundle works on the other side as printed -----------------------------------


def _serve_env() -> Mapping[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EPR_", "PACKAGE_STORAGE_"))}
    return env


def _printed_serve(output: str) -> list[str]:
    line = next(ln for ln in output.splitlines() if "serve: package-storage serve" in ln)
    return line.split("serve: package-storage ", 1)[1].split()


def _serve(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "package-storage"), *args],
        env=_serve_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unsigned_bundle_serves_as_printed_and_fails_fast_when_signatures_are_required(
    upstream: Path, tmp_path: Path
) -> None:
    full = tmp_path / "full"
    printed = _printed_serve(ok("export", "production", full, "--store", upstream).output)
    assert printed[-1] == "--require-package-signatures=false"
    served = _serve([*printed, "--dry-run"], cwd=tmp_path)
    assert served.returncode == 0, served.stderr
    assert "packages loaded" in served.stdout
    refused = _serve(["serve", "--config", str(full / "config.yml")], cwd=tmp_path)
    assert refused.returncode == 1
    errors = [ln for ln in refused.stderr.splitlines() if "signature" in ln]
    assert len(errors) == 1, refused.stderr
    assert "--require-package-signatures=false" in errors[0]
    assert "Loading packages" not in refused.stderr and "Listening" not in refused.stderr


def test_a_signed_bundle_serves_as_printed(tmp_path: Path) -> None:
    store = new_store(tmp_path / "signed")
    ok("keys", "generate", "--store", store)
    ok("import", zips(tmp_path / "first", FIRST), "--stage", "production", "--store", store)
    full = tmp_path / "full"
    printed = _printed_serve(ok("export", "production", full, "--store", store).output)
    assert "--require-package-signatures=false" not in printed
    assert description(full)["public_key"]["file"] == "public-key.asc"
    served = _serve([*printed, "--dry-run"], cwd=tmp_path)
    assert served.returncode == 0, served.stderr
