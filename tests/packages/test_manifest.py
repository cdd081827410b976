"""Package reading against the reference's golden documents (spec §6, §7)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from package_storage.errors import PackageError, ValidationError
from package_storage.packages import categories, manifest, render
from package_storage.packages.model import Package
from package_storage.packages.trees import FolderTree, ZipTree

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "epr"
GENERATED = FIXTURES / "generated"
PACKAGES = FIXTURES / "package"
SECOND = FIXTURES / "second_package_path"
LOCAL_STORAGE = FIXTURES / "local-storage"

# Goldens no current reference test produces (spec §12).
STALE = {
    "package/fakeapm/1.0.0/index.json",
    "package/ilmpolicy/1.0.0/index.json",
    "package/deprecated_integration_input/0.0.1/index.json",
    "package/deprecated_integration_stream/0.0.1/index.json",
}


# --- loading the fixture sources like the reference does ---------------------------------------


def _folder_dirs(path: Path) -> list[Path]:
    return [
        v for n in sorted(path.iterdir()) if n.is_dir() for v in sorted(n.iterdir()) if v.is_dir()
    ]


def _dedupe(packages: Iterable[Package]) -> list[Package]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in packages:
        if p.key not in seen:
            seen.add(p.key)
            out.append(p)
    return out


def folder_source(*paths: Path) -> list[Package]:
    pkgs = [
        manifest.read_package(FolderTree(d), version_dir=d.name)
        for path in paths
        for d in _folder_dirs(path)
    ]
    return manifest.propagate_deprecations(_dedupe(pkgs))


def zip_source(path: Path) -> list[Package]:
    pkgs = []
    for z in sorted(path.rglob("*.zip")):
        pkgs.append(manifest.read_package(ZipTree.open(z), signature=Path(f"{z}.sig").exists()))
    return manifest.propagate_deprecations(_dedupe(pkgs))


_CACHE: dict[str, list[list[Package]]] = {}


def setup_sources(setup: str) -> list[list[Package]]:
    """Sources of the cases.md setups, in precedence order."""
    if setup not in _CACHE:
        _CACHE[setup] = {
            "A": lambda: [zip_source(LOCAL_STORAGE), folder_source(SECOND, PACKAGES)],
            "B": lambda: [folder_source(PACKAGES)],
            "C": lambda: [zip_source(LOCAL_STORAGE)],
            "D": lambda: [zip_source(LOCAL_STORAGE), folder_source(PACKAGES)],
            "E": lambda: [folder_source(SECOND, PACKAGES)],
        }[setup]()
    return _CACHE[setup]


def lookup(setup: str, name: str, version: str) -> Package:
    for source in setup_sources(setup):
        for p in source:
            if p.key == (name, version):
                return p
    raise LookupError(f"{name} {version} not in setup {setup}")


def golden_bytes(rel: str) -> bytes:
    return (GENERATED / rel).read_bytes()


# --- full documents ---------------------------------------------------------------------------

INDEX_GOLDENS = sorted(
    str(p.relative_to(GENERATED))
    for p in GENERATED.glob("package/*/*/index.json")
    if str(p.relative_to(GENERATED)) not in STALE
)


@pytest.mark.parametrize("rel", INDEX_GOLDENS)
def test_package_index_golden(rel: str) -> None:
    _, name, version, _ = rel.split("/")
    pkg = lookup("E", name, version)
    assert render.dumps(pkg.document) == golden_bytes(rel)


NAMED_GOLDENS = [
    ("package.json", "D", "example", "1.0.0"),
    ("package-zip.json", "C", "example", "1.0.1"),
    ("package-zip-nodirentries.json", "D", "nodirentries", "1.0.0"),
    ("datasources-1.0.0-package.json", "D", "datasources", "1.0.0"),
    ("package-deprecated-input-package-1.0.0.json", "D", "deprecated_input_package", "1.0.0"),
    ("package-deprecated-input-policy-1.0.0.json", "D", "deprecated_input_policy", "1.0.0"),
    (
        "package-deprecated-integration-input-1.0.0.json",
        "D",
        "deprecated_integration_input",
        "1.0.0",
    ),
    (
        "package-deprecated-integration-stream-1.0.0.json",
        "D",
        "deprecated_integration_stream",
        "1.0.0",
    ),
]


@pytest.mark.parametrize(("golden", "setup", "name", "version"), NAMED_GOLDENS)
def test_named_document_golden(golden: str, setup: str, name: str, version: str) -> None:
    pkg = lookup(setup, name, version)
    assert render.dumps(pkg.document) == golden_bytes(golden)


def test_zip_example_served_from_zip_with_signature() -> None:
    pkg = lookup("D", "example", "1.0.1")
    assert pkg.tree.kind == "zip"
    assert pkg.document["signature_path"] == "/epr/example/example-1.0.1.zip.sig"
    assert (
        list(pkg.search_entry).index("signature_path")
        == list(pkg.search_entry).index("categories") + 1
    )


# --- search entries ---------------------------------------------------------------------------

SEARCH_CATEGORY = {
    "search-category-web.json": "web",
    "search-category-observability-subcategories.json": "observability",
    "search-category-web-all.json": "web",
    "search-category-custom.json": "custom",
    "search-category-datastore.json": "datastore",
    "search-category-datastore-prerelease.json": "datastore",
}


def _has(values: Iterable[str], category: str) -> bool:
    values = list(values)
    return category in values or any(
        c in values for c in categories.SUBCATEGORIES.get(category, ())
    )


def _search_cases() -> list[tuple[str, int]]:
    cases: list[tuple[str, int]] = []
    for p in sorted(GENERATED.glob("search-*")):
        try:
            body = json.loads(p.read_bytes())
        except ValueError:
            continue
        if isinstance(body, list):
            cases.extend((p.name, i) for i in range(len(body)))
    return cases


SEARCH_CASES = _search_cases()


def _golden_entry(golden: str, i: int) -> bytes:
    entries = json.loads((GENERATED / golden).read_bytes())
    return render.entry_fragment(entries[i])


@pytest.mark.parametrize(("golden", "i"), SEARCH_CASES)
def test_search_entry_golden(golden: str, i: int) -> None:
    raw = (GENERATED / golden).read_bytes()
    expected = json.loads(raw)[i]
    pkg = lookup("A", expected["name"], expected["version"])
    entry: dict[str, Any] = pkg.search_entry
    category = SEARCH_CATEGORY.get(golden)
    if category is not None and not _has(pkg.categories, category):
        entry = manifest.filter_policy_templates(entry, category)
    # Byte-exact: the golden's element, cut out of the body, equals our fragment.
    assert render.entry_fragment(entry) in raw
    assert entry == expected


def test_search_golden_bodies_are_joins_of_fragments() -> None:
    raw = golden_bytes("search-package-prerelease.json")
    expected = json.loads(raw)
    entries = [lookup("A", e["name"], e["version"]).search_entry for e in expected]
    assert render.search_body(entries) == raw


def test_search_entry_key_order_matches_spec() -> None:
    pkg = lookup("A", "input_groups", "0.0.1")
    keys = list(pkg.search_entry)
    assert keys == [k for k in manifest.SEARCH_KEY_ORDER if k in keys]
    doc_keys = list(pkg.document)
    assert doc_keys == [k for k in manifest.FULL_KEY_ORDER if k in doc_keys]


# --- filter attributes ------------------------------------------------------------------------


def test_package_attributes() -> None:
    pkg = lookup("A", "example", "1.2.0-rc1")
    assert pkg.name == "example"
    assert str(pkg.version) == "1.2.0-rc1"
    assert pkg.is_prerelease
    assert pkg.release == "ga"
    assert pkg.type == "integration"
    assert pkg.categories == ("crm", "azure", "cloud")
    assert pkg.capabilities == ("observability", "security")
    assert str(pkg.spec_version) == "3.0.0"
    assert pkg.kibana_version is not None and str(pkg.kibana_version) == "^7.16.0 || ^8.0.0"
    assert pkg.agent_version is None
    assert [(t.name, t.categories) for t in pkg.policy_templates] == [("logs", ("datastore",))]
    assert pkg.discovery_fields is None

    good = lookup("A", "good_content", "0.1.0")
    assert good.discovery_fields == ("process.pid",)
    assert good.discovery_datasets == ("good_content.access", "good_content.errors")
    empty = lookup("A", "discovery_empty", "0.1.0")
    assert empty.discovery_fields == () and "discovery" not in empty.document

    agent = lookup("A", "agent_version", "1.0.0")
    assert agent.agent_version is not None and str(agent.agent_version) == "^9.2.0"


def test_deprecation_propagated_within_source() -> None:
    versions = [p for p in setup_sources("E")[0] if p.name == "multiversion"]
    assert {str(p.version) for p in versions} == {"1.0.3", "1.0.4", "1.1.0", "1.2.0"}
    for p in versions:
        assert p.deprecated == {"since": "1.2.0", "description": "This package is deprecated"}
        assert p.document["deprecated"] is p.deprecated
        assert p.search_entry["deprecated"] is p.deprecated


def test_propagation_highest_version_wins_and_replaces(tmp_path: Path) -> None:
    old = _make_package(
        tmp_path / "a", "p", "1.0.0", "deprecated:\n  since: '0.1'\n  description: old\n"
    )
    new = _make_package(
        tmp_path / "b", "p", "2.0.0", "deprecated:\n  since: '2.0'\n  description: new\n"
    )
    plain = _make_package(tmp_path / "c", "p", "1.5.0", "")
    other = _make_package(tmp_path / "d", "q", "1.0.0", "")
    out = manifest.propagate_deprecations([old, plain, new, other])
    assert [p.key for p in out] == [old.key, plain.key, new.key, other.key]
    assert [p.deprecated and p.deprecated["description"] for p in out] == [
        "new",
        "new",
        "new",
        None,
    ]
    assert out[3] is other and out[2] is new
    assert (
        list(out[1].document).index("deprecated") == list(out[1].document).index("categories") + 1
    )


# --- synthetic packages -----------------------------------------------------------------------

_BASE = """format_version: 3.0.0
name: {name}
title: T
description: D
version: {version}
categories: [custom, not_a_category]
"""


def _make_package(root: Path, name: str, version: str, extra: str, readme: bool = True) -> Package:
    _write_tree(root, name, version, extra, readme)
    return manifest.read_package(FolderTree(root), validate=False)


def _write_tree(root: Path, name: str, version: str, extra: str, readme: bool = True) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.yml").write_text(_BASE.format(name=name, version=version) + extra)
    if readme:
        (root / "docs").mkdir(exist_ok=True)
        (root / "docs" / "README.md").write_text("# readme\n")


def _load(root: Path, **kw: Any) -> Package:
    return manifest.read_package(FolderTree(root), validate=False, **kw)


def test_unknown_categories_removed_and_derived_fields(tmp_path: Path) -> None:
    pkg = _make_package(tmp_path, "p", "0.9.0", "")
    assert pkg.document["categories"] == ["custom"]
    assert pkg.release == "beta"  # 0.x without release
    assert pkg.document["license"] == "basic"
    assert pkg.document["type"] == "integration"
    assert pkg.document["readme"] == "/package/p/0.9.0/docs/README.md"
    assert pkg.document["assets"] == [
        "/package/p/0.9.0/manifest.yml",
        "/package/p/0.9.0/docs/README.md",
    ]


def test_license_from_subscription(tmp_path: Path) -> None:
    pkg = _make_package(tmp_path, "p", "1.0.0", "conditions:\n  elastic.subscription: gold\n")
    assert pkg.document["license"] == "gold"
    assert pkg.document["conditions"] == {"elastic": {"subscription": "gold"}}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("release: alpha\n", 'invalid release: "alpha"'),
        ("conditions:\n  kibana.version: ''\n", "invalid Kibana versions range"),
        ("conditions:\n  agent.version: 'nope'\n", "invalid Agent versions range"),
        (
            "policy_templates:\n  - name: a\n    title: A\n    description: x\n"
            "    deployment_modes:\n      agentless: {enabled: true, release: ga2}\n",
            'policy template "a": invalid agentless release: "ga2"',
        ),
        ("policy_templates:\n  - title: A\n    description: x\n", "policy_templates.0.name"),
        ("icons:\n  - title: x\n", "icons.0.src"),
        ("requires:\n  input:\n    - package: x\n", "requires.input.0.version"),
        ("discovery:\n  fields:\n    - {}\n", "discovery.fields.0.name"),
    ],
)
def test_always_rules(tmp_path: Path, extra: str, message: str) -> None:
    _write_tree(tmp_path, "p", "1.0.0", extra)
    with pytest.raises(PackageError) as exc:
        _load(tmp_path)
    assert message in str(exc.value)
    assert str(tmp_path) in str(exc.value)


def test_invalid_version_and_format_version(tmp_path: Path) -> None:
    _write_tree(tmp_path / "a", "p", "1.0", "")
    with pytest.raises(PackageError, match="invalid package version"):
        _load(tmp_path / "a")
    (tmp_path / "b").mkdir()
    _write_tree(tmp_path / "b", "p", "1.0.0", "")
    text = (tmp_path / "b" / "manifest.yml").read_text().replace("3.0.0", "3.0")
    (tmp_path / "b" / "manifest.yml").write_text(text)
    with pytest.raises(PackageError, match="invalid format spec version"):
        _load(tmp_path / "b")


def test_readme_required(tmp_path: Path) -> None:
    _write_tree(tmp_path, "p", "1.0.0", "", readme=False)
    with pytest.raises(PackageError, match=r"no readme file found, README\.md is required"):
        _load(tmp_path)
    (tmp_path / "docs" / "README.md").mkdir(parents=True)
    with pytest.raises(PackageError, match=r"README\.md is a directory"):
        _load(tmp_path)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"manifest\.yml"):
        _load(tmp_path)


def test_directory_with_dash_is_an_error(tmp_path: Path) -> None:
    _write_tree(tmp_path, "p", "1.0.0", "")
    (tmp_path / "kibana" / "some-dir").mkdir(parents=True)
    with pytest.raises(
        PackageError, match="directory name inside package p contains -: kibana/some-dir"
    ):
        _load(tmp_path)


def test_assets_skip_ds_store_and_keep_hidden(tmp_path: Path) -> None:
    _write_tree(tmp_path, "p", "1.0.0", "")
    (tmp_path / ".DS_Store").write_text("x")
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "Z.txt").write_text("x")
    (tmp_path / "docs" / "a").mkdir()
    (tmp_path / "docs" / "a" / "deep.md").write_text("x")
    pkg = _load(tmp_path)
    assert pkg.document["assets"] == [
        "/package/p/1.0.0/.hidden",
        "/package/p/1.0.0/Z.txt",
        "/package/p/1.0.0/manifest.yml",
        "/package/p/1.0.0/docs/README.md",
        "/package/p/1.0.0/docs/a/deep.md",
    ]


def test_policy_template_readme_and_ingestion_method(tmp_path: Path) -> None:
    extra = (
        "type: input\n"
        "policy_templates:\n"
        "  - name: sql\n    title: S\n    description: d\n    input: sql/metrics\n"
        "  - name: other\n    title: O\n    description: d\n    input: sql\n    multiple: no\n"
    )
    _write_tree(tmp_path, "p", "1.0.0", extra)
    (tmp_path / "docs" / "sql.md").write_text("x")
    pkg = _load(tmp_path)
    t1, t2 = pkg.document["policy_templates"]
    assert t1 == {
        "name": "sql",
        "title": "S",
        "description": "d",
        "multiple": True,
        "readme": "/package/p/1.0.0/docs/sql.md",
        "input": "sql/metrics",
        "ingestion_method": "Database",
    }
    assert t2 == {
        "name": "other",
        "title": "O",
        "description": "d",
        "multiple": False,
        "input": "sql",
    }
    assert pkg.search_entry["policy_templates"] == [
        {"name": "sql", "title": "S", "description": "d"},
        {"name": "other", "title": "O", "description": "d"},
    ]
    (tmp_path / "docs" / "sql.md").unlink()
    (tmp_path / "docs" / "sql.md").mkdir()
    with pytest.raises(PackageError, match=r"sql\.md is a directory"):
        _load(tmp_path)


def test_variables_defaults_and_free_form_maps(tmp_path: Path) -> None:
    extra = (
        "vars:\n"
        "  - name: a\n    default: {zeta: 1.0, alpha: {b.c: 0.5}, Beta: [ {y: 1, x: 2} ]}\n"
        "  - name: b\n    default: false\n    title: ''\n"
        "  - name: c\n    default: ~\n    type: text\n    multi: true\n"
    )
    _write_tree(tmp_path, "p", "1.0.0", extra)
    pkg = _load(tmp_path)
    a, b, c = pkg.document["vars"]
    assert list(a) == ["name", "type", "multi", "required", "show_user", "default"]
    assert list(a["default"]) == ["Beta", "alpha", "zeta"]
    assert list(a["default"]["Beta"][0]) == ["x", "y"]
    assert a["default"]["alpha"] == {"b": {"c": 0.5}}
    assert b["default"] is False and "title" not in b
    assert "default" not in c and c["multi"] is True and c["type"] == "text"
    text = render.dumps(pkg.document).decode()
    assert '"zeta": 1\n' in text


def test_data_stream_rules(tmp_path: Path) -> None:
    _write_tree(tmp_path, "p", "1.0.0", "")
    ds = tmp_path / "data_stream"
    # b: default pipeline discovered with elasticsearch section
    (ds / "b" / "elasticsearch" / "ingest_pipeline").mkdir(parents=True)
    (ds / "b" / "elasticsearch" / "ingest_pipeline" / "default.yml").write_text("{}")
    (ds / "b" / "manifest.yml").write_text(
        "title: B\ntype: logs\nelasticsearch:\n  index_template.mappings: {}\n"
        "streams:\n  - input: logfile\n    enabled: false\n  - package: x\n    template_path: t.hbs\n"
    )
    # a: default pipeline without elasticsearch section, dataset given, release given
    (ds / "a" / "elasticsearch" / "ingest_pipeline").mkdir(parents=True)
    (ds / "a" / "elasticsearch" / "ingest_pipeline" / "default.json").write_text("{}")
    (ds / "a" / "manifest.yml").write_text(
        "title: A\ntype: metrics\ndataset: p.custom\nrelease: experimental\nhidden: true\n"
    )
    # not_a_stream: no manifest
    (ds / "not_a_stream").mkdir()
    pkg = _load(tmp_path)
    a, b = pkg.document["data_streams"]
    assert a == {
        "type": "metrics",
        "dataset": "p.custom",
        "hidden": True,
        "title": "A",
        "release": "experimental",
        "ingest_pipeline": "default",
        "package": "p",
        "path": "a",
    }
    assert b["ingest_pipeline"] == "default"
    assert b["release"] == "ga"
    assert b["elasticsearch"] == {"ingest_pipeline.name": "default"}
    assert b["streams"] == [
        {
            "input": "logfile",
            "template_path": "stream.yml.hbs",
            "enabled": False,
            "ingestion_method": "File",
        },
        {"package": "x", "template_path": "t.hbs", "enabled": True},
    ]
    assert pkg.search_entry["data_streams"] == [
        {"type": "metrics", "dataset": "p.custom", "title": "A"},
        {"type": "logs", "dataset": "p.b", "title": "B"},
    ]


def test_unused_pipelines(tmp_path: Path) -> None:
    _write_tree(tmp_path, "p", "1.0.0", "")
    d = tmp_path / "data_stream" / "x"
    (d / "elasticsearch" / "ingest_pipeline").mkdir(parents=True)
    (d / "elasticsearch" / "ingest_pipeline" / "other.json").write_text("{}")
    (d / "manifest.yml").write_text("title: X\ntype: logs\n")
    with pytest.raises(PackageError, match=r"unused pipelines in the package \(dataset: p\.x\)"):
        _load(tmp_path)


def test_data_stream_invalid_release_and_required(tmp_path: Path) -> None:
    _write_tree(tmp_path, "p", "1.0.0", "")
    d = tmp_path / "data_stream" / "x"
    d.mkdir(parents=True)
    (d / "manifest.yml").write_text("title: X\ntype: logs\nrelease: rc\n")
    with pytest.raises(PackageError, match='invalid release: "rc"'):
        _load(tmp_path)
    (d / "manifest.yml").write_text("type: logs\n")
    with pytest.raises(PackageError, match="missing required field title"):
        _load(tmp_path)


def test_with_signature_and_keyword(tmp_path: Path) -> None:
    _write_tree(tmp_path, "p", "1.0.0", "owner:\n  github: me\n")
    plain = _load(tmp_path)
    signed = manifest.with_signature(plain)
    direct = _load(tmp_path, signature=True)
    assert render.dumps(signed.document) == render.dumps(direct.document)
    assert render.dumps(signed.search_entry) == render.dumps(direct.search_entry)
    assert direct.document["signature_path"] == "/epr/p/p-1.0.0.zip.sig"
    assert "signature_path" not in plain.document
    assert manifest.with_signature(signed) is signed


def test_filter_policy_templates() -> None:
    pkg = lookup("A", "input_groups", "0.0.1")
    kept = manifest.filter_policy_templates(pkg.search_entry, "compute")
    assert kept["policy_templates"] == pkg.search_entry["policy_templates"]
    gone = manifest.filter_policy_templates(pkg.document, "security")
    assert "policy_templates" not in gone
    assert list(gone) == [k for k in pkg.document if k != "policy_templates"]
    assert "policy_templates" in pkg.document  # the original is untouched


# --- validation hook --------------------------------------------------------------------------


def test_validation_runs_when_enabled(tmp_path: Path) -> None:
    root = tmp_path / "p" / "2.0.0"
    _write_tree(root, "p", "1.0.0", "")  # version differs from its directory
    pkg = manifest.read_package(FolderTree(root), validate=False, version_dir="2.0.0")
    assert str(pkg.version) == "1.0.0"
    with pytest.raises(ValidationError) as exc:
        manifest.read_package(FolderTree(root), validate=True, version_dir="2.0.0")
    assert exc.value.rule


def test_fixture_zip_copy_loads_from_bytes(tmp_path: Path) -> None:
    src = LOCAL_STORAGE / "nodirentries-1.0.0.zip"
    shutil.copy(src, tmp_path / "x.zip")
    from_disk = manifest.read_package(ZipTree.open(tmp_path / "x.zip"))
    from_mem = manifest.read_package(ZipTree.from_bytes(src.read_bytes(), "mem.zip"))
    assert render.dumps(from_disk.document) == render.dumps(from_mem.document)
    assert render.dumps(from_mem.document) == golden_bytes("package-zip-nodirentries.json")
