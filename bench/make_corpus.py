"""Generate a synthetic package corpus from the EPR fixture packages.

Every generated version is a real package folder (manifest, docs, data streams, kibana assets,
images) copied from a fixture template, with a new name and version written into its manifest.
Optionally pads each version with extra kibana saved objects so that it has at least
``--min-files`` files (the import benchmark wants 50+ files per version), and adds one package
whose zip is about 1 MB (for the download benchmark).

``--production`` imitates the layout of Elastic's production registry instead (see
:func:`generate_production`): 185 names, 1,920 versions, a skewed number of versions per name,
Kibana conditions that move up with the versions, and realistic file counts and sizes (docs,
dashboards, screenshots, data streams with fields files).

    python bench/make_corpus.py OUT --versions 2000 [--min-files 0] [--fixtures ../shared/fixtures/epr]
    python bench/make_corpus.py OUT --production
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
from pathlib import Path

# Fixture packages that load with validation on and cover the document features.
TEMPLATES = [
    ("package/example/1.0.0", "integration"),
    ("package/reference/1.0.0", "integration"),
    ("package/yamlpipeline/1.0.0", "integration"),
    ("package/sql_input/0.3.0", "input"),
    ("package/good_content/0.1.0", "content"),
    ("package/multiversion/1.1.0", "integration"),
    ("package/nginx_grouped/0.1.0", "integration"),
    ("package/agent_version/1.0.0", "integration"),
]

VERSIONS_PER_NAME = 10
BIG_PACKAGE = "bench_big_download"


def _rewrite_manifest(text: str, name: str, version: str) -> str:
    text = re.sub(r"(?m)^name:.*$", f"name: {name}", text, count=1)
    text = re.sub(r"(?m)^version:.*$", f"version: {version}", text, count=1)
    return text


def _version(i: int) -> str:
    # 10 versions per name: 1.0.0 .. 1.0.7, then 1.1.0-beta1 (prerelease) and 2.0.0
    if i < 8:
        return f"1.0.{i}"
    return "1.1.0-beta1" if i == 8 else "2.0.0"


def _pad(dst: Path, min_files: int, rng: random.Random) -> None:
    files = [p for p in dst.rglob("*") if p.is_file()]
    missing = min_files - len(files)
    if missing <= 0:
        return
    target = dst / "kibana" / "visualization"
    target.mkdir(parents=True, exist_ok=True)
    for k in range(missing):
        seed = rng.randrange(1 << 30)
        padding = "x" * rng.randrange(200, 2000)
        body = (
            f'{{"title": "Synthetic visualization {k}", "seed": {seed}, "padding": "{padding}"}}\n'
        )
        (target / f"synthetic-{k:04d}.json").write_text(body)


def generate(out: Path, fixtures: Path, versions: int, min_files: int) -> int:
    rng = random.Random(42)
    out.mkdir(parents=True, exist_ok=True)
    made = 0
    n_names = (versions + VERSIONS_PER_NAME - 1) // VERSIONS_PER_NAME
    for n in range(n_names):
        template, _kind = TEMPLATES[n % len(TEMPLATES)]
        src = fixtures / template
        name = f"bench_{Path(template).parent.name}_{n:04d}"
        for i in range(VERSIONS_PER_NAME):
            if made >= versions:
                break
            version = _version(i)
            dst = out / name / version
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst, symlinks=False)
            manifest = dst / "manifest.yml"
            manifest.write_text(_rewrite_manifest(manifest.read_text(), name, version))
            changelog = dst / "changelog.yml"
            if changelog.exists():
                changelog.unlink()
            _pad(dst, min_files, rng)
            made += 1
    # One package with a ~1 MB incompressible image, for the download benchmark.
    big = out / BIG_PACKAGE / "1.0.0"
    if big.exists():
        shutil.rmtree(big)
    shutil.copytree(fixtures / "package/example/1.0.0", big)
    manifest = big / "manifest.yml"
    manifest.write_text(_rewrite_manifest(manifest.read_text(), BIG_PACKAGE, "1.0.0"))
    (big / "img" / "large.png").write_bytes(os.urandom(1024 * 1024))
    return made + 1


# --- production-like corpus ---------------------------------------------------------------------

PRODUCTION_NAMES = 185
PRODUCTION_VERSIONS = 1920
PRODUCTION_MARKER = ".production-corpus"
# Valid integration packages with real structure (data streams, fields, pipelines, kibana
# assets, images), from the package-spec test packages and the EPR fixtures.
PRODUCTION_TEMPLATES = [
    ("spec", "good_v3"),
    ("spec", "with_links"),
    ("spec", "good_integration_template_paths"),
    ("epr", "package/example/1.0.0"),
    ("epr", "package/reference/1.0.0"),
    ("epr", "package/yamlpipeline/1.0.0"),
    ("epr", "package/sql_input/0.3.0"),
    ("epr", "package/good_content/0.1.0"),
]
# Kibana conditions over a package's life, oldest first (what real manifests carry).
KIBANA_LADDER = [
    "^7.14.0",
    "^7.17.0 || ^8.0.0",
    "^8.2.0",
    "^8.5.0",
    "^8.7.1",
    "^8.9.0",
    "^8.10.1",
    "^8.12.0",
    "^8.13.0",
    "^8.14.0",
    "^8.15.0",
    "^8.16.0",
    "^8.17.0 || ^9.0.0",
    "^8.18.0 || ^9.0.0",
]
FIELD_TYPES = ["keyword", "long", "ip", "date", "text", "double", "boolean"]


def _production_counts(rng: random.Random) -> list[int]:
    """Versions per name: skewed like production (a few names with 50-100+, many with 2-8)."""
    weights = [1.0 / (rank + 4) ** 0.9 for rank in range(PRODUCTION_NAMES)]
    scale = (PRODUCTION_VERSIONS - PRODUCTION_NAMES) / sum(weights)
    counts = [1 + int(w * scale) for w in weights]
    rest = PRODUCTION_VERSIONS - sum(counts)
    for k in range(rest):
        counts[k % PRODUCTION_NAMES] += 1
    rng.shuffle(counts)
    return counts


def _production_version(i: int) -> str:
    return f"{1 + i // 24}.{(i // 4) % 6}.{i % 4}"


def _kibana_condition(i: int, count: int) -> str:
    # Spread the ladder over the package's versions, the newest on the newest rungs.
    top = len(KIBANA_LADDER) - 1
    first = max(0, top - 1 - count // 3)
    step = (top - first) / max(1, count - 1)
    return KIBANA_LADDER[min(top, first + round(i * step))]


def _set_kibana(text: str, condition: str) -> str:
    quoted = f'"{condition}"'
    flat = re.compile(r"(?m)^(\s*)kibana\.version:.*$")
    nested = re.compile(r"(?m)^(\s*)kibana:\n(\s+)version:.*$")
    if flat.search(text):
        return flat.sub(lambda m: f"{m.group(1)}kibana.version: {quoted}", text, count=1)
    if nested.search(text):
        return nested.sub(
            lambda m: f"{m.group(1)}kibana:\n{m.group(2)}version: {quoted}", text, count=1
        )
    if re.search(r"(?m)^conditions:", text):
        return re.sub(
            r"(?m)^conditions:\n", f"conditions:\n  kibana.version: {quoted}\n", text, count=1
        )
    return text + f"conditions:\n  kibana.version: {quoted}\n"


VOCABULARY = [
    *[
        "collect",
        "logs",
        "metrics",
        "events",
        "from",
        "hosts",
        "agents",
        "the",
        "with",
        "and",
        "for",
        "data",
        "stream",
        "ingest",
    ],
    *[
        "pipeline",
        "dashboard",
        "visualize",
        "monitor",
        "security",
        "alerts",
        "service",
        "cluster",
        "node",
        "index",
    ],
]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(n))


def _readme(rng: random.Random, name: str, size: int) -> str:
    parts = [f"# {name}\n\nThis integration collects data from {name}.\n"]
    total = len(parts[0])
    while total < size:
        rows = "".join(
            f"| {name}.{_words(rng, 1)}.{k} | {_words(rng, 8)} | keyword |\n" for k in range(20)
        )
        part = f"\n## {_words(rng, 3).title()}\n\n{_words(rng, 120)}.\n\n| Field | Description | Type |\n|---|---|---|\n{rows}"
        parts.append(part)
        total += len(part)
    return "".join(parts)


def _dashboard(rng: random.Random, name: str, k: int, size: int) -> str:
    panels: list[dict[str, object]] = []
    total = 0
    while total < size:
        panel = {
            "gridData": {"h": 15, "w": 24, "x": 0, "y": len(panels) * 15},
            "panelIndex": f"{rng.randrange(1 << 32):08x}",
            "embeddableConfig": {"title": _words(rng, 6)},
            "type": "lens",
        }
        panels.append(panel)
        total += 150
    saved_object = {
        "attributes": {"title": f"[{name}] Overview {k}", "panelsJSON": json.dumps(panels)},
        "id": f"{name}-{k}",
        "type": "dashboard",
    }
    return json.dumps(saved_object) + "\n"


def _fields_file(rng: random.Random, name: str, count: int) -> str:
    lines = []
    for k in range(count):
        lines.append(f"- name: {name}.{_words(rng, 1)}_{k}\n")
        lines.append(f"  type: {rng.choice(FIELD_TYPES)}\n")
        lines.append(f"  description: {_words(rng, 10)}\n")
    return "".join(lines)


def _pad_production(dst: Path, name: str, rng: random.Random) -> None:
    """Give one package realistic bulk: docs, dashboards, screenshots, fields files."""
    (dst / "docs").mkdir(exist_ok=True)
    (dst / "docs" / "README.md").write_text(_readme(rng, name, rng.randrange(4_000, 40_000)))
    dashboards = dst / "kibana" / "dashboard"
    dashboards.mkdir(parents=True, exist_ok=True)
    for k in range(rng.choice([1, 2, 3, 4, 6, 10])):
        size = int(rng.lognormvariate(10.5, 1.0))  # median ~36 KB, tail to ~500 KB
        (dashboards / f"{name}-{k}.json").write_text(_dashboard(rng, name, k, min(size, 600_000)))
    img = dst / "img"
    img.mkdir(exist_ok=True)
    for k in range(rng.choice([1, 2, 3, 5])):
        size = int(rng.lognormvariate(12.0, 0.8))  # median ~160 KB, some above 1 MB
        (img / f"{name}-screenshot-{k}.png").write_bytes(os.urandom(min(size, 2_500_000)))
    # Built packages carry resolved field definitions, not ``external: ecs`` references.
    for fields_file in dst.glob("data_stream/*/fields/*.yml"):
        text = fields_file.read_text()
        if "external:" in text:
            fields_file.write_text(
                re.sub(
                    r'(?m)^(\s*- name: "?([^"\n]+)"?\n\s*)external: \w+$',
                    lambda m: (
                        m.group(1)
                        + ("type: date" if m.group(2) == "@timestamp" else "type: keyword")
                    ),
                    text,
                )
            )
    data_streams = dst / "data_stream"
    if data_streams.is_dir():
        for ds in sorted(p for p in data_streams.iterdir() if p.is_dir()):
            fields = ds / "fields"
            if fields.is_dir():
                (fields / "generated.yml").write_text(
                    _fields_file(rng, name, rng.randrange(10, 200))
                )


def generate_production(out: Path, epr_fixtures: Path, spec_fixtures: Path) -> int:
    """A corpus shaped like Elastic's production registry: 185 names, 1,920 versions.

    Each name takes one template, is padded once (docs 4-40 KB, 1-10 dashboards of median
    ~36 KB, 1-5 screenshots of median ~160 KB, a generated fields file per data stream), and
    its later versions are hard links of the first one's files except the manifest (new
    version and Kibana condition), as most files of a real package do not change between
    versions. Returns the number of versions made.
    """
    rng = random.Random(1920)
    out.mkdir(parents=True, exist_ok=True)
    made = 0
    roots = {"epr": epr_fixtures, "spec": spec_fixtures}
    for n, count in enumerate(_production_counts(rng)):
        kind, template = PRODUCTION_TEMPLATES[n % len(PRODUCTION_TEMPLATES)]
        name = f"prod_{Path(template).parts[-2 if kind == 'epr' else -1]}_{n:03d}"
        first: Path | None = None
        for i in range(count):
            version = _production_version(i)
            dst = out / name / version
            if dst.exists():
                shutil.rmtree(dst)
            if first is None:
                shutil.copytree(roots[kind] / template, dst, symlinks=False)
                _pad_production(dst, name, rng)
                # Built packages have no development folders; versions get no changelog.
                for dev in sorted(dst.rglob("_dev"), reverse=True):
                    shutil.rmtree(dev)
                (dst / "changelog.yml").unlink(missing_ok=True)
                first = dst
            else:
                shutil.copytree(first, dst, copy_function=os.link)
            manifest = dst / "manifest.yml"
            text = (first / "manifest.yml").read_text()
            text = _set_kibana(_rewrite_manifest(text, name, version), _kibana_condition(i, count))
            manifest.unlink()
            manifest.write_text(text)
            made += 1
    (out / PRODUCTION_MARKER).write_text(f"{made}\n")
    return made


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--min-files", type=int, default=0)
    parser.add_argument("--fixtures", type=Path, default=here.parent.parent / "shared/fixtures/epr")
    parser.add_argument(
        "--spec-fixtures",
        type=Path,
        default=here.parent.parent / "shared/fixtures/package-spec/packages/packages",
    )
    parser.add_argument("--production", action="store_true", help="production-like corpus")
    args = parser.parse_args()
    if args.production:
        made = generate_production(args.out, args.fixtures, args.spec_fixtures)
    else:
        made = generate(args.out, args.fixtures, args.versions, args.min_files)
    files = sum(len(f) for _, _, f in os.walk(args.out))
    print(f"{made} package versions, {files} files in {args.out}")


if __name__ == "__main__":
    main()
