"""The store commands: ``init``, ``migrate``, ``publish``, ``promote``, ``remove``, ``list``, ``show``,
``diff``, ``history``, ``revisions``, ``tag``, ``tags``, ``rollback`` and ``fsck``.

Thin commands over :class:`~package_storage.store.service.StoreService`: the rules live there. Exit
status 0 when done, 1 when a rule or validation refuses (``error: <message>`` on stderr, one line
naming the rule), 2 for usage errors. ``docs/cli.md`` documents every command and the ``--json``
shapes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from package_storage.cli.common import (
    SHORT_DIGEST,
    StoreCommand,
    StoreURL,
    entry_json,
    event_json,
    fail,
    open_operations,
    open_store,
    plural,
    print_json,
    print_table,
    require_local,
    short,
    shown,
    store_option,
    when,
)
from package_storage.cli.stages import stages
from package_storage.errors import NotFoundError, PackageStorageError
from package_storage.store.storage.base import Event, EventFilter, RevisionEntry, StageEntry

if TYPE_CHECKING:
    from package_storage.store.service import ChangeResult, RollbackPlan


def event_title(event: Event) -> str:
    """:func:`package_storage.store.service.event_title` (imported on use: `--help` stays fast)."""
    from package_storage.store.service import event_title as title

    return title(event)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")


_FULL_DIGEST = re.compile(rf"\b([0-9a-f]{{{SHORT_DIGEST}}})[0-9a-f]{{{64 - SHORT_DIGEST}}}\b")


def shorten_digests(message: str) -> str:
    """``... (sha256 <64 hex>)`` -> ``... (sha256 <12 hex>…)``: one readable line."""
    return _FULL_DIGEST.sub(lambda m: m.group(1) + "…", message)


def _digest_note(result: ChangeResult) -> str:
    digest = result.event.detail.get("digest") if result.event is not None else None
    return f" (sha256 {short(digest)}…)" if isinstance(digest, str) and digest else ""


def change_json(result: ChangeResult) -> dict[str, object]:
    """``--json`` of a change: whether it changed anything, the message (full sha256 digests),
    the event recorded and the revisions made."""
    return {
        "changed": result.changed,
        "message": result.message,
        "event": event_json(result.event, event_title(result.event))
        if result.event is not None
        else None,
        "revisions": [
            {"distribution": r.distribution, "revision": r.number, "digest": r.digest}
            for r in result.revisions
        ],
    }


def change_line(result: ChangeResult, fallback: str) -> str:
    """The one line a change prints: the service's message with short digests; a no-op reads
    ``unchanged: ...``."""
    line = shorten_digests(result.message or fallback)
    if not result.changed and not line.lower().startswith("unchanged"):
        line = f"unchanged: {line}"
    return line


# --- init ------------------------------------------------------------------------------------


@click.command("init", cls=StoreCommand)
@click.option(
    "--stages",
    "stages_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Stage configuration (YAML; default: snapshot -> staging -> production).",
)
@click.option(
    "--blobs",
    "blobs",
    default=None,
    metavar="LOCATION",
    help=(
        "Where a new store keeps its blobs: a folder or s3://BUCKET/PREFIX, recorded in the"
        " catalog (default: DIR/blobs; required for a postgresql:// store)."
    ),
)
@json_option
@store_option
def init(stages_file: Path | None, blobs: str | None, as_json: bool, store_dir: Path) -> None:
    """Create the store (idempotent: an existing store is left as it is).

    The store is a directory (the default), or a PostgreSQL database
    (--store postgresql://USER@HOST:PORT/DB --blobs LOCATION). With --stages FILE the store
    gets the stages of FILE (a store that already holds packages keeps its stages: change them
    with `package-storage stages`).
    """
    from package_storage.cli.stages import read_stages_file

    graph = read_stages_file(stages_file) if stages_file is not None else None
    if isinstance(store_dir, StoreURL):
        if blobs is not None or graph is not None:
            fail(f"init of a remote store ({store_dir}) takes no --blobs or --stages")
        with open_operations(store_dir) as remote:
            names = list(reversed(remote.service.stages().names))
        _print_init(str(store_dir), False, names, None, as_json)
        return
    with open_store(store_dir, create=True, blobs=blobs) as local:
        created = local.catalog.created
        if graph is not None:
            local.service.configure_stages(
                graph, reason=f"initial stage configuration from {stages_file}"
            )
        names = list(reversed(local.service.stages().names))
        # Named only when not the directory's own blobs folder (the default).
        location = None if local.store.blobs_default else local.store.blobs_location
    _print_init(shown(store_dir), created, names, location, as_json)


def _print_init(
    store: str, created: bool, names: list[str], blobs: str | None, as_json: bool
) -> None:
    if as_json:
        out: dict[str, object] = {"store": store, "created": created, "stages": names}
        if blobs is not None:
            out["blobs"] = blobs
        print_json(out)
        return
    verb = "created store" if created else "store exists"
    where = f", blobs: {blobs}" if blobs is not None else ""
    click.echo(f"{verb} at {store} (stages: {', '.join(names)}{where})")


@click.command("migrate", cls=StoreCommand)
@json_option
@store_option
def migrate(as_json: bool, store_dir: Path) -> None:
    """Upgrade the store's catalog schema to this package-storage's (idempotent).

    Run it once after installing a newer package-storage, before the other commands (which
    refuse an older schema). Several processes may run it at once: one migrates, the others
    find the store current. A store written by a newer package-storage is refused.
    """
    from package_storage.store.locator import migrate_store

    require_local(store_dir, "migrate")
    result = migrate_store(store_dir)
    if as_json:
        print_json(
            {"store": shown(store_dir), "applied": list(result.applied), "revision": result.head}
        )
        return
    if result.applied:
        click.echo(
            f"migrated store {shown(store_dir)} to revision {result.head}"
            f" (applied {', '.join(result.applied)})"
        )
    else:
        click.echo(f"store {shown(store_dir)} is up to date (revision {result.head})")


# --- publish / promote / remove ----------------------------------------------------------------


@click.command("publish", cls=StoreCommand)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--stage",
    default=None,
    metavar="STAGE",
    help="Stage to publish to (default: the store's publish stage, snapshot).",
)
@click.option("--force", is_flag=True, help="Overwrite where the stage allows it when forced.")
@click.option("--reason", default="", help="Why (recorded in the history).")
@json_option
@store_option
def publish(
    paths: Sequence[Path],
    stage: str | None,
    force: bool,
    reason: str,
    as_json: bool,
    store_dir: Path,
) -> None:
    """Publish package folders or zips (a .sig beside a zip is taken along).

    Each package is its own transaction. The command stops at the first refused package
    (exit 1); the packages published before it stay published.
    """
    done: list[dict[str, object]] = []
    with open_operations(store_dir) as store:
        published = unchanged = 0
        for path in paths:
            try:
                result = store.service.publish(path, stage=stage, force=force, reason=reason)
            except PackageStorageError as exc:
                if as_json:
                    print_json(done)
                click.echo(f"error: {exc}", err=True)
                if len(paths) > 1:
                    click.echo(
                        f"stopped at {path}: {published} published, {unchanged} unchanged,"
                        f" {len(paths) - published - unchanged - 1} not tried",
                        err=True,
                    )
                raise SystemExit(1) from None
            if result.changed:
                published += 1
            else:
                unchanged += 1
            if as_json:
                done.append({"path": str(path), **change_json(result)})
            else:
                click.echo(change_line(result, f"{path}: published"))
    if as_json:
        print_json(done)


@click.command("promote", cls=StoreCommand)
@click.argument("name")
@click.argument("version")
@click.option("--to", "to", required=True, metavar="STAGE", help="Stage to promote to.")
@click.option(
    "--from",
    "source",
    default=None,
    metavar="STAGE",
    help="Stage to promote from (default: the stage that promotes to --to).",
)
@click.option("--force", is_flag=True, help="Replace other bytes where the target allows it.")
@click.option("--reason", default="", help="Why (recorded; required with --force).")
@json_option
@store_option
def promote(
    name: str,
    version: str,
    to: str,
    source: str | None,
    force: bool,
    reason: str,
    as_json: bool,
    store_dir: Path,
) -> None:
    """Move NAME VERSION one stage up the promotion path, in one atomic step."""
    with open_operations(store_dir) as store:
        result = store.service.promote(
            name, version, to=to, source=source, force=force, reason=reason
        )
    if as_json:
        print_json(change_json(result))
        return
    line = change_line(result, f"promoted {name} {version} to {to}")
    click.echo(line + ("" if "sha256" in line else _digest_note(result)))


@click.command("remove", cls=StoreCommand)
@click.argument("name")
@click.argument("version")
@click.option("--stage", required=True, metavar="STAGE", help="Stage to remove from.")
@click.option("--force", is_flag=True, help="Needed where the stage removes only when forced.")
@click.option("--reason", default="", help="Why (recorded; required with --force).")
@json_option
@store_option
def remove(
    name: str, version: str, stage: str, force: bool, reason: str, as_json: bool, store_dir: Path
) -> None:
    """Remove NAME VERSION from a stage."""
    with open_operations(store_dir) as store:
        result = store.service.remove(name, version, stage=stage, force=force, reason=reason)
    if as_json:
        print_json(change_json(result))
        return
    click.echo(change_line(result, f"removed {name} {version} from {stage}"))


@click.command("yank", cls=StoreCommand)
@click.argument("name")
@click.argument("version")
@click.option("--stage", required=True, metavar="STAGE", help="Stage holding the version.")
@click.option("--reason", required=True, help="Why (recorded; required).")
@json_option
@store_option
def yank(name: str, version: str, stage: str, reason: str, as_json: bool, store_dir: Path) -> None:
    """Yank a bad release: hidden from search and categories, still downloadable by version."""
    with open_operations(store_dir) as store:
        result = store.service.yank(name, version, stage=stage, reason=reason)
    if as_json:
        print_json(change_json(result))
        return
    click.echo(change_line(result, f"yanked {name} {version} in {stage}"))


@click.command("unyank", cls=StoreCommand)
@click.argument("name")
@click.argument("version")
@click.option("--stage", required=True, metavar="STAGE", help="Stage holding the version.")
@click.option("--reason", required=True, help="Why (recorded; required).")
@json_option
@store_option
def unyank(
    name: str, version: str, stage: str, reason: str, as_json: bool, store_dir: Path
) -> None:
    """Undo a yank: the version is listed in search and categories again."""
    with open_operations(store_dir) as store:
        result = store.service.yank(name, version, stage=stage, reason=reason, yanked=False)
    if as_json:
        print_json(change_json(result))
        return
    click.echo(change_line(result, f"unyanked {name} {version} in {stage}"))


# --- list / show / diff / history -------------------------------------------------------------


@click.command("list", cls=StoreCommand)
@click.option("--stage", default=None, metavar="STAGE", help="Versions stored in one stage.")
@click.option(
    "--distribution",
    default=None,
    metavar="DIST",
    help="Versions a distribution serves (its current revision, or --revision).",
)
@click.option(
    "--revision",
    default=None,
    metavar="N|TAG",
    help="With --distribution: a revision number or tag instead of the current revision.",
)
@json_option
@store_option
def list_command(
    stage: str | None,
    distribution: str | None,
    revision: str | None,
    as_json: bool,
    store_dir: Path,
) -> None:
    """List package versions (of every stage, one stage, or what a distribution serves)."""
    if stage is not None and distribution is not None:
        raise click.UsageError("use either --stage or --distribution, not both")
    if revision is not None and distribution is None:
        raise click.UsageError("--revision needs --distribution")
    with open_operations(store_dir) as store:
        entries: Sequence[StageEntry | RevisionEntry] = store.service.list_entries(
            stage=stage, distribution=distribution, revision=revision
        )
    if as_json:
        print_json([_listed_json(e) for e in entries])
        return
    title = (
        f"distribution {distribution}" + (f"@{revision}" if revision else "")
        if distribution
        else f"stage {stage}"
        if stage
        else "all stages"
    )
    title += f": {plural(len(entries), 'version')}"
    if distribution is not None:
        print_table(
            title,
            ("name", "version", "from stage", "artifact", "yanked"),
            [
                (e.name, e.version, e.stage, short(e.artifact), _yanked(e.yanked))
                for e in entries
                if isinstance(e, RevisionEntry)
            ],
        )
        return
    print_table(
        title,
        ("name", "version", "stage", "artifact", "added", "by", "yanked"),
        [
            (
                e.name,
                e.version,
                e.stage,
                short(e.artifact),
                when(e.added_at),
                e.added_by,
                _yanked(e.yanked),
            )
            for e in entries
            if isinstance(e, StageEntry)
        ],
    )


def _yanked(value: bool) -> str:
    return "yanked" if value else ""


def _listed_json(entry: StageEntry | RevisionEntry) -> dict[str, object]:
    if isinstance(entry, StageEntry):
        return entry_json(entry)
    return {
        "name": entry.name,
        "version": entry.version,
        "stage": entry.stage,
        "artifact": entry.artifact,
        "yanked": entry.yanked,
    }


@click.command("show", cls=StoreCommand)
@click.argument("name")
@click.argument("version", required=False)
@json_option
@store_option
def show(name: str, version: str | None, as_json: bool, store_dir: Path) -> None:
    """Where each version of NAME lives, its artifact digests and its events."""
    with open_operations(store_dir) as store:
        locations = store.service.show(name, version)
        events = store.service.history(EventFilter(name=name, version=version))
    if not locations:
        what = f"{name} {version}" if version else name
        raise NotFoundError(f"package {what} is in no stage")
    by_version: dict[str, list[Event]] = {}
    for event in events:
        by_version.setdefault(event.version or "", []).append(event)
    if as_json:
        print_json(
            {
                "name": name,
                "versions": [
                    {
                        "version": loc.version,
                        "artifact_size": loc.artifact_size,
                        "signed": loc.signed,
                        "stages": [
                            {
                                "stage": e.stage,
                                "artifact": e.artifact,
                                "added_at": when(e.added_at),
                                "added_by": e.added_by,
                                "yanked": e.yanked,
                            }
                            for e in loc.entries
                        ],
                        "events": [
                            event_json(ev, event_title(ev))
                            for ev in by_version.get(loc.version, [])
                        ],
                    }
                    for loc in locations
                ],
            }
        )
        return
    print_table(
        f"{name}: {plural(len(locations), 'version')}",
        ("version", "stage", "artifact", "size", "signed", "added", "by", "yanked"),
        [
            (
                loc.version,
                e.stage,
                short(e.artifact),
                str(loc.artifact_size),
                "yes" if loc.signed else "no",
                when(e.added_at),
                e.added_by,
                _yanked(e.yanked),
            )
            for loc in locations
            for e in loc.entries
        ],
    )
    if events:
        _events_table(f"{name} events", events)


def _events_table(title: str, events: Sequence[Event]) -> None:
    print_table(
        title,
        ("id", "time", "actor", "event", "reason"),
        [(str(ev.id), when(ev.time), ev.actor, event_title(ev), ev.reason or "") for ev in events],
    )


@click.command("diff", cls=StoreCommand)
@click.argument("stage_a")
@click.argument("stage_b")
@json_option
@store_option
def diff(stage_a: str, stage_b: str, as_json: bool, store_dir: Path) -> None:
    """Versions only in A, only in B, and in both with different artifacts.

    Each of A and B is a stage (the versions stored in it), DIST@N, DIST@TAG or DIST@<commit>
    (a revision of a distribution: what it served then), or DIST@current (what it serves now).
    """
    with open_operations(store_dir) as store:
        result = store.service.diff(stage_a, stage_b)
    different = [
        {"name": a.name, "version": a.version, "artifact_a": a.artifact, "artifact_b": b.artifact}
        for a, b in result.different
    ]
    if as_json:
        print_json(
            {
                "stage_a": result.stage_a,
                "stage_b": result.stage_b,
                "only_a": [_listed_json(e) for e in result.only_a],
                "only_b": [_listed_json(e) for e in result.only_b],
                "different": different,
            }
        )
        return
    rows = [(f"only in {stage_a}", e.name, e.version, short(e.artifact), "") for e in result.only_a]
    rows += [
        (f"only in {stage_b}", e.name, e.version, "", short(e.artifact)) for e in result.only_b
    ]
    rows += [
        ("different", a.name, a.version, short(a.artifact), short(b.artifact))
        for a, b in result.different
    ]
    if not rows:
        click.echo(f"{stage_a} and {stage_b} hold the same versions with the same artifacts")
        return
    print_table(
        f"{stage_a} vs {stage_b}",
        ("difference", "name", "version", f"{stage_a} artifact", f"{stage_b} artifact"),
        rows,
    )


@click.command("history", cls=StoreCommand)
@click.option("--stage", default=None, metavar="STAGE", help="Only events of one stage.")
@click.option("--package", "name", default=None, metavar="NAME", help="Only events of one package.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="At most this many events, newest first (0: all).",
)
@json_option
@store_option
def history(
    stage: str | None, name: str | None, limit: int, as_json: bool, store_dir: Path
) -> None:
    """The audit history: who changed what, when and why (newest first)."""
    query = EventFilter(stage=stage, name=name, limit=limit or None, newest_first=True)
    with open_operations(store_dir) as store:
        events = store.service.history(query)
    if as_json:
        print_json([event_json(ev, event_title(ev)) for ev in events])
        return
    if not events:
        click.echo("no events")
        return
    _events_table(f"history: {plural(len(events), 'event')}, newest first", events)


# --- revisions / tags / rollback ----------------------------------------------------------------


@click.command("revisions", cls=StoreCommand)
@click.argument("distribution")
@json_option
@store_option
def revisions(distribution: str, as_json: bool, store_dir: Path) -> None:
    """The revisions of DISTRIBUTION, oldest first; `*` marks the current one."""
    with open_operations(store_dir) as store:
        revs = store.service.revisions(distribution)
    if as_json:
        print_json(
            [
                {
                    **r.as_json(),
                    "count": r.count,
                    "server_version": r.server_version,
                    "event": r.event,
                    "event_title": r.event_title or None,
                }
                for r in revs
            ]
        )
        return
    print_table(
        f"distribution {distribution}: {plural(len(revs), 'revision')}",
        ("revision", "current", "created", "digest", "versions", "server", "tags", "made by"),
        [
            (
                str(r.number),
                "*" if r.current else "",
                when(r.created),
                short(r.digest),
                str(r.count),
                r.server_version,
                ", ".join(r.tags),
                f"#{r.event} {r.event_title}" if r.event is not None else "",
            )
            for r in revs
        ],
    )


@click.command("tag", cls=StoreCommand)
@click.argument("distribution")
@click.argument("tag")
@click.option(
    "--revision",
    type=click.IntRange(min=1),
    default=None,
    help="Revision to tag (default: the current one).",
)
@json_option
@store_option
def tag(distribution: str, tag: str, revision: int | None, as_json: bool, store_dir: Path) -> None:
    """Name a revision of DISTRIBUTION permanently (tags never move)."""
    with open_operations(store_dir) as store:
        made = store.service.tag(distribution, tag, revision=revision)
        digest = store.service.resolve_revision(made.distribution, made.revision).digest
    if as_json:
        print_json(
            {
                "distribution": made.distribution,
                "tag": made.tag,
                "revision": made.revision,
                "digest": digest,
                "created": when(made.created),
                "created_by": made.created_by,
            }
        )
        return
    click.echo(
        f"tagged {made.distribution}@{made.tag} = revision {made.revision}"
        f" (digest {short(digest)}…)"
    )


@click.command("tags", cls=StoreCommand)
@click.option("--distribution", default=None, metavar="DIST", help="Tags of one distribution.")
@json_option
@store_option
def tags(distribution: str | None, as_json: bool, store_dir: Path) -> None:
    """Every tag: which revision of which distribution it names."""
    with open_operations(store_dir) as store:
        found = store.service.tags(distribution)
    if as_json:
        print_json(
            [
                {
                    "distribution": t.distribution,
                    "tag": t.tag,
                    "revision": t.revision,
                    "created": when(t.created),
                    "created_by": t.created_by,
                }
                for t in found
            ]
        )
        return
    if not found:
        click.echo("no tags")
        return
    print_table(
        plural(len(found), "tag"),
        ("tag", "revision", "created", "by"),
        [
            (f"{t.distribution}@{t.tag}", str(t.revision), when(t.created), t.created_by)
            for t in found
        ],
    )


@click.command("rollback", cls=StoreCommand)
@click.argument("distribution")
@click.argument("revision_or_tag")
@click.option("--reason", default="", help="Why (recorded in the rollback's events).")
@click.option(
    "--dry-run", is_flag=True, help="List what would move (and where to), change nothing."
)
@json_option
@store_option
def rollback(
    distribution: str,
    revision_or_tag: str,
    reason: str,
    dry_run: bool,
    as_json: bool,
    store_dir: Path,
) -> None:
    """Point DISTRIBUTION back at an earlier revision (a number, a tag or a commit id).

    Versions added since are taken out of the distribution's stage; one that arrived by
    promotion goes back to the stage it was promoted from (nothing is lost). Versions removed
    or overwritten since are put back.
    """
    with open_operations(store_dir) as store:
        if dry_run:
            plan = store.service.rollback_plan(distribution, revision_or_tag)
            _print_rollback_plan(plan, as_json)
            return
        result = store.service.rollback(distribution, revision_or_tag, reason=reason)
        after = store.service.current_revision(distribution)
    if as_json:
        print_json(
            {
                "changed": result.changed,
                "message": result.message,
                "event": event_json(result.event, event_title(result.event))
                if result.event is not None
                else None,
                "revision": after.number if after is not None else None,
            }
        )
        return
    click.echo(change_line(result, f"rolled {distribution} back to {revision_or_tag}"))
    if result.event is not None:
        for item in result.event.detail.get("removed", []):
            where = (
                f"returned to {item['returned_to']}"
                if item.get("returned_to")
                else f"{item['kept_in']} keeps its copy"
                if item.get("kept_in")
                else "removed"
            )
            click.echo(f"  out: {item['name']} {item['version']} ({where})")
        for item in result.event.detail.get("restored", []):
            src = f" (taken back from {item['taken_from']})" if item.get("taken_from") else ""
            click.echo(f"  back: {item['name']} {item['version']}{src}")
    if result.changed and after is not None:
        click.echo(
            f"{distribution} now serves revision {after.number} (digest {short(after.digest)}…)"
        )


def _print_rollback_plan(plan: RollbackPlan, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "distribution": plan.distribution,
                "revision": plan.revision,
                "tag": plan.tag,
                "current_revision": plan.previous,
                "moves": [{"action": m.action, **m.as_json()} for m in plan.moves],
            }
        )
        return
    what = f"revision {plan.revision}" + (f" (tag {plan.tag})" if plan.tag else "")
    click.echo(
        f"dry run: rolling {plan.distribution} back to {what} would move"
        f" {plural(len(plan.moves), 'version')} (nothing changed)"
    )
    words = {
        "remove": "take out",
        "return": "take out, return to",
        "restore": "put back",
        "take_back": "put back, taking it from",
    }
    for m in plan.moves:
        where = f" {m.stage}" if m.stage and m.action in ("return", "take_back") else ""
        kept = f" ({m.stage} keeps its copy)" if m.action == "remove" and m.stage else ""
        click.echo(f"  {m.name} {m.version}: {words[m.action]}{where}{kept}")


# --- fsck ----------------------------------------------------------------------------------


@click.command("fsck", cls=StoreCommand)
@click.option("--repair", is_flag=True, help="Repair what can be repaired (orphans, temp files).")
@json_option
@store_option
def fsck(repair: bool, as_json: bool, store_dir: Path) -> None:
    """Check the store: catalog consistency and blobs (exit 1 when inconsistent)."""
    with open_operations(store_dir) as store:
        report = store.service.fsck(repair=repair)
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "missing": list(report.missing),
                "corrupt": list(report.corrupt),
                "orphaned": list(report.orphaned),
                "catalog_problems": list(report.catalog_problems),
                "repaired": list(report.repaired),
            }
        )
    else:
        for digest in report.missing:
            click.echo(f"missing blob {digest} (referenced by the catalog)")
        for digest in report.corrupt:
            click.echo(f"corrupt blob {digest} (bytes do not hash to the digest)")
        for digest in report.orphaned:
            click.echo(f"orphaned blob {digest} (referenced by nothing)")
        for problem in report.catalog_problems:
            click.echo(f"catalog: {problem}")
        for item in report.repaired:
            click.echo(f"repaired: {item}")
    if not report.ok:
        problems = len(report.missing) + len(report.corrupt) + len(report.catalog_problems)
        fail(f"store at {store_dir} is inconsistent ({plural(problems, 'problem')})")
    if not as_json:
        click.echo(f"ok: store at {store_dir} is consistent")


COMMANDS: tuple[click.Command, ...] = (
    init,
    migrate,
    stages,
    publish,
    promote,
    remove,
    yank,
    unyank,
    list_command,
    show,
    diff,
    history,
    revisions,
    tag,
    tags,
    rollback,
    fsck,
)
