"""``package-storage stages list|show|add|freeze|unfreeze``: the stage configuration of a store.

Thin commands over :class:`~package_storage.store.access.StoreOperations` (``add_stage``,
``freeze_stage``, ``stage_events``: a directory or, with ``--store URL``, the management API);
the rules live in ``store/stages.py``. Every
change is an event with its reason. ``init --stages FILE`` (in ``cli/store.py``) sets the whole
configuration of a new store from a YAML file (see :func:`read_stages_file`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from package_storage.cli.common import (
    StoreCommand,
    event_json,
    open_operations,
    print_json,
    print_table,
    store_option,
    when,
)
from package_storage.errors import ConfigError

if TYPE_CHECKING:
    from package_storage.store.service import ChangeResult
    from package_storage.store.stages import Stage, StageGraph

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
reason_option = click.option(
    "--reason", required=True, help="Why (recorded in the history; required)."
)


def read_stages_file(path: Path) -> StageGraph:
    """The stage graph of a YAML stage configuration file (ConfigError naming the file)."""
    from package_storage.packages.yamlutil import load_yaml
    from package_storage.store.stages import stages_from_file_config

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read stage configuration {path}: {exc.strerror}") from None
    return stages_from_file_config(load_yaml(data, path=str(path)), path=str(path))


def stage_json(graph: StageGraph, stage: Stage) -> dict[str, Any]:
    """One stage as ``stages list/show --json`` print it (rules as written in a file)."""
    from package_storage.store.stages import RULE_WORDS

    return {
        "name": stage.name,
        "rank": stage.rank,
        "sees": list(stage.sees),
        "promotes_to": stage.promotes_to,
        "overwrite": RULE_WORDS[stage.policy.overwrite],
        "remove": RULE_WORDS[stage.policy.remove],
        "publish": graph.publishes(stage.name),
        "frozen": stage.policy.frozen,
    }


def _rows(graph: StageGraph) -> list[Sequence[str]]:
    rows: list[Sequence[str]] = []
    for stage in reversed(graph.stages):  # least stable first, as the promotion path reads
        j = stage_json(graph, stage)
        rows.append(
            (
                j["name"],
                str(j["rank"]),
                ", ".join(j["sees"]) or "-",
                j["promotes_to"] or "-",
                j["overwrite"],
                j["remove"],
                "yes" if j["publish"] else "no",
                "yes" if j["frozen"] else "no",
            )
        )
    return rows


_COLUMNS = ("stage", "rank", "sees", "promotes to", "overwrite", "remove", "publish", "frozen")


@click.group("stages")
def stages() -> None:
    """The stages of a store: list, show, add, freeze, unfreeze."""


@stages.command("list", cls=StoreCommand)
@json_option
@store_option
def list_stages(as_json: bool, store_dir: Path) -> None:
    """Every stage with its rules (least stable first)."""
    with open_operations(store_dir) as store:
        graph = store.service.stages()
    if as_json:
        print_json([stage_json(graph, s) for s in reversed(graph.stages)])
        return
    print_table(f"{len(graph)} stages", _COLUMNS, _rows(graph))


@stages.command("show", cls=StoreCommand)
@click.argument("name")
@json_option
@store_option
def show_stage(name: str, as_json: bool, store_dir: Path) -> None:
    """One stage: its rules, how many versions it holds, and its configuration history."""
    from package_storage.store.service import event_title

    with open_operations(store_dir) as store:
        graph = store.service.stages()
        stage = graph.stage(name)
        count = len(store.service.list_entries(stage=name))
        events = store.service.stage_events(name)
        seen_by = [s.name for s in graph if name in s.sees]
    data = {
        **stage_json(graph, stage),
        "seen_by": seen_by,
        "versions": count,
        "events": [event_json(e, event_title(e)) for e in events],
    }
    if as_json:
        print_json(data)
        return
    print_table(f"stage {name}", _COLUMNS, [r for r in _rows(graph) if r[0] == name])
    click.echo(f"holds {count} version(s); seen by: {', '.join(seen_by) or 'no other stage'}")
    for e in events:
        reason = f" ({e.reason})" if e.reason else ""
        click.echo(f"  {when(e.time)} {e.actor}: {event_title(e)}{reason}")


@stages.command("add", cls=StoreCommand)
@click.argument("name")
@click.option("--sees", default="", metavar="A,B", help="Other stages its distribution shows.")
@click.option("--promotes-to", default=None, metavar="STAGE", help="Where it promotes to.")
@click.option(
    "--overwrite",
    type=click.Choice(["yes", "force", "never"]),
    default="never",
    show_default=True,
    help="May a version be replaced by other bytes?",
)
@click.option(
    "--remove",
    type=click.Choice(["yes", "force", "never"]),
    default="never",
    show_default=True,
    help="May a version be removed?",
)
@click.option(
    "--publish/--no-publish",
    default=None,
    help="Are packages published into it? (default: when no stage promotes to it)",
)
@click.option("--frozen", is_flag=True, help="Add it frozen (served, never changed).")
@click.option(
    "--rank", type=int, default=None, help="Stability (default: above every existing stage)."
)
@reason_option
@json_option
@store_option
def add_stage(
    name: str,
    sees: str,
    promotes_to: str | None,
    overwrite: str,
    remove: str,
    publish: bool | None,
    frozen: bool,
    rank: int | None,
    reason: str,
    as_json: bool,
    store_dir: Path,
) -> None:
    """Add a stage NAME to an existing store."""
    from package_storage.store.stages import Stage, StagePolicy, parse_rule

    with open_operations(store_dir) as store:
        graph = store.service.stages()
        if rank is None:
            rank = max(s.rank for s in graph) + 1
        stage = Stage(
            name,
            StagePolicy(parse_rule(overwrite, "overwrite"), parse_rule(remove, "remove"), frozen),
            tuple(s.strip() for s in sees.split(",") if s.strip()),
            promotes_to,
            rank,
            publish,
        )
        result = store.service.add_stage(stage, reason=reason)
        graph = store.service.stages()
    if as_json:
        print_json({**_change_json(result), "stage": stage_json(graph, graph.stage(name))})
        return
    click.echo(result.message)


def _change_json(result: ChangeResult) -> dict[str, Any]:
    from package_storage.store.service import event_title

    event = result.event
    return {
        "changed": result.changed,
        "message": result.message,
        "event": event_json(event, event_title(event)) if event is not None else None,
    }


@stages.command("freeze", cls=StoreCommand)
@click.argument("name")
@reason_option
@json_option
@store_option
def freeze(name: str, reason: str, as_json: bool, store_dir: Path) -> None:
    """Freeze stage NAME: still served, but every later change is refused."""
    with open_operations(store_dir) as store:
        result = store.service.freeze_stage(name, reason=reason)
    _print_change(result, as_json)


@stages.command("unfreeze", cls=StoreCommand)
@click.argument("name")
@reason_option
@json_option
@store_option
def unfreeze(name: str, reason: str, as_json: bool, store_dir: Path) -> None:
    """Unfreeze stage NAME: it follows its rules again."""
    with open_operations(store_dir) as store:
        result = store.service.freeze_stage(name, reason=reason, frozen=False)
    _print_change(result, as_json)


def _print_change(result: ChangeResult, as_json: bool) -> None:
    if as_json:
        print_json(_change_json(result))
    else:
        click.echo(result.message if result.changed else f"unchanged: {result.message}")
