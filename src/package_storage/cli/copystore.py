"""``package-storage copy-store SRC DST``: copy a whole store to another one, any backends.

    package-storage copy-store ./data /srv/copy
    package-storage copy-store ./data postgresql://ps@db:5432/packages   # DST made by `init`

Copies the blobs (those DST already holds are skipped), then every catalog row in one
transaction of DST (``transfer/copystore.py``), then checks that both stores hold the same
revision digests and prints them (``--json``: the report as JSON). A rerun after an
interruption finishes the copy; a rerun after a finished copy refreshes it. A DST that is
neither empty nor an earlier copy of SRC is refused and left as it is.

Exit status 0 when the copy is complete and the digests agree, 1 otherwise (``error: ...``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from package_storage.cli.common import (
    StoreCommand,
    StoreLocation,
    StoreURL,
    fail,
    print_json,
    print_table,
    short,
    shown,
)

if TYPE_CHECKING:
    from package_storage.store.directory import Store
    from package_storage.transfer.copystore import CopyProgress, CopyReport


class _Bars:
    """One progress bar per phase (blobs, rows), on stderr when it is a terminal."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, p: CopyProgress) -> None:
        task = self._tasks.get(p.phase)
        label = "Blobs" if p.phase == "blobs" else "Catalog rows"
        if task is None:
            task = self._tasks[p.phase] = self._progress.add_task(label, total=p.total)
        extra = f" ({decimal(p.bytes)})" if p.phase == "blobs" and p.bytes else ""
        self._progress.update(task, completed=p.done, total=p.total, description=label + extra)


@contextmanager
def _open(location: Path, *, create: bool, role: str) -> Iterator[Store]:
    """The store at ``location``; ``create`` makes a directory store that does not exist yet
    (a database store is made by ``init --store URL --blobs LOCATION``, which says where its
    blobs go)."""
    from package_storage.store.locator import is_store_url, open_store

    if isinstance(location, StoreURL):
        fail(
            f"copy-store {role} {location} is a management listener: copy-store reads and writes"
            " the stores themselves (a directory or a postgresql:// URL)"
        )
    with open_store(location, create=create and not is_store_url(str(location))) as store:
        yield store


def summary_lines(report: CopyReport, source: str, target: str) -> list[str]:
    blobs = (
        f"blobs: {report.blobs_copied} copied ({decimal(report.bytes_copied)}),"
        f" {report.blobs_skipped} already there"
    )
    rows = ", ".join(f"{count} {table}" for table, count in report.rows.items() if count)
    verb = "refreshed the copy" if report.refreshed else "copied"
    lines = [
        f"{verb} {source} -> {target} at change {report.change_seq}",
        blobs,
        f"catalog rows: {rows or 'none'}",
    ]
    if report.key_files:
        lines.append(f"keys: {report.key_files} key file(s) of {source}/keys carried over")
    return lines


def _report_json(report: CopyReport, source: str, target: str) -> dict[str, Any]:
    return {"source": source, "target": target, **report.as_json()}


@click.command("copy-store", cls=StoreCommand)
@click.argument("source", type=StoreLocation(), metavar="SRC")
@click.argument("target", type=StoreLocation(), metavar="DST")
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Catalog rows read and written per statement.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Blobs copied at once.",
)
@click.option("--json", "as_json", is_flag=True, help="The report as JSON on stdout.")
def copy_store_command(source: Path, target: Path, batch: int, threads: int, as_json: bool) -> None:
    """Copy the whole store SRC (artifacts, stage entries with their history, revisions, tags,
    events, keys, tokens, stage configuration) into DST, resumably, then check that both hold
    the same revision digests.

    SRC must be a store; DST must be empty (a directory that does not exist yet is made) or an
    earlier copy of SRC.
    """
    from package_storage.transfer.copystore import copy_store

    src_name, dst_name = shown(source), shown(target)
    stderr = Console(file=sys.stderr)
    with (
        _open(source, create=False, role="source") as src,
        _open(target, create=True, role="target") as dst,
    ):
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=stderr,
            transient=True,
            disable=not stderr.is_terminal,
        )
        try:
            with progress:
                report = copy_store(
                    src,
                    dst,
                    target_name=dst_name,
                    batch=batch,
                    threads=threads,
                    progress=_Bars(progress),
                )
        except KeyboardInterrupt:
            fail(
                "interrupted: blobs copied so far stay, the target's catalog is unchanged;"
                " run the same command again to finish",
                code=130,
            )
    if as_json:
        print_json(_report_json(report, src_name, dst_name))
    else:
        for line in summary_lines(report, src_name, dst_name):
            click.echo(line)
        print_table(
            "revision digests",
            ("distribution", "revisions", "current", "source digest", "target digest", "same"),
            [
                (
                    d.distribution,
                    str(d.revisions),
                    "" if d.current is None else str(d.current),
                    short(d.source_digest),
                    short(d.target_digest),
                    "yes" if d.same else "NO",
                )
                for d in report.distributions
            ],
        )
    if not report.same:
        for problem in report.problems:
            click.echo(f"problem: {problem}", err=True)
        fail(
            f"copy of {src_name} into {dst_name} does not match ({len(report.problems)}"
            " problem(s)): run the same command again; if it persists run `package-storage fsck`"
            " on both"
        )


__all__ = ["copy_store_command"]
