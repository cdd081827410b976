"""Parity with the package-spec: run `package-storage validate` logic over the spec's test packages.

Reads ../shared/fixtures/package-spec/cases.json (reference data; the product never reads it) and
prints the table: valid accepted, invalid rejected, invalid rejected for the right reason, crashes.

"Right reason" for an invalid case: for every error the fixture requires, some problem line is about
the expected file (when the fixture names one) and carries a rule listed for that case in
tests/packages/data/spec_case_rules.json (our rule codes for the spec's expected errors). Cases
marked ``warning_only`` are run with warnings as errors for the invalid check and without for the
valid check.

    .venv/bin/python bench/spec_parity.py [--fixtures DIR] [--json OUT] [--show]
    PYTHONPATH=/path/to/other/src .venv/bin/python bench/spec_parity.py   # another checkout
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FIXTURES = REPO / ".." / "shared" / "fixtures" / "package-spec"
RULES_FILE = REPO / "tests" / "packages" / "data" / "spec_case_rules.json"


def _problems(path: Path, warnings_as_errors: bool, built: bool) -> list[tuple[str, str, str]]:
    """(file, rule, message) of every error `validate` reports for the package at ``path``.

    A built package (``built_packages/*``) is checked as a registry receives it: zipped."""
    from package_storage.cli import build

    with tempfile.TemporaryDirectory() as tmp:
        target = _zip(path, Path(tmp)) if built else path
        if not hasattr(build, "inspect_package"):  # a checkout from before issue #9
            lines, _pkg = build.check_package(target)
            return [_split(str(target), line) for line in lines]
        errors, _warnings, _pkg = build.inspect_package(
            target, warnings_as_errors=warnings_as_errors
        )
    return [(p.path, p.rule, p.message) for p in errors]


def _split(root: str, line: str) -> tuple[str, str, str]:
    where, _, rest = line.partition(": ")
    file = where[len(root) :].lstrip("/") if where.startswith(root) else ""
    message, _, rule = rest.rpartition(" [")
    return file, rule.rstrip("]"), message


def _zip(folder: Path, tmp: Path) -> Path:
    out = tmp / f"{folder.name}.zip"
    with zipfile.ZipFile(out, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, f"{folder.name}/{file.relative_to(folder).as_posix()}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--show", action="store_true", help="print every case that misses")
    args = parser.parse_args()
    if str(REPO / "src") not in sys.path:
        sys.path.append(str(REPO / "src"))  # PYTHONPATH=/other/src measures another checkout
    cases: list[dict[str, Any]] = json.loads((args.fixtures / "cases.json").read_text())
    case_rules: dict[str, list[list[str]]] = (
        json.loads(RULES_FILE.read_text()) if RULES_FILE.exists() else {}
    )
    valid = [c for c in cases if c["expect"] == "valid" or c.get("warning_only")]
    invalid = [c for c in cases if c["expect"] == "invalid"]
    counts = {"valid_ok": 0, "invalid_rejected": 0, "right_reason": 0, "file_match": 0}
    crashes: list[str] = []
    misses: list[str] = []
    start = time.perf_counter()
    for case in cases:
        path = args.fixtures / case["path"]
        built = case["id"].startswith("built_packages/")
        try:
            if case in valid:
                got = _problems(path, False, built)
                if not got:
                    counts["valid_ok"] += 1
                else:
                    misses.append(
                        f"REFUSED {case['id']}: " + " | ".join(f"{f}: {m} [{r}]" for f, r, m in got)
                    )
            if case in invalid:
                got = _problems(path, bool(case.get("warning_only")), built)
                if not got:
                    misses.append(f"ACCEPTED {case['id']}: wants {case['errors']}")
                    continue
                counts["invalid_rejected"] += 1
                expected = case["errors"]
                files_ok = all(
                    e["file"] is None or any(f == e["file"] for f, _r, _m in got) for e in expected
                )
                counts["file_match"] += files_ok
                wanted = case_rules.get(case["id"])
                right = (
                    wanted is not None
                    and len(wanted) == len(expected)
                    and all(
                        any(
                            (e["file"] is None or f == e["file"]) and r in rules for f, r, _m in got
                        )
                        for e, rules in zip(expected, wanted, strict=True)
                    )
                )
                counts["right_reason"] += right
                if not right:
                    misses.append(
                        f"WRONG-REASON {case['id']}: wants {[(e['file'], e['message'][:90]) for e in expected]} got "
                        + " | ".join(f"{f}: {m[:120]} [{r}]" for f, r, m in got)
                    )
        except Exception:
            crashes.append(f"{case['id']}: {traceback.format_exc(limit=3)}")
    elapsed = time.perf_counter() - start
    result = {
        "valid_accepted": f"{counts['valid_ok']}/{len(valid)}",
        "invalid_rejected": f"{counts['invalid_rejected']}/{len(invalid)}",
        "invalid_rejected_right_file": f"{counts['file_match']}/{len(invalid)}",
        "invalid_rejected_right_reason": f"{counts['right_reason']}/{len(invalid)}",
        "crashes": len(crashes),
        "seconds": round(elapsed, 2),
    }
    if args.show:
        for line in misses + crashes:
            print(line)
    print("| | count |\n| --- | --- |")
    for key, value in result.items():
        print(f"| {key.replace('_', ' ')} | {value} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
