"""The example packages under ``examples/packages``: well-formed, consistent, and loadable.

The file-level checks run on their own; the package-reading checks use ``manifest.read_package``
with validation on (skipped until ``manifest.py`` and ``trees.py`` exist).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from package_storage.packages import categories
from package_storage.packages.manifest import read_package
from package_storage.packages.trees import FolderTree
from package_storage.packages.validation import validate_for_publish
from package_storage.packages.versions import Constraint, Version
from package_storage.packages.yamlutil import expand_dotted, load_yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PACKAGES = EXAMPLES / "packages"
EXPECTED = {
    ("hello_nginx", "1.0.0"): "integration",
    ("hello_nginx", "1.1.0"): "integration",
    ("acme_input", "1.0.0"): "input",
    ("demo_dashboards", "1.0.0"): "content",
}
PACKAGE_DIRS = sorted(PACKAGES.glob("*/*"))
IDS = [f"{p.parent.name}-{p.name}" for p in PACKAGE_DIRS]


def _yaml(path: Path) -> Any:
    return expand_dotted(load_yaml(path.read_bytes(), path=str(path)))


def test_the_expected_examples_exist() -> None:
    found = {(p.parent.name, p.name) for p in PACKAGE_DIRS}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("root", PACKAGE_DIRS, ids=IDS)
def test_manifest_basics(root: Path) -> None:
    manifest = _yaml(root / "manifest.yml")
    assert manifest["name"] == root.parent.name
    assert str(Version.parse_strict(manifest["version"])) == root.name
    assert Version.parse_strict(manifest["format_version"]).major == 3
    assert manifest["type"] == EXPECTED[(root.parent.name, root.name)]
    assert manifest["title"] and manifest["description"]
    assert manifest["owner"]["github"] and manifest["owner"]["type"] in (
        "elastic",
        "partner",
        "community",
    )
    Constraint.parse(manifest["conditions"]["kibana"]["version"])
    unknown = [c for c in manifest["categories"] if not categories.is_known(c)]
    assert unknown == [], f"categories not in the known list: {unknown}"
    assert (root / "docs" / "README.md").is_file()


@pytest.mark.parametrize("root", PACKAGE_DIRS, ids=IDS)
def test_changelog_matches_version(root: Path) -> None:
    manifest = _yaml(root / "manifest.yml")
    changelog = _yaml(root / "changelog.yml")
    versions = [Version.parse_strict(str(entry["version"])) for entry in changelog]
    assert str(versions[0]) == manifest["version"], "newest changelog entry must be this version"
    assert versions == sorted(versions, reverse=True), "changelog entries newest first"
    for entry in changelog:
        assert entry["changes"], f"changelog entry {entry['version']} has no changes"
        for change in entry["changes"]:
            assert change["type"] in ("enhancement", "bugfix", "breaking-change")
            assert change["description"] and change["link"]


@pytest.mark.parametrize("root", PACKAGE_DIRS, ids=IDS)
def test_icons_are_valid_svg_files(root: Path) -> None:
    manifest = _yaml(root / "manifest.yml")
    assert manifest["icons"]
    for icon in manifest["icons"]:
        path = root / icon["src"].lstrip("/")
        assert path.is_file(), f"icon {icon['src']} missing"
        svg = ET.fromstring(path.read_bytes())
        assert svg.tag == "{http://www.w3.org/2000/svg}svg"
        assert icon["type"] == "image/svg+xml"


@pytest.mark.parametrize("root", PACKAGE_DIRS, ids=IDS)
def test_layout_rules(root: Path) -> None:
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_dir():
            assert "-" not in path.name, f"directory name with '-': {rel}"
        assert not path.is_symlink(), f"symlink in example: {rel}"
        if path.suffix == ".yml":
            _yaml(path)  # every YAML file parses


def test_hello_nginx_data_streams_have_fields_and_pipelines() -> None:
    for version, streams in (("1.0.0", ["access"]), ("1.1.0", ["access", "error"])):
        root = PACKAGES / "hello_nginx" / version
        found = sorted(p.name for p in (root / "data_stream").iterdir())
        assert found == streams
        for stream in streams:
            ds = root / "data_stream" / stream
            base = {f["name"]: f["type"] for f in _yaml(ds / "fields" / "base-fields.yml")}
            assert base == {
                "data_stream.type": "constant_keyword",
                "data_stream.dataset": "constant_keyword",
                "data_stream.namespace": "constant_keyword",
                "@timestamp": "date",
            }
            assert (ds / "elasticsearch" / "ingest_pipeline" / "default.yml").is_file()
            assert (ds / "agent" / "stream" / "stream.yml.hbs").is_file()


# --- loading through the product code --------------------------------------------------------


def _read(root: Path) -> Any:
    return read_package(FolderTree(root), validate=True, version_dir=root.name)


@pytest.mark.parametrize("root", PACKAGE_DIRS, ids=IDS)
def test_loads_with_validation(root: Path) -> None:
    pkg = _read(root)
    doc = pkg.document
    name, version = root.parent.name, root.name
    assert pkg.name == name and str(pkg.version) == version
    assert doc["name"] == name and doc["version"] == version
    assert doc["type"] == EXPECTED[(name, version)]
    assert doc["release"] == "ga"
    assert doc["download"] == f"/epr/{name}/{name}-{version}.zip"
    assert doc["path"] == f"/package/{name}/{version}"
    assert doc["readme"] == f"/package/{name}/{version}/docs/README.md"
    assert doc["license"] == "basic"
    assert doc["icons"][0]["path"] == f"/package/{name}/{version}/img/{name}.svg"
    assert f"/package/{name}/{version}/manifest.yml" in doc["assets"]
    assert "signature_path" not in doc
    assert pkg.search_entry["name"] == name


@pytest.mark.parametrize("root", PACKAGE_DIRS, ids=IDS)
def test_passes_publish_time_validation(root: Path) -> None:
    problems = validate_for_publish(FolderTree(root), version_dir=root.name)
    assert list(problems) == []


def test_hello_nginx_documents() -> None:
    old = _read(PACKAGES / "hello_nginx" / "1.0.0").document
    new = _read(PACKAGES / "hello_nginx" / "1.1.0").document
    assert [ds["dataset"] for ds in old["data_streams"]] == ["hello_nginx.access"]
    assert [ds["dataset"] for ds in new["data_streams"]] == [
        "hello_nginx.access",
        "hello_nginx.error",
    ]
    access = new["data_streams"][0]
    assert access["type"] == "logs"
    assert access["ingest_pipeline"] == "default"
    assert access["path"] == "access"
    stream = access["streams"][0]
    assert stream["input"] == "logfile"
    assert stream["enabled"] is True
    assert stream["template_path"] == "stream.yml.hbs"
    assert stream["ingestion_method"] == "File"
    assert [v["name"] for v in stream["vars"]] == ["paths", "preserve_original_event"]
    assert stream["vars"][1]["default"] is False
    assert new["conditions"]["kibana"]["version"] == "^8.13.0 || ^9.0.0"
    assert new["categories"] == ["web", "observability"]
    assert new["policy_templates"][0]["data_streams"] == ["access", "error"]


def test_acme_input_document() -> None:
    doc = _read(PACKAGES / "acme_input" / "1.0.0").document
    template = doc["policy_templates"][0]
    assert template["name"] == "acme_tcp"
    assert template["input"] == "tcp"
    assert template["type"] == "logs"
    assert template["template_path"] == "input.yml.hbs"
    assert template["ingestion_method"] == "Network Protocol"
    assert "data_streams" not in doc
    assert "vars" not in template  # policy-template vars are not part of the document (spec §6.1)


def test_demo_dashboards_document() -> None:
    doc = _read(PACKAGES / "demo_dashboards" / "1.0.0").document
    assert doc["discovery"] == {
        "fields": [{"name": "http.response.status_code"}, {"name": "url.original"}],
        "datasets": [{"name": "hello_nginx.access"}],
    }
    assert (
        "/package/demo_dashboards/1.0.0/kibana/dashboard/demo_dashboards-web-overview.json"
        in doc["assets"]
    )
    assert "policy_templates" not in doc
