"""``package-storage mirror URL --stage STAGE``: fill a stage from an upstream EPR registry.

    package-storage mirror https://epr.elastic.co --stage production --kibana-version 8.17.2

Lists what the filters select upstream, downloads what the stage does not hold yet (with a
progress bar on stderr when it is a terminal: count, bytes, rate, ETA), imports it as
``mirror`` events (:mod:`package_storage.transfer.mirror`). The summary (or ``--json``) goes to
stdout. Exit status 0 when every selected version is in the stage, 1 when a download failed, a
signature or package was refused, or the store refused the mirror (frozen stage).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from package_storage.cli.common import (
    StoreCommand,
    fail,
    open_store,
    print_json,
    store_option,
    validation_level,
)

if TYPE_CHECKING:
    from package_storage.transfer.importer import ImportProgress
    from package_storage.transfer.mirror import DownloadProgress, MirrorReport


class _BytesColumn(ProgressColumn):
    """``12.3 MB, 4.1 MB/s``: bytes received and the rate over the run so far."""

    def render(self, task: Task) -> Text:
        size = int(task.fields.get("bytes", 0))
        elapsed = task.elapsed or 0.0
        rate = f", {decimal(int(size / elapsed))}/s" if elapsed > 0 else ""
        return Text(f"{decimal(size)}{rate}")


class _Bars:
    """The progress callbacks of a mirror: one bar for downloads, one for recording."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._download: TaskID | None = None
        self._import: TaskID | None = None

    def downloaded(self, p: DownloadProgress) -> None:
        if self._download is None:
            self._download = self._progress.add_task("Downloading", total=p.total, bytes=0)
        failed = f" ({p.failed} failed)" if p.failed else ""
        self._progress.update(
            self._download,
            completed=p.done,
            bytes=p.bytes,
            description=f"Downloading{failed}",
        )

    def imported(self, p: ImportProgress) -> None:
        if self._import is None:
            self._import = self._progress.add_task("Recording", total=p.total, bytes=0)
        self._progress.update(self._import, completed=p.done, total=p.total)


def _progress(stderr: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        _BytesColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )


def _remote(v: Any) -> dict[str, Any]:
    return {"name": v.name, "version": v.version, "url": v.url, "signature": v.signature_url}


def report_json(report: MirrorReport) -> dict[str, Any]:
    imported = report.imported
    rejected = imported.rejected if imported is not None else []
    return {
        "upstream": report.upstream,
        "stage": report.stage,
        "dry_run": report.dry_run,
        "selected": len(report.selected),
        "present": len(report.present),
        "to_fetch": [_remote(v) for v in report.to_fetch]
        if report.dry_run
        else len(report.to_fetch),
        "new": [
            {"name": v.name, "version": v.version, "artifact": v.digest, "status": v.status}
            for v in (imported.imported if imported is not None else [])
        ],
        "failed": [{**_remote(v), "reason": why} for v, why in report.failed],
        "refused": [{**_remote(v), "reason": why} for v, why in report.refused],
        "rejected": [
            {"name": r.name, "version": r.version, "url": r.location, "reason": r.reason}
            for r in rejected
        ],
        "bytes": report.downloaded_bytes,
        "download_seconds": round(report.download_seconds, 3),
        "seconds": round(report.seconds, 3),
        "revisions": imported.revisions if imported is not None else {},
    }


def summary_lines(report: MirrorReport) -> list[str]:
    where = f"mirror of {report.upstream} into {report.stage}"
    if report.dry_run:
        lines = [
            f"{where} (dry run): {len(report.to_fetch)} new, {len(report.present)} already present"
        ]
        lines.extend(f"  would fetch {v.name} {v.version}" for v in report.to_fetch)
        return lines
    imported = report.imported
    unchanged = len(imported.skipped) if imported is not None else 0
    lines = [f"{where}: {report.new} new, {len(report.present) + unchanged} already present"]
    if report.downloaded_bytes:
        seconds = max(report.download_seconds, 1e-9)
        lines.append(
            f"  downloaded {decimal(report.downloaded_bytes)} in {report.download_seconds:.2f} s"
            f" ({decimal(int(report.downloaded_bytes / seconds))}/s); {report.seconds:.2f} s in all"
        )
    for v, why in report.failed:
        lines.append(f"  failed {v.name} {v.version}: {why}")
    for v, why in report.refused:
        lines.append(f"  refused {v.name} {v.version}: {why}")
    for r in imported.rejected if imported is not None else []:
        first = r.reason.splitlines()[0] if r.reason else ""
        lines.append(f"  rejected {r.name or r.location} {r.version or ''}: {first}".rstrip())
    if imported is not None and imported.revisions:
        revs = ", ".join(f"{d} {n}" for d, n in imported.revisions.items())
        lines.append(f"new revisions: {revs}")
    return lines


@click.command("mirror", cls=StoreCommand)
@click.argument("url", metavar="URL")
@click.option("--stage", required=True, metavar="STAGE", help="Stage to fill.")
@click.option("--kibana-version", default=None, metavar="V", help="Only versions for Kibana V.")
@click.option(
    "--package",
    "packages",
    multiple=True,
    metavar="NAME",
    help="Only this package (repeatable; default: every package).",
)
@click.option("--category", default=None, metavar="C", help="Only packages of category C.")
@click.option("--prerelease", is_flag=True, help="Include prerelease and experimental versions.")
@click.option(
    "--latest",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Only the N newest versions of each package (default: all).",
)
@click.option(
    "--verify-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Armored public key: every zip must carry a signature it verifies (else refused).",
)
@click.option(
    "--validation",
    type=click.Choice(["none", "load", "publish"]),
    default="load",
    show_default=True,
    help="Rules to apply, as for import (publish rules refuse many of Elastic's versions).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    metavar="N",
    help="Parallel downloads.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0, max=20),
    default=4,
    show_default=True,
    metavar="N",
    help="Retries (exponential backoff) on 5xx, 429 and connection errors.",
)
@click.option("--dry-run", is_flag=True, help="List what would be fetched; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@store_option
def mirror(
    url: str,
    stage: str,
    kibana_version: str | None,
    packages: tuple[str, ...],
    category: str | None,
    prerelease: bool,
    latest: int | None,
    verify_key: Path | None,
    validation: str,
    workers: int,
    retries: int,
    dry_run: bool,
    as_json: bool,
    store_dir: Path,
) -> None:
    """Fill STAGE from the EPR registry at URL (with any path prefix, e.g. .../production).

    Downloads only what STAGE does not hold yet: running it again fetches only what is new.
    """
    from package_storage.packages.signing import load_public_key
    from package_storage.transfer.mirror import MirrorFilter, MirrorOptions
    from package_storage.transfer.mirror import mirror as run_mirror

    key = None
    if verify_key is not None:
        key = load_public_key(verify_key.read_text(encoding="utf-8", errors="replace"))
    options = MirrorOptions(
        validation=validation_level(validation),
        workers=workers,
        retries=retries,
        verify_key=key,
        dry_run=dry_run,
    )
    filters = MirrorFilter(
        kibana_version=kibana_version or None,
        packages=tuple(packages),
        category=category or None,
        prerelease=prerelease,
        latest=latest,
    )
    stderr = Console(file=sys.stderr)
    with open_store(store_dir) as store:
        keyring = store.keyring
        try:
            with _progress(stderr) as progress:
                bars = _Bars(progress)
                report = run_mirror(
                    store.service,
                    url,
                    stage,
                    filters,
                    options,
                    keyring=keyring,
                    download_progress=bars.downloaded,
                    import_progress=bars.imported,
                )
        except KeyboardInterrupt:
            fail(
                "interrupted: what was recorded stays; run the same command again to resume",
                code=130,
            )
    if as_json:
        print_json(report_json(report))
    else:
        for line in summary_lines(report):
            click.echo(line)
    if not report.ok:
        imported = report.imported
        rejected = len(imported.rejected) if imported is not None else 0
        fail(
            f"mirror of {report.upstream} incomplete: {len(report.failed)} failed,"
            f" {len(report.refused)} refused, {rejected} rejected"
            " (what arrived is recorded; run it again to retry the rest)"
        )
