"""``package-storage import`` and ``package-storage import-git``: bring existing content in.

    package-storage import SOURCE --stage STAGE [--on-invalid stop|report]
    package-storage import-git REPO [--branch STAGE=BRANCH ...]

``import`` takes a folder in package-storage layout (``<name>/<version>/manifest.yml``, e.g. a
checkout's ``packages/``), a folder of ``<name>-<version>.zip`` files with their ``.sig``, or an
export bundle (``OUT``: its ``packages/`` is used). ``import-git`` reads the ``packages/`` of the
branches ``production``, ``staging`` and ``snapshot`` of a package-storage git repository (no
checkout) into the stages of the same names in one run. Rules and resumability are those of
:mod:`package_storage.transfer.importer`: running an import again skips what is already there with
identical bytes.

A progress bar (counts and rates) goes to stderr when it is a terminal; the summary (or
``--json``) goes to stdout. Exit status: 0 when the import ran to its end (with
``--on-invalid report`` also when packages were rejected: the summary lists them), 1 when a
rejected package stopped it (``--on-invalid stop``, the default) or the store refused it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
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
    plural,
    print_json,
    store_option,
    validation_level,
)

if TYPE_CHECKING:
    from package_storage.store.keyring import StoreKeyring
    from package_storage.store.service import StoreService
    from package_storage.transfer.history import HistoryReport
    from package_storage.transfer.importer import (
        Duplicate,
        ImportOptions,
        ImportProgress,
        ImportReport,
        ImportSource,
    )


# --- progress --------------------------------------------------------------------------------


class _RateColumn(ProgressColumn):
    """``85/s, 4,265 files/s`` (versions and files per second) over the run so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        if elapsed <= 0:
            return Text("")
        files = int(task.fields.get("files", 0))
        return Text(f"{task.completed / elapsed:,.0f}/s, {files / elapsed:,.0f} files/s")


class _ProgressBar:
    """The importer's progress callback drawing one rich bar."""

    def __init__(self, progress: Progress, description: str) -> None:
        self._progress = progress
        self._task: TaskID = progress.add_task(description, total=None, counts="", files=0)

    def __call__(self, p: ImportProgress) -> None:
        counts = f"imported {p.imported}, skipped {p.skipped}, rejected {p.rejected}"
        if p.pending:
            counts += f" ({p.pending} to record)"
        self._progress.update(
            self._task, completed=p.done, total=p.total, counts=counts, files=p.files
        )


def _progress(stderr: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=12),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        _RateColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )


# --- shared options --------------------------------------------------------------------------


_SHARED_OPTIONS = (
    click.option(
        "--on-invalid",
        type=click.Choice(["stop", "report"]),
        default="stop",
        show_default=True,
        help="At a rejected package (invalid, broken zip, refused signature or overwrite):"
        " stop there (exit 1), or report it and carry on (listed in the summary).",
    ),
    click.option(
        "--validation",
        type=click.Choice(["none", "load", "publish"]),
        default="load",
        show_default=True,
        help="Rules to apply: those the registry applies when it loads a package (load),"
        " the stricter publish-time rules (publish), or none (historic content as it was:"
        " only the archive checks; recorded in every import event).",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=0),
        default=None,
        metavar="N",
        help="Worker processes preparing packages (default: one per CPU; 0: none).",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=200,
        show_default=True,
        metavar="N",
        help="Package versions recorded per transaction (one revision per batch).",
    ),
    click.option("--force", is_flag=True, help="Overwrite where the stage allows it when forced."),
    click.option("--reason", default="", help="Why (recorded in every import event)."),
    click.option(
        "--no-sign",
        is_flag=True,
        help="Do not sign unsigned artifacts with the store's signing key.",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
    store_option,
)


def _import_options(func: Callable[..., None]) -> Any:
    """Add the options both commands share; FUNC gets the import's as one ``options``.

    FUNC is called with ``options`` (an :class:`~package_storage.transfer.importer.ImportOptions` made
    of --on-invalid ... --no-sign), ``as_json``, ``store_dir`` and its own parameters.
    """

    @functools.wraps(func)
    def command(
        *,
        on_invalid: str,
        validation: str,
        workers: int | None,
        batch_size: int,
        force: bool,
        reason: str,
        no_sign: bool,
        **rest: Any,
    ) -> None:
        from package_storage.transfer.importer import ImportOptions

        options = ImportOptions(
            on_invalid="report" if on_invalid == "report" else "stop",
            validation=validation_level(validation),
            workers=workers,
            batch_size=batch_size,
            force=force,
            reason=reason,
            sign=not no_sign,
        )
        func(options=options, **rest)

    decorated: Any = command
    for option in reversed(_SHARED_OPTIONS):
        decorated = option(decorated)
    return decorated


def _run(
    service: StoreService,
    keyring: StoreKeyring | None,
    sources: Sequence[ImportSource],
    options: ImportOptions,
    description: str,
    duplicates: Sequence[Duplicate] = (),
) -> ImportReport:
    from package_storage.transfer.importer import import_sources

    stderr = Console(file=sys.stderr)
    try:
        with _progress(stderr) as progress:
            return import_sources(
                service,
                sources,
                options=options,
                keyring=keyring,
                progress=_ProgressBar(progress, description),
                duplicates=duplicates,
            )
    except KeyboardInterrupt:
        fail(
            "interrupted: the batches recorded so far stay recorded;"
            " run the same command again to resume",
            code=130,
        )


# --- output ----------------------------------------------------------------------------------


def _indented(text: str, indent: str) -> str:
    lines = text.splitlines() or [""]
    return lines[0] + "".join(f"\n{indent}{line.strip()}" for line in lines[1:])


def summary_lines(report: ImportReport, source: str) -> list[str]:
    """The human summary: counts and rates, per stage, rejected, duplicates, revisions."""
    seconds = max(report.seconds, 1e-9)
    lines = [
        f"import from {source}: {len(report.imported)} imported, {len(report.skipped)} skipped,"
        f" {len(report.rejected)} rejected"
        + (f", {report.not_tried} not tried" if report.not_tried else ""),
        f"  {plural(report.total, 'version')}, {plural(report.files, 'file')} in"
        f" {report.seconds:.2f} s ({report.total / seconds:.1f} versions/s,"
        f" {report.files / seconds:,.0f} files/s, {plural(report.workers, 'worker')})",
    ]
    stages = report.by_stage()
    if len(stages) > 1:
        for stage, (imported, skipped, rejected) in stages.items():
            lines.append(f"  {stage}: {imported} imported, {skipped} skipped, {rejected} rejected")
    overwritten = [v for v in report.imported if v.status == "overwritten"]
    if overwritten:
        lines.append(f"overwritten ({len(overwritten)}):")
        lines.extend(f"  {v.name} {v.version} in {v.stage}" for v in overwritten)
    if report.rejected:
        lines.append(f"rejected ({len(report.rejected)}):")
        for r in report.rejected:
            lines.append(f"  {r.location}: {_indented(r.reason, '    ')}")
    if report.duplicates:
        lines.append(
            f"in two branches, imported into the more stable stage only ({len(report.duplicates)}):"
        )
        for d in report.duplicates:
            others = ", ".join(
                f"{stage} ({'same content' if same else 'other content'})"
                for stage, same in d.dropped
            )
            lines.append(f"  {d.name} {d.version}: {d.kept}, not {others}")
        for name, version, stage in report.left_behind:
            lines.append(
                f"  note: the store still holds {name} {version} in {stage} (imported or"
                " published before): the more stable copy wins; remove it to finish the promotion"
            )
    if report.revisions:
        revs = ", ".join(f"{d} {n}" for d, n in report.revisions.items())
        lines.append(
            f"new revisions: {revs} ({report.batches} {'batch' if report.batches == 1 else 'batches'})"
        )
    else:
        lines.append("nothing changed: no new revision")
    return lines


def report_json(report: ImportReport, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "run": report.run,
        "total": report.total,
        "imported": [
            {
                "stage": v.stage,
                "name": v.name,
                "version": v.version,
                "artifact": v.digest,
                "status": v.status,
                "location": v.location,
            }
            for v in report.imported
        ],
        "skipped": [
            {
                "stage": v.stage,
                "name": v.name,
                "version": v.version,
                "artifact": v.digest,
                "location": v.location,
            }
            for v in report.skipped
        ],
        "rejected": [
            {
                "stage": r.stage,
                "name": r.name,
                "version": r.version,
                "location": r.location,
                "code": r.code,
                "reason": r.reason,
            }
            for r in report.rejected
        ],
        "duplicates": [
            {
                "name": d.name,
                "version": d.version,
                "kept": d.kept,
                "dropped": [{"stage": s, "same_content": same} for s, same in d.dropped],
            }
            for d in report.duplicates
        ],
        "left_behind": [{"name": n, "version": v, "stage": s} for n, v, s in report.left_behind],
        "stopped": report.stopped,
        "not_tried": report.not_tried,
        "files": report.files,
        "seconds": round(report.seconds, 3),
        "batches": report.batches,
        "revisions": report.revisions,
        "workers": report.workers,
    }


def _finish(report: ImportReport, source: str, as_json: bool) -> None:
    if as_json:
        print_json(report_json(report, source))
    else:
        for line in summary_lines(report, source):
            click.echo(line)
    if report.stopped:
        last = report.rejected[-1]
        click.echo(f"error: {last.location}: {_indented(last.reason, '  ')}", err=True)
        click.echo(
            f"stopped at {last.location}: {len(report.imported)} imported,"
            f" {len(report.skipped)} skipped, {report.not_tried} not tried"
            " (--on-invalid report carries on past rejected packages)",
            err=True,
        )
        raise SystemExit(1)


# --- commands --------------------------------------------------------------------------------


@click.command("import", cls=StoreCommand)
@click.argument(
    "source", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="SOURCE"
)
@click.option("--stage", required=True, metavar="STAGE", help="Stage to import into.")
@_import_options
def import_command(
    source: Path,
    stage: str,
    options: ImportOptions,
    as_json: bool,
    store_dir: Path,
) -> None:
    """Import a package-storage folder, a folder of zips or an export bundle into STAGE.

    SOURCE holds <name>/<version>/manifest.yml folders (a package-storage checkout's
    packages/), <name>-<version>.zip files with their .sig beside them, or packages/ (an
    export bundle). Stages filled by promotion (staging, production) accept an import;
    frozen stages never do. Running it again skips what is already there with identical bytes.
    """
    from package_storage.transfer.bundle import check_bundle
    from package_storage.transfer.delta import apply_changes, check_base
    from package_storage.transfer.importer import scan_folder

    with open_store(store_dir) as store:
        store.service.catalog.stages().stage(stage)
        keyring = store.keyring
        bundle = check_bundle(source, keyring)
        if bundle is not None:
            check_base(store.service, stage, bundle)  # a delta needs its base in the stage
        sources = scan_folder(source, stage, keyring=keyring, checked=bundle)
        report = _run(store.service, keyring, sources, options, f"Importing into {stage}")
        applied = None
        if bundle is not None and not report.stopped:
            applied = apply_changes(store.service, stage, bundle)
    if applied is not None and bundle is not None and not as_json:
        base = bundle.changes.base
        click.echo(
            ("delta on top of " + base.label if base is not None else "full bundle")
            + f": {applied.removed} removed, {applied.yanked} yanked,"
            f" {applied.unyanked} unyanked; stage {stage} digest {applied.digest[:12]}"
            + (" (the bundle's selection)" if applied.matches(bundle) else "")
        )
    _finish(report, str(source), as_json)


def _branch_pairs(values: Sequence[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for value in values:
        stage, sep, branch = value.partition("=")
        if not sep or not stage or not branch:
            raise click.BadParameter(
                f"{value!r} is not STAGE=BRANCH (e.g. production=production)",
                param_hint="--branch",
            )
        pairs.append((stage, branch))
    return pairs


@click.command("import-git", cls=StoreCommand)
@click.argument("repo", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--branch",
    "branches",
    multiple=True,
    metavar="STAGE=BRANCH",
    help="Read STAGE from BRANCH (repeatable; default: every stage from the branch of the same"
    " name, e.g. production=production, plus the legacy branches production-7.9 and"
    " experimental when the repository has them).",
)
@click.option(
    "--subdir",
    default="packages",
    show_default=True,
    help="Folder of each branch that holds <name>/<version>/.",
)
@click.option(
    "--history",
    is_flag=True,
    help="Every first-parent commit of each branch becomes a revision (commit time, author"
    " and subject as its event; DIST@<commit> names it).",
)
@_import_options
def import_git(
    repo: Path,
    branches: Sequence[str],
    subdir: str,
    history: bool,
    options: ImportOptions,
    as_json: bool,
    store_dir: Path,
) -> None:
    """Import a package-storage git repository: one branch per stage, in one run.

    The packages/ of the branches production, staging and snapshot (or --branch
    STAGE=BRANCH) are read with git, without a checkout. The legacy branches production-7.9
    and experimental become frozen stages of their own; every git tag on a stage branch
    becomes a tag of that distribution naming the state of the tagged commit. With
    --history every first-parent commit becomes a revision. Running it again skips what is
    already there.
    """
    from package_storage.transfer.history import git_branches, needs_history_import
    from package_storage.transfer.importer import default_branches, plan_git_import

    pairs = _branch_pairs(branches)
    with open_store(store_dir) as store:
        graph = store.service.catalog.stages()
        chosen = pairs or git_branches(repo, graph)
        if history or needs_history_import(repo, chosen, graph):
            _import_states(store.service, repo, chosen, history, subdir, options, as_json)
            return
        plan = plan_git_import(repo, pairs or default_branches(graph), graph, subdir=subdir)
        for stage, branch in plan.missing:
            click.echo(
                f"warning: {repo} has no branch {branch}: nothing imported into {stage}",
                err=True,
            )
        report = _run(
            store.service,
            store.keyring,
            plan.sources,
            options,
            "Importing " + ", ".join(stage for stage, _, _ in plan.branches),
            plan.duplicates,
        )
    if not as_json:
        for stage, branch, commit in plan.branches:
            click.echo(f"branch {branch} ({commit[:12]}) -> stage {stage}")
    _finish(report, str(repo), as_json)


def _import_states(
    service: StoreService,
    repo: Path,
    pairs: Sequence[tuple[str, str]],
    history: bool,
    subdir: str,
    options: ImportOptions,
    as_json: bool,
) -> None:
    """The whole-repository import (history, tags, legacy stages): see transfer/history.py."""
    from package_storage.transfer.history import import_git_history

    stderr = Console(file=sys.stderr)
    try:
        with _progress(stderr) as progress:
            report = import_git_history(
                service,
                repo,
                pairs,
                history=history,
                options=options,
                keyring=service.keyring,
                subdir=subdir,
                progress=_ProgressBar(
                    progress, "Importing " + ("history" if history else "states")
                ),
            )
    except KeyboardInterrupt:
        fail(
            "interrupted: the batches recorded so far stay recorded;"
            " run the same command again to resume",
            code=130,
        )
    for stage, branch in report.missing:
        click.echo(
            f"warning: {repo} has no branch {branch}: nothing imported into {stage}", err=True
        )
    if as_json:
        print_json(history_json(report))
    else:
        for line in history_lines(report):
            click.echo(line)
    if report.stopped:
        click.echo(
            f"error: {plural(len(report.rejected), 'version')} refused: nothing recorded"
            " (--validation none imports historic content as it was; --on-invalid report"
            " leaves the refused versions out)",
            err=True,
        )
        raise SystemExit(1)


def history_lines(report: HistoryReport) -> list[str]:
    """The human summary of a whole-repository import."""
    mode = "history" if report.history else "tips and tagged commits"
    lines = [
        f"import-git {report.repo} ({mode}, validation {report.validation}):"
        f" {report.steps} commits recorded in {report.batches} "
        + ("batch" if report.batches == 1 else "batches")
        + f", {report.built} of {report.trees} version trees built,"
        f" {len(report.rejected)} rejected in {report.seconds:.2f} s"
        f" ({plural(report.workers, 'worker')})"
    ]
    for b in report.branches:
        lines.append(
            f"  branch {b.branch} ({b.tip[:12]}) -> stage {b.stage}: {b.commits} commits,"
            f" {b.recorded} recorded" + (f", {b.already} recorded before" if b.already else "")
        )
    for stage in report.added_stages:
        lines.append(f"  new stage {stage} (legacy branch: sees no other stage)")
    for stage in report.frozen:
        lines.append(f"  froze {stage}: served as imported, never changed")
    for stage in report.left_frozen:
        lines.append(f"  {stage} is frozen (imported before): not read again")
    if report.rejected:
        lines.append(f"rejected ({len(report.rejected)}):")
        for r in report.rejected:
            lines.append(f"  {r.location}: {_indented(r.reason, '    ')}")
    for t in report.tags:
        if t.status == "refused":
            lines.append(f"  tag {t.tag}: not imported: {t.reason}")
        else:
            what = "tagged" if t.status == "created" else "tag exists:"
            lines.append(
                f"  {what} {t.distribution}@{t.tag} = revision {t.revision}"
                f" (commit {t.commit[:12]}, {plural(t.count, 'version')})"
            )
    if report.revisions:
        revs = ", ".join(f"{d} {n}" for d, n in sorted(report.revisions.items()))
        lines.append(f"newest revisions: {revs}")
    else:
        lines.append("nothing changed: no new revision")
    return lines


def history_json(report: HistoryReport) -> dict[str, Any]:
    return {
        "source": report.repo,
        "history": report.history,
        "validation": report.validation,
        "branches": [
            {
                "stage": b.stage,
                "branch": b.branch,
                "tip": b.tip,
                "commits": b.commits,
                "selected": b.selected,
                "recorded": b.recorded,
                "already_recorded": b.already,
            }
            for b in report.branches
        ],
        "missing": [{"stage": s, "branch": b} for s, b in report.missing],
        "trees": report.trees,
        "built": report.built,
        "rejected": [
            {
                "stage": r.stage,
                "name": r.name,
                "version": r.version,
                "location": r.location,
                "code": r.code,
                "reason": r.reason,
            }
            for r in report.rejected
        ],
        "steps": report.steps,
        "batches": report.batches,
        "tags": [
            {
                "distribution": t.distribution,
                "tag": t.tag,
                "commit": t.commit,
                "revision": t.revision,
                "status": t.status,
                "reason": t.reason,
                "versions": t.count,
            }
            for t in report.tags
        ],
        "added_stages": report.added_stages,
        "frozen": report.frozen,
        "left_frozen": report.left_frozen,
        "revisions": report.revisions,
        "stopped": report.stopped,
        "seconds": round(report.seconds, 3),
        "workers": report.workers,
    }


COMMANDS = (import_command, import_git)
