"""``package-storage build`` and ``package-storage validate``: package folders before publishing.

``build PATH... -o DIR`` validates each package folder (the load-time package-spec rules) and
writes ``DIR/<name>-<version>.zip``: a deterministic zip (same content, same bytes), printed as
``<zip path>  <sha256>``.

``validate PATH... [--warnings-as-errors] [--json]`` checks package folders or zips against the
rules applied at publish time (:func:`package_storage.packages.validation.check_for_publish`) plus
the loader's own checks, and prints one line per problem, ``<PATH>/<file>: <message> [<rule>]``
(the package-spec's warnings as ``<PATH>/<file>: warning: <message> [<rule>]``), or
``ok <name> <version>`` for a package without errors. Exit status 1 when any package has an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path

import click

from package_storage.errors import (
    PackageError,
    PackageStorageError,
    UnsafePackageError,
    ValidationError,
)
from package_storage.packages import safety
from package_storage.packages.artifacts import build_zip
from package_storage.packages.manifest import read_package
from package_storage.packages.model import Package, PackageTree
from package_storage.packages.trees import FolderTree, ZipTree
from package_storage.packages.validation import Problem, check_for_publish

LOAD_RULE = "load"
"""Rule id of the loader's own checks (structure and field types the registry always needs)."""


def _write_atomic(dest: Path, data: bytes) -> None:
    temp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        temp.write_bytes(data)
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _line(path: str, file: str, message: str, rule: str) -> str:
    where = f"{path.rstrip('/')}/{file}" if file else path
    return f"{where}: {message} [{rule}]"


def _open_tree(path: Path) -> tuple[PackageTree, str | None]:
    """The tree at ``path`` and the version-directory name handed to validation."""
    if path.is_dir():
        safety.check_folder(path)  # the archive-safety gate, before any file is opened
        return FolderTree(path), path.name
    if os.path.lexists(path):
        safety.check_zip_file(path)
        return ZipTree.open(path), None
    raise PackageError("does not exist: give a package folder or zip", path=str(path))


def inspect_package(
    path: Path, *, warnings_as_errors: bool = False
) -> tuple[list[Problem], list[Problem], Package | None]:
    """(errors, warnings, package) of the package at ``path``; a problem's path is relative to
    the package (``""`` for the package itself). Warnings count as errors when asked."""
    try:
        tree, version_dir = _open_tree(path)
        problems, warnings = check_for_publish(tree, version_dir=version_dir)
    except UnsafePackageError as exc:
        # the archive-safety gate's one line, named after the package at ``path``
        unsafe, shown = exc.within(str(path)), str(path)
        file = unsafe.path[len(shown) :].lstrip("/") if unsafe.path.startswith(shown) else ""
        text = unsafe.detail.removesuffix(f" [{unsafe.rule}]")
        return [Problem(file, unsafe.rule, text)], [], None
    except PackageError as exc:
        return [Problem("", "package", exc.detail)], [], None
    if warnings_as_errors:
        problems, warnings = problems + warnings, []
    pkg: Package | None = None
    try:
        pkg = read_package(tree, validate=False, version_dir=version_dir)
    except PackageStorageError as exc:
        file, message = "", str(exc)
        if isinstance(exc, PackageError):
            message = exc.detail
            prefix = tree.location.rstrip("/") + "/"
            file = exc.path[len(prefix) :] if exc.path.startswith(prefix) else ""
        if not any(p.message == message and (not file or p.path == file) for p in problems):
            problems.append(Problem(file, LOAD_RULE, message))
    return problems, warnings, pkg


def check_package(
    path: Path, *, warnings_as_errors: bool = False
) -> tuple[list[str], Package | None]:
    """Problem lines for the package at ``path`` and, when it loads, the package."""
    problems, _warnings, pkg = inspect_package(path, warnings_as_errors=warnings_as_errors)
    return [_line(str(path), p.path, p.message, p.rule) for p in problems], pkg


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--warnings-as-errors",
    is_flag=True,
    help="Refuse on the package-spec's warnings too (as PACKAGE_SPEC_WARNINGS_AS_ERRORS does).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document with every result.")
def validate(paths: tuple[Path, ...], warnings_as_errors: bool, as_json: bool) -> None:
    """Check package folders or zips against the publish-time package-spec rules.

    Prints one line per problem (`PATH/FILE: message [rule]`; warnings as
    `PATH/FILE: warning: message [rule]`) or `ok NAME VERSION`; exits 1 when any package has
    an error (a warning only with --warnings-as-errors).
    """
    failed = False
    results: list[dict[str, object]] = []
    for path in paths:
        errors, warnings, pkg = inspect_package(path, warnings_as_errors=warnings_as_errors)
        failed = failed or bool(errors)
        if as_json:
            results.append(
                {
                    "path": str(path),
                    "valid": not errors,
                    "name": pkg.name if pkg is not None else None,
                    "version": str(pkg.version) if pkg is not None else None,
                    "errors": [_as_dict(p) for p in errors],
                    "warnings": [_as_dict(p) for p in warnings],
                }
            )
            continue
        for p in errors:
            click.echo(_line(str(path), p.path, p.message, p.rule))
        for p in warnings:
            click.echo(_line(str(path), p.path, f"warning: {p.message}", p.rule))
        if not errors and pkg is not None:
            click.echo(f"ok {pkg.name} {pkg.version}")
    if as_json:
        click.echo(json.dumps(results, indent=2))
    if failed:
        raise SystemExit(1)


def _as_dict(problem: Problem) -> dict[str, str]:
    return {"file": problem.path, "rule": problem.rule, "message": problem.message}


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the zips (created when absent).",
)
def build(paths: tuple[Path, ...], out_dir: Path) -> None:
    """Build deterministic zips of package folders: OUTPUT/NAME-VERSION.zip.

    Each folder is validated first (the package-spec rules the registry applies when it
    loads a package); prints `<zip>  <sha256>` per package, exits 1 when any fails.
    """
    failed = False
    for path in paths:
        try:
            if not path.is_dir():
                raise PackageError("is not a package folder", path=str(path))
            safety.check_folder(path)  # the archive-safety gate, before any file is opened
            tree = FolderTree(path)
            pkg = read_package(tree, validate=True, version_dir=path.name)
            version = str(pkg.version)
            data = build_zip(tree, pkg.name, version)
            out_dir.mkdir(parents=True, exist_ok=True)
            dest = out_dir / f"{pkg.name}-{version}.zip"
            _write_atomic(dest, data)
        except ValidationError as exc:
            failed = True
            click.echo(f"error: {exc} [{exc.rule}]" if exc.rule else f"error: {exc}", err=True)
            continue
        except (PackageStorageError, OSError) as exc:
            failed = True
            click.echo(f"error: {exc}", err=True)
            continue
        click.echo(f"{dest}  {hashlib.sha256(data).hexdigest()}")
    if failed:
        raise SystemExit(1)
