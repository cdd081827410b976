"""``package-storage build`` and ``package-storage validate``: package folders before publishing.

``build PATH... -o DIR`` validates each package folder (the load-time package-spec rules) and
writes ``DIR/<name>-<version>.zip``: a deterministic zip (same content, same bytes), printed as
``<zip path>  <sha256>``.

``validate PATH...`` checks package folders or zips against the rules applied at publish time
(:func:`package_storage.packages.validation.validate_for_publish`) plus the loader's own checks, and
prints one line per problem, ``<PATH>/<file>: <message> [<rule>]``, or ``ok <name> <version>``
for a package without problems. Exit status 1 when any package has a problem.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from package_storage.packages.validation import Problem, validate_for_publish

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


def check_package(path: Path) -> tuple[list[str], Package | None]:
    """Problem lines for the package at ``path`` and, when it loads, the package."""
    shown = str(path)
    try:
        tree, version_dir = _open_tree(path)
        problems: list[Problem] = validate_for_publish(tree, version_dir=version_dir)
    except UnsafePackageError as exc:
        return [str(exc.within(shown))], None
    except PackageError as exc:
        return [_line(shown, "", exc.detail, "package")], None
    lines = [_line(shown, p.path, p.message, p.rule) for p in problems]
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
            lines.append(_line(shown, file, message, LOAD_RULE))
    return lines, pkg


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Check package folders or zips against the publish-time package-spec rules.

    Prints one line per problem (`PATH/FILE: message [rule]`) or `ok NAME VERSION`; exits 1
    when any package has a problem.
    """
    failed = False
    for path in paths:
        lines, pkg = check_package(path)
        for line in lines:
            click.echo(line)
        if lines:
            failed = True
        elif pkg is not None:
            click.echo(f"ok {pkg.name} {pkg.version}")
    if failed:
        raise SystemExit(1)


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
