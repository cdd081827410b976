"""Generate a synthetic package corpus from the EPR fixture packages.

Every generated version is a real package folder (manifest, docs, data streams, kibana assets,
images) copied from a fixture template, with a new name and version written into its manifest.
Optionally pads each version with extra kibana saved objects so that it has at least
``--min-files`` files (the import benchmark wants 50+ files per version), and adds one package
whose zip is about 1 MB (for the download benchmark).

    python bench/make_corpus.py OUT --versions 2000 [--min-files 0] [--fixtures ../shared/fixtures/epr]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--min-files", type=int, default=0)
    parser.add_argument("--fixtures", type=Path, default=here.parent.parent / "shared/fixtures/epr")
    args = parser.parse_args()
    made = generate(args.out, args.fixtures, args.versions, args.min_files)
    files = sum(len(f) for _, _, f in os.walk(args.out))
    print(f"{made} package versions, {files} files in {args.out}")


if __name__ == "__main__":
    main()
