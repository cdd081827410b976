"""Applying a bundle's changes: the base check of a delta bundle, then removes and yanks.

A delta bundle (:mod:`package_storage.transfer.export`, ``--since``) holds only the versions
its base selection did not have. It applies to a stage that holds exactly that base selection:
the content digest of the stage's ``(name, version, artifact)`` entries equals the bundle's
``base.selection_digest`` (a fresh stage after the base's full bundle and every delta before
this one). Otherwise it is refused before anything is imported, with one line naming the
missing base [``bundle-base-missing``]. A stage that already holds the delta's result (the
same delta imported twice) accepts it again and nothing changes.

Order of an import (the CLI drives it): :func:`check_base` (and the remove rule of the stage
for every version the delta removes, so a refused removal changes nothing), the bundle's
packages through the importer, then :func:`apply_changes`: removes, yanks, unyanks, each a
normal recorded service operation whose reason names the bundle. :func:`stage_digest` after it
equals the bundle's ``selection_digest``: the upstream revision digest when nothing was
filtered out at export.
"""

from __future__ import annotations

from dataclasses import dataclass

from package_storage.errors import BundleError
from package_storage.store.service import StoreService
from package_storage.store.storage.base import content_digest
from package_storage.transfer.bundle import BundleCheck

__all__ = ["AppliedChanges", "apply_changes", "check_base", "stage_digest"]


@dataclass(frozen=True, slots=True)
class AppliedChanges:
    """What :func:`apply_changes` changed (versions already in the wanted state not counted)."""

    removed: int
    yanked: int
    unyanked: int
    digest: str  # the stage's content digest afterwards

    def matches(self, bundle: BundleCheck) -> bool:
        """Does the stage now hold exactly the bundle's selection (True when unknown)?"""
        wanted = bundle.changes.selection_digest
        return not wanted or wanted == self.digest


def stage_digest(service: StoreService, stage: str) -> str:
    """The content digest of the entries of ``stage`` (its own, not the stages it sees)."""
    entries = service.catalog.entries(stage)
    return content_digest((e.name, e.version, e.artifact) for e in entries)


def _reason(bundle: BundleCheck) -> str:
    base = bundle.changes.base
    what = f"delta bundle {bundle.root}" if base is not None else f"bundle {bundle.root}"
    return what if base is None else f"{what} on top of {base.label}"


def check_base(service: StoreService, stage: str, bundle: BundleCheck) -> bool:
    """Refuse a delta bundle whose base ``stage`` does not hold (BundleError, one line). True
    when the stage already holds the delta's result (importing it again changes nothing)."""
    base = bundle.changes.base
    if base is None:
        return False
    digest = stage_digest(service, stage)
    if digest == bundle.changes.selection_digest:
        return True
    if digest != base.selection_digest:
        raise BundleError(
            f"{bundle.root}: a delta on top of {base.label}, digest"
            f" {base.revision_digest[:12]}; stage {stage} does not hold that base (import the"
            f" full bundle of {base.distribution}@{base.ref} and the deltas after it first)",
            rule="bundle-base-missing",
        )
    graph = service.catalog.stages()
    for name, version in bundle.changes.removes:
        graph.check_remove(stage, name, version, force=True, reason=_reason(bundle))
    return False


def apply_changes(service: StoreService, stage: str, bundle: BundleCheck) -> AppliedChanges:
    """Remove, yank and unyank what the bundle says, in ``stage`` (after its packages were
    imported). Versions already removed or in the wanted yank state are left alone."""
    changes = bundle.changes
    reason = _reason(bundle)
    held = {(e.name, e.version): e for e in service.catalog.entries(stage)}
    removed = yanked = unyanked = 0
    for name, version in changes.removes:
        if (name, version) in held:
            service.remove(name, version, stage=stage, force=True, reason=reason)
            removed += 1
    for pairs, state in ((changes.yanks, True), (changes.unyanks, False)):
        for name, version in pairs:
            if (name, version) not in held:  # rejected by this import: reported already
                continue
            if service.yank(name, version, stage=stage, reason=reason, yanked=state).changed:
                if state:
                    yanked += 1
                else:
                    unyanked += 1
    return AppliedChanges(removed, yanked, unyanked, stage_digest(service, stage))
