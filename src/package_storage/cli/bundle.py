"""``package-storage export``: write an air-gapped bundle of one distribution revision.

    package-storage export production@8.12.0 ./bundle --kibana-version 8.12.0 [--latest 3]
    package-storage export production@8.13.0 ./delta --since 8.12.0 --kibana-version 8.12.0

The bundle layout and selection rules are those of :mod:`package_storage.transfer.export`. A progress
bar goes to stderr when it is a terminal; the summary (or ``--json``) goes to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from package_storage.cli.common import StoreCommand, open_store, print_json, store_option
from package_storage.transfer.export import ExportReport, export_bundle

if TYPE_CHECKING:
    from package_storage.packages.signing import PublicKey
    from package_storage.store.keyring import StoreKeyring

_PHASES = {"scan": "Reading Kibana conditions", "copy": "Copying artifacts"}


def human_size(size: int) -> str:
    """``12.3 MB`` style (powers of 1000, like ``du --si``), exact bytes below 1 kB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


class _ProgressBar:
    """The :data:`~package_storage.transfer.export.ProgressCallback` drawing one rich bar per phase."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        task = self._tasks.get(phase)
        if task is None:
            task = self._progress.add_task(_PHASES.get(phase, phase), total=total)
            self._tasks[phase] = task
        self._progress.update(task, completed=done, total=total)


def _public_key(keyring: StoreKeyring | None) -> PublicKey | None:
    """The store's public signing key, carried by the bundle (None: no signing key)."""
    return None if keyring is None else keyring.signing_public_key()


def report_json(report: ExportReport) -> dict[str, object]:
    return {
        "out": str(report.out),
        "distribution": report.distribution,
        "revision": report.revision,
        "digest": report.revision_digest,
        "tag": report.tag,
        "kibana_version": report.kibana_version,
        "latest": report.latest,
        "in_revision": report.in_revision,
        "excluded_by_kibana": report.excluded_by_kibana,
        "excluded_by_latest": report.excluded_by_latest,
        "packages": report.packages,
        "versions": report.versions,
        "signatures": report.signatures,
        "files": report.files,
        "bundle_bytes": report.bundle_bytes,
        "seconds": round(report.seconds, 3),
        "warnings": list(report.warnings),
        "kind": "full" if report.base is None else "delta",
        "selection_digest": report.selection_digest,
        "base": None if report.base is None else report.base.as_json(),
        "removes": len(report.removes),
        "yanks": len(report.yanks),
        "unyanks": len(report.unyanks),
    }


def summary_lines(report: ExportReport) -> list[str]:
    source = f"{report.distribution}@{report.tag}" if report.tag else report.distribution
    lines = [
        f"exported {source} (revision {report.revision}, digest {report.revision_digest[:12]})"
        f" to {report.out}",
    ]
    if report.base is not None:
        lines.append(
            f"  delta on top of {report.base.distribution}@{report.base.ref} (revision"
            f" {report.base.revision}): {report.versions} new, {len(report.removes)} removed,"
            f" {len(report.yanks)} yanked, {len(report.unyanks)} unyanked"
        )
    selection = f"  versions: {report.versions} of {report.in_revision}"
    left_out = []
    if report.kibana_version is not None:
        left_out.append(
            f"{report.excluded_by_kibana} not compatible with Kibana {report.kibana_version}"
        )
    if report.latest is not None:
        left_out.append(f"{report.excluded_by_latest} older than the newest {report.latest}")
    if left_out:
        selection += " (" + ", ".join(left_out) + ")"
    lines.append(selection)
    lines.append(f"  packages: {report.packages}, signatures: {report.signatures}")
    lines.append(
        f"  bundle size: {human_size(report.bundle_bytes)} ({report.bundle_bytes} bytes)"
        f" in {report.files} files"
    )
    lines.append(f"  took {report.seconds:.2f} s")
    if report.base is not None:
        lines.append(
            f"verify: cd {report.out} && sha256sum -c SHA256SUMS; import on top of its base:"
            f" package-storage import {report.out} --stage STAGE"
        )
        return lines
    # serve requires signatures by default: an unsigned bundle is served with the flag off.
    unsigned = "" if report.signatures == report.versions else " --require-package-signatures=false"
    lines.append(
        f"verify: cd {report.out} && sha256sum -c SHA256SUMS;"
        f" serve: package-storage serve --config {report.out / 'config.yml'}{unsigned}"
    )
    return lines


@click.command(cls=StoreCommand)
@click.argument("distribution")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--kibana-version", metavar="V", help="Only versions compatible with Kibana V.")
@click.option(
    "--latest",
    type=click.IntRange(min=1),
    metavar="N",
    help="Only the newest N versions of each package (prereleases count).",
)
@click.option(
    "--since",
    metavar="TAG|N",
    help="A delta bundle: only what the revision TAG or N of the same distribution did not"
    " have, plus what was removed or yanked since (import it on top of that base).",
)
@click.option("--force", is_flag=True, help="Replace the bundle in a non-empty OUT.")
@click.option(
    "--link", is_flag=True, help="Hard-link artifacts from the blob store instead of copying."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@store_option
def export(
    distribution: str,
    out: Path,
    kibana_version: str | None,
    latest: int | None,
    since: str | None,
    force: bool,
    link: bool,
    as_json: bool,
    store_dir: Path,
) -> None:
    """Write a bundle of DISTRIBUTION[@TAG|@REVISION] to OUT for an air-gapped registry.

    OUT gets packages/ (zips and .sig files), config.yml (serve it with
    `package-storage serve --config OUT/config.yml`), bundle.json, README.txt and SHA256SUMS.
    """
    stderr = Console(file=sys.stderr)
    with (
        open_store(store_dir) as store,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=stderr,
            transient=True,
            disable=not stderr.is_terminal,
        ) as progress,
    ):
        report = export_bundle(
            store.catalog,
            store.blobs,
            distribution,
            out,
            kibana_version=kibana_version,
            latest=latest,
            force=force,
            link=link,
            progress=_ProgressBar(progress),
            public_key=_public_key(store.keyring),
            since=since,
        )
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        print_json(report_json(report))
        return
    for line in summary_lines(report):
        click.echo(line)
