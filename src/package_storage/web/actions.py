"""The actions of the UI: promote, remove, tag, roll back.

Each is two steps over the same form URL: without ``confirm`` the page says what will change
(read from the service: where the version is, the stage's rule, the rollback plan) and asks for
a ``Reason``; with ``confirm`` it calls the token's service, which checks the scope and the
rules, and shows its message. The reason is required on the form where the stage's rule asks
for one (a forced overwrite or removal); the service checks it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from package_storage.errors import InvalidInputError, NotFoundError
from package_storage.store.access import GuardedService
from package_storage.store.service import ChangeResult, RollbackMove, check_tag_name
from package_storage.store.stages import StageGraph
from package_storage.store.storage.base import Revision, Tag

RULE_NOTES = {
    "force": "the rule of {stage} asks for a reason (recorded in the history)",
    "never": "{stage} never does this: the service will refuse it",
}


@dataclass
class Confirmation:
    """What the confirmation page shows and the hidden fields its form sends back."""

    title: str
    url: str
    changes: list[str]
    fields: dict[str, str]
    back: str
    reason_required: bool = False
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    reason: str = ""


@dataclass
class Done:
    title: str
    message: str
    revisions: tuple[Revision, ...] = ()
    event: int | None = None
    links: list[tuple[str, str]] = field(default_factory=list)


def package_url(name: str, version: str | None = None) -> str:
    url = f"/packages/{quote(name, safe='')}"
    return url + (f"?version={quote(version, safe='')}" if version else "")


def _affected(graph: StageGraph, *stages: str) -> str:
    names: list[str] = []
    for stage in stages:
        names.extend(d for d in graph.affected_distributions(stage) if d not in names)
    return ", ".join(names)


def _held(g: GuardedService, name: str, version: str) -> dict[str, Any]:
    locations = g.show(name, version)
    return {e.stage: e for loc in locations for e in loc.entries}


def _done(title: str, result: ChangeResult, links: list[tuple[str, str]]) -> Done:
    return Done(
        title,
        result.message,
        result.revisions,
        result.event.id if result.event else None,
        links,
    )


# --- promote ---------------------------------------------------------------------------------


def promote_preview(
    g: GuardedService, name: str, version: str, to: str, source: str | None
) -> Confirmation:
    graph = g.stages()
    graph.stage(to)
    held = _held(g, name, version)
    src = source or next((s.name for s in graph if s.promotes_to == to and s.name in held), None)
    if src is None:
        raise NotFoundError(f"{name} {version} is in no stage that promotes to {to}")
    entry = held.get(src)
    if entry is None:
        raise NotFoundError(f"{name} {version} is not in stage {src}")
    changes = [
        f"{name} {version} (sha256 {entry.artifact}) moves from {src} to {to}",
        f"{src} no longer holds it",
        f"new revisions of: {_affected(graph, to, src)}",
    ]
    fields = {"to": to, "from": src}
    notes: list[str] = []
    required = False
    present = held.get(to)
    if present is not None and present.artifact == entry.artifact:
        changes[0] = f"{to} already holds {name} {version} with these bytes: it stays there"
    elif present is not None:
        rule = graph.stage(to).policy.overwrite
        changes.insert(1, f"it replaces other bytes in {to} (sha256 {present.artifact})")
        if rule in RULE_NOTES:
            notes.append(RULE_NOTES[rule].format(stage=to))
        if rule == "force":
            fields["force"] = "1"
            required = True
    return Confirmation(
        f"Promote {name} {version} to {to}",
        package_url(name) + f"/{quote(version, safe='')}/promote",
        changes,
        fields,
        package_url(name, version),
        required,
        notes,
    )


def promote(g: GuardedService, name: str, version: str, form: dict[str, str], reason: str) -> Done:
    to = form.get("to", "")
    result = g.promote(
        name,
        version,
        to=to,
        source=form.get("from") or None,
        force=form.get("force") == "1",
        reason=reason,
    )
    return _done(
        f"Promoted {name} {version}",
        result,
        [(f"{name}", package_url(name, version)), ("History", "/history")],
    )


# --- remove ----------------------------------------------------------------------------------


def remove_preview(g: GuardedService, name: str, version: str, stage: str) -> Confirmation:
    graph = g.stages()
    rule = graph.stage(stage).policy.remove
    entry = _held(g, name, version).get(stage)
    if entry is None:
        raise NotFoundError(f"{name} {version} is not in stage {stage}")
    fields = {"stage": stage}
    notes = [RULE_NOTES[rule].format(stage=stage)] if rule in RULE_NOTES else []
    if rule == "force":
        fields["force"] = "1"
    return Confirmation(
        f"Remove {name} {version} from {stage}",
        package_url(name) + f"/{quote(version, safe='')}/remove",
        [
            f"{name} {version} (sha256 {entry.artifact}) leaves {stage}",
            f"new revisions of: {_affected(graph, stage)}",
        ],
        fields,
        package_url(name, version),
        rule == "force",
        notes,
    )


def remove(g: GuardedService, name: str, version: str, form: dict[str, str], reason: str) -> Done:
    stage = form.get("stage", "")
    result = g.remove(name, version, stage=stage, force=form.get("force") == "1", reason=reason)
    return _done(
        f"Removed {name} {version} from {stage}",
        result,
        [(name, package_url(name)), ("History", "/history")],
    )


# --- tag -------------------------------------------------------------------------------------


def revision_number(text: str | None) -> int | None:
    """A form's ``revision`` (empty: the current one)."""
    value = (text or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise InvalidInputError(f"revision {value!r}: a revision number")
    return int(value)


def tag_preview(g: GuardedService, distribution: str, form: dict[str, str]) -> Confirmation:
    tag = check_tag_name(form.get("tag", "").strip())
    number = revision_number(form.get("revision"))
    revision = (
        g.resolve_revision(distribution, number)
        if number is not None
        else g.current_revision(distribution)
    )
    if revision is None:
        raise NotFoundError(f"distribution {distribution} has no revision yet: nothing to tag")
    return Confirmation(
        f"Tag revision {revision.number} of {distribution}",
        f"/distributions/{quote(distribution, safe='')}/tag",
        [
            f"{distribution}@{tag} names revision {revision.number} (digest {revision.digest},"
            f" {revision.count} versions, made {revision.created:%Y-%m-%d %H:%M:%S} UTC)",
            "a tag is permanent: it never moves",
        ],
        {"tag": tag, "revision": str(revision.number)},
        f"/distributions/{quote(distribution, safe='')}",
    )


def tag(g: GuardedService, distribution: str, form: dict[str, str], reason: str) -> Done:
    name = form.get("tag", "").strip()
    made: Tag = g.tag(
        distribution, name, revision=revision_number(form.get("revision")), reason=reason
    )
    url = f"/distributions/{quote(distribution, safe='')}"
    return Done(
        f"Tagged {distribution}@{made.tag}",
        f"tagged revision {made.revision} of {distribution} as {made.tag}",
        links=[
            (f"revision {made.revision}", f"{url}/revisions/{made.revision}"),
            (f"{distribution} revisions", url),
        ],
    )


# --- rollback --------------------------------------------------------------------------------


def move_text(move: RollbackMove) -> str:
    what = f"{move.name} {move.version} (sha256 {move.digest})"
    if move.action == "remove":
        kept = f"; {move.stage} keeps its copy" if move.stage else ""
        return f"{what} is taken out{kept}"
    if move.action == "return":
        return f"{what} is taken out and goes back to {move.stage}, where it was promoted from"
    replaced = f", replacing sha256 {move.replaced}" if move.replaced else ""
    if move.action == "take_back":
        return f"{what} is taken back from {move.stage}{replaced}"
    return f"{what} is put back{replaced}"


def rollback_preview(g: GuardedService, distribution: str, form: dict[str, str]) -> Confirmation:
    number = revision_number(form.get("revision"))
    if number is None:
        raise InvalidInputError("revision: say which revision to roll back to")
    plan = g.rollback_plan(distribution, number)
    changes = [
        f"{distribution} serves revision {plan.revision} again"
        + (f" (now revision {plan.previous})" if plan.previous is not None else "")
    ]
    changes.extend(move_text(m) for m in plan.moves)
    if not plan.moves:
        changes.append("no version moves")
    return Confirmation(
        f"Roll back {distribution} to revision {plan.revision}",
        f"/distributions/{quote(distribution, safe='')}/rollback",
        changes,
        {"revision": str(plan.revision)},
        f"/distributions/{quote(distribution, safe='')}",
    )


def rollback(g: GuardedService, distribution: str, form: dict[str, str], reason: str) -> Done:
    number = revision_number(form.get("revision"))
    if number is None:
        raise InvalidInputError("revision: say which revision to roll back to")
    result = g.rollback(distribution, number, reason=reason)
    url = f"/distributions/{quote(distribution, safe='')}"
    return _done(
        f"Rolled {distribution} back to revision {number}",
        result,
        [(f"{distribution} revisions", url), ("History", "/history")],
    )


__all__ = [
    "Confirmation",
    "Done",
    "package_url",
    "promote",
    "promote_preview",
    "remove",
    "remove_preview",
    "rollback",
    "rollback_preview",
    "tag",
    "tag_preview",
]
