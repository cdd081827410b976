"""``package-storage build`` and ``package-storage validate`` (in-process, click's runner)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from package_storage.cli.build import build, validate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "packages"
EXAMPLE_DIRS = sorted(p for p in EXAMPLES.glob("*/*") if p.is_dir())
HELLO = EXAMPLES / "hello_nginx" / "1.1.0"
LINE = re.compile(r"^(?P<file>\S+): (?P<message>.+) \[(?P<rule>[a-z0-9-]+)\]$")


def _run(command: object, args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(command, args)  # type: ignore[arg-type]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _copy(src: Path, tmp_path: Path, label: str) -> Path:
    dst = tmp_path / label / src.name  # keep the version-named folder
    shutil.copytree(src, dst)
    return dst


# --- build -----------------------------------------------------------------------------------


def test_examples_are_present() -> None:
    assert len(EXAMPLE_DIRS) >= 4


def test_build_is_deterministic(tmp_path: Path) -> None:
    code, out1, err = _run(build, [*map(str, EXAMPLE_DIRS), "-o", str(tmp_path / "a")])
    assert code == 0, err
    # touch and re-mode the sources, copy them elsewhere: same bytes
    copies = [_copy(p, tmp_path / "src", p.parent.name) for p in EXAMPLE_DIRS]
    for copy in copies:
        for path in copy.rglob("*"):
            os.utime(path, (1_000_000_000, 1_000_000_000))
            if path.is_file():
                path.chmod(0o600)
    code, out2, err = _run(build, [*map(str, copies), "-o", str(tmp_path / "b")])
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert names == sorted(f"{p.parent.name}-{p.name}.zip" for p in EXAMPLE_DIRS)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # output: "<zip>  <sha256>" per package, the digest of the written file
    lines = out1.splitlines()
    assert len(lines) == len(EXAMPLE_DIRS)
    for line in lines:
        zip_path, digest = line.split("  ")
        assert hashlib.sha256(Path(zip_path).read_bytes()).hexdigest() == digest
    for line, other in zip(lines, out2.splitlines(), strict=True):
        assert line.split("  ")[1] == other.split("  ")[1]


def test_build_zip_layout(tmp_path: Path) -> None:
    code, _out, _err = _run(build, [str(HELLO), "-o", str(tmp_path)])
    assert code == 0
    with zipfile.ZipFile(tmp_path / "hello_nginx-1.1.0.zip") as zf:
        names = zf.namelist()
    assert "hello_nginx-1.1.0/manifest.yml" in names
    assert all(n.startswith("hello_nginx-1.1.0/") for n in names)


def test_build_refuses_invalid_package(tmp_path: Path) -> None:
    broken = _copy(HELLO, tmp_path, "broken")
    manifest = broken / "manifest.yml"
    manifest.write_text(re.sub(r"(?m)^format_version:.*\n", "", manifest.read_text()))
    good = EXAMPLES / "acme_input" / "1.0.0"
    code, out, err = _run(build, [str(broken), str(good), "-o", str(tmp_path / "out")])
    assert code == 1
    assert str(broken) in err and "format_version" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["acme_input-1.0.0.zip"]
    assert out.strip().startswith(str(tmp_path / "out" / "acme_input-1.0.0.zip"))


def test_build_missing_folder(tmp_path: Path) -> None:
    code, _out, err = _run(build, [str(tmp_path / "nope"), "-o", str(tmp_path / "out")])
    assert code == 1 and "nope" in err


# --- validate --------------------------------------------------------------------------------


def test_validate_examples_ok() -> None:
    code, out, _err = _run(validate, [str(p) for p in EXAMPLE_DIRS])
    assert code == 0
    assert out.splitlines() == [f"ok {p.parent.name} {p.name}" for p in EXAMPLE_DIRS]


def test_validate_built_zips_ok(tmp_path: Path) -> None:
    assert _run(build, [*map(str, EXAMPLE_DIRS), "-o", str(tmp_path)])[0] == 0
    zips = sorted(tmp_path.glob("*.zip"))
    code, out, _err = _run(validate, [str(z) for z in zips])
    assert code == 0
    assert len(out.splitlines()) == len(zips)
    assert all(line.startswith("ok ") for line in out.splitlines())


def _edit(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text()
    new = re.sub(pattern, replacement, text, count=1, flags=re.M)
    assert new != text, f"{pattern!r} not found in {path}"
    path.write_text(new)


Breaker = Callable[[Path], object]

BREAKERS: dict[str, tuple[Breaker, str, str]] = {
    # label: (how to break it, file the problem is about, rule)
    "no-manifest": (lambda p: (p / "manifest.yml").unlink(), "manifest.yml", "manifest-missing"),
    "name": (
        lambda p: _edit(p / "manifest.yml", r"^name:.*$", "name: Hello-Nginx"),
        "manifest.yml",
        "name-invalid",
    ),
    "version-format": (
        lambda p: _edit(p / "manifest.yml", r"^version:.*$", "version: 1.1"),
        "manifest.yml",
        "version-invalid",
    ),
    "format-version": (
        lambda p: _edit(p / "manifest.yml", r"^format_version:.*\n", ""),
        "manifest.yml",
        "format-version-missing",
    ),
    "title": (
        lambda p: _edit(p / "manifest.yml", r"^title:.*\n", ""),
        "manifest.yml",
        "title-missing",
    ),
    "type": (
        lambda p: _edit(p / "manifest.yml", r"^type:.*$", "type: widget"),
        "manifest.yml",
        "type-invalid",
    ),
    "data-stream-manifest": (
        lambda p: _edit(p / "data_stream" / "access" / "manifest.yml", r"^title:.*\n", ""),
        "data_stream/access/manifest.yml",
        "data-stream-field-missing",
    ),
    "data-stream-yaml": (
        lambda p: (p / "data_stream" / "error" / "manifest.yml").write_text("title: [oops\n"),
        "data_stream/error/manifest.yml",
        "yaml-invalid",
    ),
    "changelog-version": (
        lambda p: _edit(p / "changelog.yml", r'^- version: "?1\.1\.0"?$', '- version: "1.0.9"'),
        "changelog.yml",
        "changelog-version-mismatch",
    ),
    "changelog-missing": (
        lambda p: (p / "changelog.yml").unlink(),
        "changelog.yml",
        "changelog-missing",
    ),
}


@pytest.mark.parametrize("label", sorted(BREAKERS))
def test_validate_reports_broken_copy(tmp_path: Path, label: str) -> None:
    breaker, file, rule = BREAKERS[label]
    broken = _copy(HELLO, tmp_path, label)
    breaker(broken)
    good = EXAMPLES / "acme_input" / "1.0.0"
    code, out, _err = _run(validate, [str(good), str(broken)])
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "ok acme_input 1.0.0"
    problems = lines[1:]
    assert problems, "a broken package must report at least one problem"
    for line in problems:
        match = LINE.match(line)
        assert match, f"bad line format: {line!r}"
        assert match["file"].startswith(f"{broken}/") or match["file"] == str(broken)
        assert not line.startswith("ok ")
    wanted = f"{broken}/{file}: "
    assert any(line.startswith(wanted) and line.endswith(f"[{rule}]") for line in problems), out


def test_validate_version_folder_and_changelog_mismatch(tmp_path: Path) -> None:
    broken = _copy(HELLO, tmp_path, "v")
    _edit(broken / "manifest.yml", r"^version:.*$", "version: 1.2.0")
    code, out, _err = _run(validate, [str(broken)])
    assert code == 1
    rules = {LINE.match(line)["rule"] for line in out.splitlines()}  # type: ignore[index]
    assert {"version-dir-mismatch", "changelog-version-mismatch"} <= rules


def test_validate_content_package_with_data_stream(tmp_path: Path) -> None:
    broken = _copy(EXAMPLES / "demo_dashboards" / "1.0.0", tmp_path, "c")
    shutil.copytree(HELLO / "data_stream", broken / "data_stream")
    code, out, _err = _run(validate, [str(broken)])
    assert code == 1
    assert "[content-has-data-streams]" in out


def test_validate_bad_zip_and_missing_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad-1.0.0.zip"
    bad.write_bytes(b"not a zip")
    code, out, _err = _run(validate, [str(bad), str(tmp_path / "missing")])
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{bad}: ") and lines[0].endswith("[zip-invalid]")
    assert lines[1].startswith(f"{tmp_path / 'missing'}: ")
