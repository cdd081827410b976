"""What each page shows, gathered from the token's service (no rule here: the service decides
what exists and who may see it; this module groups and orders it for the templates)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from package_storage.errors import InvalidInputError, NotFoundError
from package_storage.packages.categories import CATEGORIES
from package_storage.packages.docs import Change, PackageDocs
from package_storage.packages.versions import sort_key_for
from package_storage.store.access import GuardedService
from package_storage.store.service import PackageLocation, StageDiff, event_title
from package_storage.store.stages import Stage, StageGraph
from package_storage.store.storage.base import (
    ArtifactRecord,
    Event,
    EventFilter,
    Revision,
    RevisionEntry,
    StageEntry,
)
from package_storage.web.cache import Lru
from package_storage.web.readme import readme_html

PAGE_PACKAGES = 100
"""Packages per page of a stage."""
PAGE_EVENTS = 100
"""Events per page of the history."""
PAGE_REVISIONS = 25
"""Revisions per page of a distribution."""
DIFF_ROWS = 200
"""Rows shown per part of a promotion preview (the counts are always complete)."""
DIFF_CHANGELOGS = 50
"""Rows per part of a promotion preview that show their changelog entries."""


class Caches:
    """The immutable values the UI keeps (see ``cache.py``)."""

    def __init__(self) -> None:
        self.entries: Lru[list[RevisionEntry]] = Lru(16)
        self.summaries: Lru[dict[str, Any]] = Lru(200_000)
        self.docs: Lru[PackageDocs] = Lru(2048)
        self.readmes: Lru[str] = Lru(256)
        self.diffs: Lru[StageDiff] = Lru(32)  # keyed by two DIST@N (revisions never change)
        self.stage_rows: Lru[tuple[list[PackageRow], set[str], int]] = Lru(16)
        # keyed by the newest event's id: every change of the catalog records an event
        self.by_change: Lru[Any] = Lru(64)

    def last_change(self, g: GuardedService) -> int:
        """The id of the newest event (0 before any): what the catalog's state is keyed by."""
        newest = g.history(EventFilter(newest_first=True, limit=1))
        return newest[0].id if newest else 0

    def revision_entries(
        self, g: GuardedService, distribution: str, number: int
    ) -> list[RevisionEntry]:
        def make() -> list[RevisionEntry]:
            found = g.list_entries(distribution=distribution, revision=number)
            return [e for e in found if isinstance(e, RevisionEntry)]

        return self.entries.get((distribution, number), make)

    def summary(self, g: GuardedService, digest: str) -> dict[str, Any]:
        """The manifest summary of an artifact (title, categories, release, ...)."""
        return self.summaries.get(digest, lambda: dict(g.artifact(digest).manifest))

    def package_docs(self, g: GuardedService, digest: str) -> PackageDocs:
        return self.docs.get(digest, lambda: g.artifact_docs(digest))

    def readme(self, g: GuardedService, digest: str) -> str | None:
        docs = self.package_docs(g, digest)
        if docs.readme is None:
            return None
        text = docs.readme
        return self.readmes.get(digest, lambda: readme_html(text))


def text_arg(value: str | None, what: str, *, limit: int = 200) -> str:
    """A query or form value, stripped; InvalidInputError when longer than ``limit``."""
    text = (value or "").strip()
    if len(text) > limit:
        raise InvalidInputError(f"{what}: at most {limit} characters")
    return text


def page_arg(value: str | None) -> int:
    """``page=N`` (1 and up)."""
    text = (value or "1").strip()
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise InvalidInputError(f"page {text!r}: a whole number from 1")
    return int(text)


def rules_of(stage: Stage, graph: StageGraph) -> list[str]:
    """The stage's rules in words, for the overview."""
    words = {"always": "always", "force": "only when forced, with a reason", "never": "never"}
    rules = [
        f"overwrite: {words[stage.policy.overwrite]}",
        f"remove: {words[stage.policy.remove]}",
    ]
    if stage.policy.frozen:
        rules.append("frozen: never changes")
    rules.append("accepts publishes" if graph.publishes(stage.name) else "filled by promotion")
    return rules


# --- overview --------------------------------------------------------------------------------


@dataclass
class StageRow:
    stage: Stage
    rules: list[str]
    revision: Revision | None
    last: Event | None
    tags: list[str]
    tag_count: int


def overview(g: GuardedService, caches: Caches) -> dict[str, Any]:
    key = ("overview", caches.last_change(g))
    return dict(caches.by_change.get(key, lambda: _overview(g)))


def _overview(g: GuardedService) -> dict[str, Any]:
    graph = g.stages()
    rows: list[StageRow] = []
    for name in promotion_order(graph):
        stage = graph.stage(name)
        last = g.history(EventFilter(stage=name, newest_first=True, limit=1))
        tags = g.tags(name)
        rows.append(
            StageRow(
                stage,
                rules_of(stage, graph),
                g.current_revision(name),
                last[0] if last else None,
                [t.tag for t in tags[-5:]][::-1],
                len(tags),
            )
        )
    previews = [(s.name, s.promotes_to) for s in (r.stage for r in rows) if s.promotes_to]
    return {"rows": rows, "previews": previews}


def promotion_order(graph: StageGraph) -> list[str]:
    """Stage names least stable first (the order a version travels)."""
    return list(reversed(graph.names))


# --- stage -----------------------------------------------------------------------------------


@dataclass
class PackageRow:
    name: str
    title: str
    description: str
    newest: str
    digest: str
    count: int
    categories: list[str]


def package_rows(
    g: GuardedService, caches: Caches, entries: Sequence[RevisionEntry]
) -> tuple[list[PackageRow], set[str], int]:
    """One row per package of a revision's entries (its newest version), the categories
    they have, the number of entries."""
    grouped: dict[str, list[RevisionEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.name, []).append(entry)
    rows: list[PackageRow] = []
    categories: set[str] = set()
    for pkg in sorted(grouped):
        versions = grouped[pkg]
        newest = max(versions, key=lambda e: sort_key_for(e.version))
        summary = caches.summary(g, newest.artifact)
        cats = [str(c) for c in summary.get("categories") or []]
        categories.update(cats)
        rows.append(
            PackageRow(
                pkg,
                str(summary.get("title") or pkg),
                str(summary.get("description") or ""),
                newest.version,
                newest.artifact,
                len(versions),
                cats,
            )
        )
    return rows, categories, len(entries)


def category_title(cid: str) -> str:
    found = CATEGORIES.get(cid)
    return found.title if found else cid


def stage_page(
    g: GuardedService, caches: Caches, name: str, query: str, category: str, page: int
) -> dict[str, Any]:
    graph = g.stages()
    stage = graph.stage(name)
    revision = g.current_revision(name)
    every, categories, total = (
        caches.stage_rows.get(
            (name, revision.number),
            lambda: package_rows(g, caches, caches.revision_entries(g, name, revision.number)),
        )
        if revision
        else ([], set(), 0)
    )
    needle = query.lower()
    rows = [
        r
        for r in every
        if (not needle or needle in r.name.lower() or needle in r.title.lower())
        and (not category or category in r.categories)
    ]
    start = (page - 1) * PAGE_PACKAGES
    return {
        "stage": stage,
        "rules": rules_of(stage, graph),
        "revision": revision,
        "rows": rows[start : start + PAGE_PACKAGES],
        "matched": len(rows),
        "total": len(every),
        "versions": total,
        "query": query,
        "category": category,
        "categories": sorted((c, category_title(c)) for c in categories),
        "category_title": category_title,
        "page": page,
        "pages": max(1, (len(rows) + PAGE_PACKAGES - 1) // PAGE_PACKAGES),
    }


# --- package ---------------------------------------------------------------------------------


@dataclass
class Cell:
    """One version in one stage: its entry (None: not there) and the buttons it offers."""

    stage: str
    entry: StageEntry | None
    promote_to: str | None = None
    removable: bool = False
    served_by: list[str] = field(default_factory=list)  # distributions serving this copy


@dataclass
class VersionRow:
    location: PackageLocation
    cells: list[Cell]
    served: ArtifactRecord | None
    copies: int  # distinct artifacts of the version (more than one: a clash)

    @property
    def version(self) -> str:
        return self.location.version


def version_rows(graph: StageGraph, locations: Sequence[PackageLocation]) -> list[VersionRow]:
    order = promotion_order(graph)
    rows: list[VersionRow] = []
    for loc in sorted(locations, key=lambda x: sort_key_for(x.version), reverse=True):
        held = {e.stage: e for e in loc.entries}
        served_by: dict[str, list[str]] = {}
        for dist in graph.distributions():
            source = next((s for s in graph.resolution_order(dist) if s in held), None)
            if source is not None:
                served_by.setdefault(source, []).append(dist)
        cells: list[Cell] = []
        for name in order:
            stage = graph.stage(name)
            entry = held.get(name)
            cell = Cell(name, entry, served_by=served_by.get(name, []))
            if entry is not None and not stage.policy.frozen:
                target = stage.promotes_to
                if target is not None and not graph.stage(target).policy.frozen:
                    cell.promote_to = target
                cell.removable = stage.policy.remove != "never"
            cells.append(cell)
        served = loc.artifacts[0] if loc.artifacts else None
        rows.append(VersionRow(loc, cells, served, len(loc.artifacts)))
    return rows


def package_page(
    g: GuardedService, caches: Caches, name: str, version: str | None
) -> dict[str, Any]:
    graph = g.stages()
    locations = g.show(name)  # NotFoundError when the store never saw it
    rows = version_rows(graph, locations)
    live = [r for r in rows if r.location.entries]
    chosen: VersionRow | None = None
    if version:
        chosen = next((r for r in rows if r.version == version), None)
        if chosen is None:
            raise InvalidInputError(
                f"version {version!r}: {name} has no such version (versions:"
                f" {', '.join(r.version for r in rows[:20])})"
            )
    else:
        chosen = live[0] if live else rows[0]
    digest = chosen.location.digest
    docs = caches.package_docs(g, digest) if digest else None
    summary = chosen.served.manifest if chosen.served else {}
    return {
        "name": name,
        "title": str(summary.get("title") or name),
        "description": str(summary.get("description") or ""),
        "order": promotion_order(graph),
        "rows": rows,
        "chosen": chosen,
        "digest": digest,
        "docs": docs,
        "readme": caches.readme(g, digest) if digest else None,
        "events": list(reversed(chosen.location.events)),
        "event_title": event_title,
        "icon": docs is not None and docs.icon is not None,
    }


# --- promotion preview -----------------------------------------------------------------------


def diff_ref(g: GuardedService, text: str) -> str:
    """A page's ``a``/``b`` (``STAGE``: what its distribution serves now, or ``STAGE@REV``: a
    revision number, a tag, ``current``) as the service's ``DIST@N`` of that revision: a
    revision never changes, so the comparison of two numbers can be kept."""
    ref = text.strip()
    if not ref:
        raise InvalidInputError("a and b: name a stage (its distribution) or STAGE@REVISION")
    name, at, rev = ref.partition("@")
    g.stages().stage(name)  # NotFoundError naming the stages
    revision: Revision | None = None
    if at and rev.strip() and rev.strip() != "current":
        revision = g.resolve_revision(name, rev.strip())
    elif at and rev.strip() == "current":
        try:  # a tag named current wins, as in the service
            revision = g.resolve_revision(name, "current")
        except NotFoundError:
            revision = g.current_revision(name)
    elif not at:
        revision = g.current_revision(name)
    if revision is None:
        raise NotFoundError(f"distribution {name} has no revision yet: nothing to compare")
    return f"{name}@{revision.number}"


@dataclass
class DiffRow:
    name: str
    version: str
    a: StageEntry | RevisionEntry | None
    b: StageEntry | RevisionEntry | None
    changes: tuple[Change, ...] | None  # None: not looked up (beyond DIFF_CHANGELOGS)
    promote_from: str | None = None


def diff_page(g: GuardedService, caches: Caches, a: str, b: str) -> dict[str, Any]:
    graph = g.stages()
    ref_a, ref_b = diff_ref(g, a), diff_ref(g, b)
    diff = caches.diffs.get(
        (ref_a, ref_b),
        lambda: g.diff(
            ref_a, ref_b, revision_entries=lambda d, n: caches.revision_entries(g, d, n)
        ),
    )
    target = b.strip() if "@" not in b else None  # promote only into what b serves now

    def changes(entry: StageEntry | RevisionEntry, k: int) -> tuple[Change, ...] | None:
        if k >= DIFF_CHANGELOGS:
            return None
        return caches.package_docs(g, entry.artifact).changes_of(entry.version)

    def source(entry: StageEntry | RevisionEntry) -> str | None:
        if target is None or not isinstance(entry, RevisionEntry):
            return None
        stage = graph.stage(entry.stage)
        return entry.stage if stage.promotes_to == target else None

    only_a = [
        DiffRow(e.name, e.version, e, None, changes(e, k), source(e))
        for k, e in enumerate(diff.only_a[:DIFF_ROWS])
    ]
    only_b = [
        DiffRow(e.name, e.version, None, e, changes(e, k))
        for k, e in enumerate(diff.only_b[:DIFF_ROWS])
    ]
    different = [
        DiffRow(x.name, x.version, x, y, changes(x, k), source(x))
        for k, (x, y) in enumerate(diff.different[:DIFF_ROWS])
    ]
    return {
        "a": a.strip(),
        "b": b.strip(),
        "target": target,
        "parts": [
            ("only_a", f"Only in {a.strip()}", only_a, len(diff.only_a)),
            ("different", "In both, with different bytes", different, len(diff.different)),
            ("only_b", f"Only in {b.strip()}", only_b, len(diff.only_b)),
        ],
        "same": diff.same,
        "limit": DIFF_ROWS,
        "changelogs": DIFF_CHANGELOGS,
        "stages": promotion_order(graph),
    }


def default_preview(graph: StageGraph) -> tuple[str, str] | None:
    """The last step of the promotion path (e.g. staging -> production)."""
    for name in graph.names:
        for stage in graph:
            if stage.promotes_to == name:
                return stage.name, name
    return None


# --- history ---------------------------------------------------------------------------------


def history_page(
    g: GuardedService, stage: str, package: str, actor: str, page: int
) -> dict[str, Any]:
    graph = g.stages()
    query = EventFilter(
        stage=stage or None,
        name=package or None,
        actor=actor or None,
        newest_first=True,
        limit=page * PAGE_EVENTS + 1,
    )
    events = g.history(query)
    start = (page - 1) * PAGE_EVENTS
    shown = events[start : start + PAGE_EVENTS]
    return {
        "events": shown,
        "more": len(events) > start + PAGE_EVENTS,
        "page": page,
        "stage": stage,
        "package": package,
        "actor": actor,
        "stages": promotion_order(graph),
        "event_title": event_title,
    }


def event_page(g: GuardedService, event_id: int) -> dict[str, Any]:
    event, revisions = g.event_revisions(event_id)
    return {"event": event, "revisions": revisions, "title": event_title(event)}


# --- revisions and tags ----------------------------------------------------------------------


def revisions_page(
    g: GuardedService, caches: Caches, distribution: str, page: int
) -> dict[str, Any]:
    key = ("revisions", distribution, page, caches.last_change(g))
    return dict(caches.by_change.get(key, lambda: _revisions_page(g, distribution, page)))


def _revisions_page(g: GuardedService, distribution: str, page: int) -> dict[str, Any]:
    graph = g.stages()
    stage = graph.stage(distribution)
    skip = (page - 1) * PAGE_REVISIONS
    shown = list(reversed(g.revisions(distribution, newest=PAGE_REVISIONS + 1, skip=skip)))
    newest = g.revisions(distribution, newest=1) if page > 1 else shown[:1]
    return {
        "stage": stage,
        "distribution": distribution,
        "revisions": shown[:PAGE_REVISIONS],
        "count": newest[0].number if newest else 0,
        "current": g.current_revision(distribution),
        "tags": list(reversed(g.tags(distribution))),
        "page": page,
        "more": len(shown) > PAGE_REVISIONS,
    }


def revision_page(g: GuardedService, distribution: str, ref: str) -> dict[str, Any]:
    graph = g.stages()
    graph.stage(distribution)
    revision = g.resolve_revision(distribution, ref)
    current = g.current_revision(distribution)
    return {
        "distribution": distribution,
        "revision": revision,
        "current": current,
        "is_current": current is not None and current.number == revision.number,
    }


__all__ = [
    "Caches",
    "default_preview",
    "diff_page",
    "event_page",
    "history_page",
    "overview",
    "package_page",
    "page_arg",
    "promotion_order",
    "revision_page",
    "revisions_page",
    "stage_page",
    "text_arg",
]
