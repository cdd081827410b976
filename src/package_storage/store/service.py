"""The service layer: the only home of the store's business rules.

Every operation runs in one catalog transaction (see ``storage/base.py``): a failure leaves
nothing half-done. Blobs are written before the transaction that references them (a crash in
between leaves an unreferenced blob, which ``fsck`` reports as an orphan and ``fsck --repair``
deletes); inside the transaction, under the store-wide write lock, the service makes sure the
blob is still there (``fsck --repair`` deletes orphans under the same lock), so a committed
entry never points at a missing blob.

Operations and their rules (design §1, stage policies in ``stages.py``):

* **publish** a package folder (validated, built into a deterministic zip) or a zip (validated,
  stored byte for byte, with ``<zip>.sig`` when present) into a publish stage (default: the
  first one, ``snapshot``). The same bytes again are a no-op; other bytes for an existing version
  follow the stage's ``overwrite`` rule (``force`` needs ``force`` *and* a reason).
* **promote** moves a version one step up the promotion path in one transaction (put into the
  target, delete from the source). The target's ``overwrite`` rule applies when it already holds
  other bytes (production: never). When it holds the same bytes the promotion only removes the
  version from the source (and is recorded as a promotion).
* **remove** follows the stage's ``remove`` rule (production: never).
* **import** (:meth:`StoreService.import_batch`) records versions prepared elsewhere (by
  ``importer.py``: existing package-storage content) in one transaction per batch, one
  ``import`` event each: the recorded bypass of ``check_publish`` (a stage filled by promotion
  accepts an import; a frozen stage never does). Other bytes for an existing version follow
  the same ``overwrite`` rule as publish.
* Every change makes a new revision of every distribution that sees a changed stage (the
  cascade); old revisions stay servable by number.
* **tag** names a revision permanently; tags never move.
* **rollback** points a distribution back at an old revision *and* restores its own stage's
  entries to what that revision served from that stage (versions added since are removed,
  versions removed or overwritten since are put back), so later changes build on the
  rolled-back state. Versions that the old revision served from a more stable stage are left
  alone. Without loss: a version taken out that arrived by promotion goes back to the stage it
  was promoted from (found through its ``promote`` event); a later rollback forward takes it
  back from there. One event per version moved (``rollback_remove``, ``rollback_return``,
  ``rollback_restore``, ``rollback_take``), all with the rollback's reason; a rollback that
  would drop the only copy of a promoted version (its source stage holds other bytes, or is
  frozen) is refused. :meth:`StoreService.rollback_plan` lists the moves without changing
  anything. No new revision is made for the distribution itself (its pointer moves to the
  old number); the other distributions that see a changed stage get new revisions. The
  release manager's undo: it bypasses the remove/overwrite rules, but never touches a frozen
  stage.

Test hook: ``PACKAGE_STORAGE_CRASH_AT=<point>`` kills the process (SIGKILL) at a named point
(see :data:`CRASH_POINTS`), so tests can check that a crash anywhere leaves the store consistent.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from package_storage.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PackageError,
    PackageStorageError,
    PolicyError,
    SignatureError,
    StorageError,
    UnsafePackageError,
    ValidationError,
)
from package_storage.packages import safety
from package_storage.packages.artifacts import build_zip
from package_storage.packages.derived import dump_package
from package_storage.packages.doccache import DocCache
from package_storage.packages.docs import PackageDocs, read_docs
from package_storage.packages.manifest import read_package
from package_storage.packages.model import Package, PackageTree
from package_storage.packages.safety import (
    CheckedZip,
    check_folder,
    check_input_file,
    check_tree_identity,
)
from package_storage.packages.trees import FolderTree, ZipTree
from package_storage.packages.validation import Problem, validate, validate_for_publish
from package_storage.packages.versions import sort_key_for
from package_storage.store.keyring import (
    StoreKeyring,
    check_imported_signature,
    sign_artifact,
    verify_artifact,
)
from package_storage.store.stages import Stage, StageGraph
from package_storage.store.storage.base import (
    ArtifactRecord,
    BlobStore,
    Catalog,
    CatalogReader,
    Event,
    EventFilter,
    JSONObject,
    Revision,
    RevisionEntry,
    StageEntry,
    Tag,
    TokenRecord,
    Transaction,
    check_digest,
    format_time,
)
from package_storage.store.tokens import (
    WILDCARD,
    check_token_name,
    check_usable,
    new_secret,
    parse_scopes,
    secret_matches,
    split_secret,
)

CRASH_ENV = "PACKAGE_STORAGE_CRASH_AT"
CRASH_POINTS: tuple[str, ...] = (
    "publish:after-blob-put",
    "publish:before-commit",
    "publish:after-commit",
    "promote:before-commit",
    "promote:after-commit",
    "remove:before-commit",
    "rollback:before-commit",
)

_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")

_STAGE_ACTIONS = ("stage_add", "stage_freeze", "stage_unfreeze")

IMPORT_ACTION = "import"
"""The event action of an imported version (``[production] Import apache-1.2.3``)."""

MIRROR_ACTION = "mirror"
"""The event action of a version mirrored from an upstream registry (an import whose event
names the upstream: ``[production] Mirror apache-1.2.3 from https://epr.elastic.co``)."""

ValidationLevel = Literal["none", "load", "publish"]
"""``load``: the rules the registry applies when it serves a package folder (spec §7.4);
``publish``: the stricter publish-time rules; ``none``: no package rule at all (historic content
imported as it was; only reading the manifest and the archive checks apply), recorded in the
import's events."""


def crash_point(point: str) -> None:
    """Test hook: SIGKILL this process when ``PACKAGE_STORAGE_CRASH_AT`` names ``point``."""
    if os.environ.get(CRASH_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(137)  # pragma: no cover (where SIGKILL is not delivered at once)


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """What one operation did: ``changed`` is False for a no-op (identical bytes again)."""

    changed: bool
    event: Event | None
    revisions: tuple[Revision, ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class PackageLocation:
    """Where one version lives: which stages hold it (most stable first), with which artifact.

    ``artifact_size`` and ``signed`` describe the artifact served on a clash (the most stable
    stage's copy); ``artifacts`` holds the record of every distinct artifact of the version and
    ``events`` its recorded history (oldest first). A version removed from every stage has no
    entries but keeps its events.
    """

    name: str
    version: str
    entries: tuple[StageEntry, ...]
    artifact_size: int
    signed: bool
    artifacts: tuple[ArtifactRecord, ...] = ()
    events: tuple[Event, ...] = ()

    @property
    def digest(self) -> str | None:
        """The served artifact's digest (the most stable stage's copy), None when in no stage."""
        return self.entries[0].artifact if self.entries else None


@dataclass(frozen=True, slots=True)
class StageDiff:
    """Versions only in A, only in B, and in both with different artifacts."""

    stage_a: str
    stage_b: str
    only_a: tuple[StageEntry | RevisionEntry, ...]
    only_b: tuple[StageEntry | RevisionEntry, ...]
    different: tuple[tuple[StageEntry | RevisionEntry, StageEntry | RevisionEntry], ...]

    @property
    def same(self) -> bool:
        return not (self.only_a or self.only_b or self.different)


@dataclass(frozen=True, slots=True)
class FsckReport:
    missing: tuple[str, ...] = ()  # referenced by the catalog, absent from the blob store
    corrupt: tuple[str, ...] = ()  # present but bytes do not hash to the digest
    orphaned: tuple[str, ...] = ()  # in the blob store, referenced by nothing
    catalog_problems: tuple[str, ...] = ()
    repaired: tuple[str, ...] = field(default=())
    temp_files: tuple[str, ...] = ()  # leftovers of interrupted blob writes (local store)
    checked: int = 0  # referenced blobs checked

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.catalog_problems)


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The signature of one stage's copy: ``ok``, ``failed`` (does not verify), ``missing``
    (not signed) or ``bad`` (the .sig does not parse)."""

    stage: str
    state: Literal["ok", "failed", "missing", "bad"]
    reason: str

    @property
    def ok(self) -> bool:
        return self.state == "ok"


class PublishValidationError(ValidationError):
    """A package that breaks publish rules; ``problems`` lists every one (``file: msg [rule]``)."""

    def __init__(self, location: str, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            text = str(self.problems[0])
        else:
            text = f"{len(self.problems)} problems:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(text, path=location, rule=self.problems[0].rule if problems else "")


@dataclass(frozen=True, slots=True)
class PreparedPackage:
    """A validated package zip ready to be stored."""

    name: str
    version: str
    data: bytes
    signature: bytes | None
    summary: JSONObject
    location: str
    derived: bytes | None = None  # the derived document (packages/derived.py), when known


@dataclass(frozen=True, slots=True)
class ImportItem:
    """One prepared version for :meth:`StoreService.import_batch`: its blobs are already in the
    blob store (or ``data``/``signature`` hold them, to be written before the transaction)."""

    stage: str
    name: str
    version: str
    digest: str
    size: int
    signature_digest: str | None
    summary: JSONObject
    location: str
    detail: JSONObject = field(default_factory=dict)  # source description for the event
    data: bytes | None = None
    signature: bytes | None = None
    derived: bytes | None = None  # the derived document (packages/derived.py), when known


@dataclass(frozen=True, slots=True)
class HistoryStep:
    """The state change of one git commit in one stage (:meth:`StoreService.record_history`):
    the versions it adds or changes (``put``, blobs already written or carried) and removes,
    with the commit's id, time, author and subject; ``detail`` goes into every event."""

    stage: str
    commit: str
    time: datetime
    author: str
    subject: str
    put: tuple[ImportItem, ...] = ()
    remove: tuple[tuple[str, str], ...] = ()
    detail: JSONObject = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ItemResult:
    item: ImportItem
    status: Literal["imported", "overwritten", "signature_added", "unchanged", "refused"]
    reason: str = ""
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: tuple[ItemResult, ...]
    revisions: tuple[Revision, ...]
    stopped: bool = False  # a refusal stopped the batch (stop_on_refusal)


@dataclass(frozen=True, slots=True)
class _Change:
    """What putting an artifact into a stage changes (see :meth:`StoreService._plan_put`)."""

    previous: str | None  # the other artifact an overwrite replaces
    forced: bool  # the overwrite needed force (and a reason)
    signature_added: bool  # same bytes, now with a signature

    @property
    def overwrite(self) -> bool:
        return self.previous is not None


# --- the service -----------------------------------------------------------------------------


class StoreService:
    """publish / promote / remove / tag / rollback / history over a catalog and a blob store."""

    def __init__(
        self,
        catalog: Catalog,
        blobs: BlobStore,
        *,
        actor: str,
        keyring: StoreKeyring | None = None,
        derived: DocCache | None = None,
    ) -> None:
        if not actor or not actor.strip():
            raise InvalidInputError("actor must not be empty")
        self.catalog = catalog
        self.blobs = blobs
        self.actor = actor
        self.keyring = keyring
        self.derived = derived

    # --- publish ---------------------------------------------------------------------------

    def publish(
        self, path: Path, *, stage: str | None = None, force: bool = False, reason: str = ""
    ) -> ChangeResult:
        """Publish the package folder or zip at ``path`` (see the module docstring).

        Raises NotFoundError (no such path), PackageError (unreadable package or broken zip),
        PublishValidationError (every broken rule), PolicyError (a stage rule refuses).
        """
        artifact = self.prepare(path)
        return self._store(artifact, stage=stage, force=force, reason=reason)

    def publish_bytes(
        self,
        data: bytes,
        *,
        location: str = "<upload>",
        signature: bytes | None = None,
        stage: str | None = None,
        force: bool = False,
        reason: str = "",
    ) -> ChangeResult:
        """Publish a package zip held in memory (stored byte for byte); ``location`` names it
        in messages; ``signature`` is its detached ``.sig``, if any."""
        artifact = self.prepare_zip(data, location=location, signature=signature)
        return self._store(artifact, stage=stage, force=force, reason=reason)

    def prepare(self, path: Path) -> PreparedPackage:
        """Read and validate the package at ``path`` without storing anything."""
        path = Path(path)
        if path.is_dir():
            return self.prepare_folder(path)
        if os.path.lexists(path):
            check_input_file(path, str(path))  # the gate: FIFOs, devices, sockets, size
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise PackageError(f"cannot read: {exc.strerror}", path=str(path)) from None
            signature: bytes | None = None
            sig_path = path.with_name(path.name + ".sig")
            if sig_path.is_file():
                try:
                    signature = sig_path.read_bytes()
                except OSError as exc:
                    raise PackageError(
                        f"cannot read signature: {exc.strerror}", path=str(sig_path)
                    ) from None
            return self.prepare_zip(
                data, location=str(path), signature=signature, zip_file=path.name
            )
        raise NotFoundError(f"{path} does not exist: give a package folder or a zip")

    def prepare_folder(self, path: Path) -> PreparedPackage:
        return prepare_folder(path)

    def prepare_zip(
        self,
        data: bytes,
        *,
        location: str,
        signature: bytes | None = None,
        zip_file: str | None = None,
    ) -> PreparedPackage:
        """Check (the archive-safety gate), read and validate a zip; ``zip_file`` is its file
        name when it came from a file (``NAME-VERSION.zip`` must name what it holds)."""
        checked = check_zip(data, location)
        tree = ZipTree.from_bytes(data, location)
        check_tree_identity(tree, location, zip_file=zip_file, root_dir=checked.root)
        pkg = validated_package(tree, location, version_dir=None)
        if signature is not None and not signature.strip():
            raise PackageError("signature file is empty", path=f"{location}.sig")
        summary = artifact_summary(pkg, "zip")
        return PreparedPackage(
            pkg.name,
            str(pkg.version),
            bytes(data),
            signature,
            summary,
            location,
            derived=dump_package(pkg),  # read from these very bytes
        )

    def _signed(self, artifact: PreparedPackage) -> PreparedPackage:
        """Apply the store's signature rules before anything is stored.

        A ``.sig`` that came with the package must verify against the trusted keys (when any
        are configured); a package without one is signed with the store's signing key (when
        one is configured). Without a keyring the artifact is stored as it came.
        """
        if self.keyring is None:
            return artifact
        if artifact.signature is not None:
            label = f"{artifact.name}-{artifact.version}"
            check_imported_signature(self.keyring, artifact.data, artifact.signature, label=label)
            return artifact
        signature = sign_artifact(self.keyring, artifact.data)
        if signature is None:
            return artifact
        return dataclasses.replace(artifact, signature=signature)

    def _store_derived(
        self, digest: str, derived: bytes | None, data: bytes | None = None, location: str = ""
    ) -> None:
        """Keep the derived document of artifact ``digest`` (``packages/derived.py``) so that
        a server never parses the zip: ``derived`` when the caller has it, else read from
        ``data`` (the zip) now. Best effort: a server derives a missing one itself."""
        if self.derived is None:
            return
        if derived is None and data is not None:
            try:
                pkg = read_package(ZipTree.from_bytes(data, location or digest), validate=False)
            except PackageStorageError:
                return
            derived = dump_package(pkg)
        if derived is not None:
            self.derived.put(digest, derived)

    def _put_blob(self, data: bytes | None) -> str | None:
        """Write a blob before the transaction that references it (outside the write lock);
        its digest, None without data."""
        return None if data is None else self.blobs.put(data)

    def _ensure_blob(self, digest: str | None, data: bytes | None, failure: str = "") -> None:
        """Under the write lock: make sure blob ``digest`` (None: no blob) is still there.

        ``fsck --repair`` may have deleted it as an orphan between our put and this
        transaction: put ``data`` back before anything references it. StorageError
        (``failure``, or a default message) when that is not possible.
        """
        if digest is None or self.blobs.exists(digest):
            return
        if data is None or self.blobs.put(data) != digest:
            raise StorageError(failure or f"blob store returned another digest for {digest}")

    def _plan_put(
        self,
        tx: Transaction,
        graph: StageGraph,
        stage: str,
        name: str,
        version: str,
        digest: str,
        signature_digest: str | None,
        *,
        force: bool,
        reason: str,
    ) -> _Change | None:
        """What putting artifact ``digest`` as ``name version`` into ``stage`` changes; None when
        nothing (the stage holds these bytes, signed when this copy is). Raises PolicyError
        when the stage's overwrite rule refuses other bytes (see :func:`check_overwrite_rule`)."""
        existing = tx.get_entry(stage, name, version)
        if existing is None:
            return _Change(None, False, False)
        if existing.artifact == digest:
            record = tx.get_artifact(digest)
            if signature_digest is None or (record is not None and record.signature_digest):
                return None
            return _Change(None, False, True)
        forced = check_overwrite_rule(graph, stage, name, version, force=force, reason=reason)
        return _Change(existing.artifact, forced, False)

    def _version_event(
        self,
        tx: Transaction,
        action: str,
        stage: str,
        name: str,
        version: str,
        *,
        reason: str,
        detail: JSONObject,
    ) -> Event:
        """Record ``action`` on ``name version`` in ``stage`` (a blank reason is none)."""
        return tx.record_event(
            action,
            actor=self.actor,
            stage=stage,
            name=name,
            version=version,
            reason=reason.strip() or None,
            detail=detail,
        )

    def _put_artifact(
        self,
        tx: Transaction,
        change: _Change,
        *,
        action: str,
        stage: str,
        name: str,
        version: str,
        digest: str,
        size: int,
        signature_digest: str | None,
        summary: JSONObject,
        reason: str,
        source: JSONObject,
    ) -> Event:
        """Record the artifact, point the stage entry at it and record the ``action`` event;
        ``source`` describes where the artifact came from in the event's detail."""
        tx.add_artifact(
            ArtifactRecord(
                digest=digest,
                size=size,
                name=name,
                version=version,
                signature_digest=signature_digest,
                manifest=summary,
            )
        )
        tx.put_entry(stage, name, version, digest, actor=self.actor)
        detail: JSONObject = {
            "digest": digest,
            "size": size,
            "signature": signature_digest,
            **source,
        }
        if change.overwrite:
            detail["previous"] = change.previous
            detail["forced"] = change.forced
        if change.signature_added:
            detail["signature_added"] = True
        return self._version_event(tx, action, stage, name, version, reason=reason, detail=detail)

    def _store(
        self, artifact: PreparedPackage, *, stage: str | None, force: bool, reason: str
    ) -> ChangeResult:
        name, version = artifact.name, artifact.version
        artifact = self._signed(artifact)
        digest = self.blobs.put(artifact.data)
        sig_digest = self._put_blob(artifact.signature)
        self._store_derived(digest, artifact.derived, artifact.data, artifact.location)
        crash_point("publish:after-blob-put")
        with self.catalog.transaction() as tx:
            graph = tx.stages()
            target = stage or _default_publish_stage(graph)
            graph.check_publish(target)
            self._ensure_blob(digest, artifact.data)
            self._ensure_blob(sig_digest, artifact.signature)
            change = self._plan_put(
                tx, graph, target, name, version, digest, sig_digest, force=force, reason=reason
            )
            if change is None:
                return ChangeResult(
                    changed=False,
                    event=None,
                    message=f"{name} {version} is already in {target} with these bytes"
                    f" (sha256 {digest}): nothing to do",
                )
            event = self._put_artifact(
                tx,
                change,
                action="overwrite" if change.overwrite else "publish",
                stage=target,
                name=name,
                version=version,
                digest=digest,
                size=len(artifact.data),
                signature_digest=sig_digest,
                summary=artifact.summary,
                reason=reason,
                source={"source": artifact.summary.get("source")},
            )
            revisions = _cascade(tx, graph, (target,))
            shadow = [
                e.stage
                for e in tx.find_entries(name, version)
                if e.stage != target
                and e.artifact != digest
                and graph.stage(e.stage).rank > graph.stage(target).rank
            ]
            crash_point("publish:before-commit")
        crash_point("publish:after-commit")
        if change.signature_added:
            message = f"added the signature of {name} {version} in {target}"
        elif change.overwrite:
            message = f"overwrote {name} {version} in {target} (sha256 {digest})"
        else:
            message = f"published {name} {version} to {target} (sha256 {digest})"
        if shadow:
            message += (
                f"; note: {', '.join(shadow)} holds other bytes for this version and wins in"
                f" the {target} distribution"
            )
        return ChangeResult(True, event, revisions, message)

    # --- import ----------------------------------------------------------------------------

    def import_batch(
        self,
        items: Sequence[ImportItem],
        *,
        force: bool = False,
        reason: str = "",
        stop_on_refusal: bool = False,
        action: str = IMPORT_ACTION,
    ) -> BatchResult:
        """Record prepared versions in ONE catalog transaction: the import bypass of publish.

        ``action`` is the event action: ``import``, or ``mirror`` for versions that came from an
        upstream registry (same rules).

        Per item, in order: a frozen stage refuses (:func:`check_import`); the same digest
        already in the stage is ``unchanged`` (or gets its signature added); other bytes follow
        the stage's overwrite rule (``force`` and ``reason`` as for publish) and a refusal marks
        the item ``refused`` (and ends the batch with ``stop_on_refusal``: the items before it
        are kept). Each change is one ``import`` event. ``check_publish`` is *not* applied
        (promotion-only stages accept an import). At the end, one new revision of every
        distribution that sees a changed stage. Blobs are written before the transaction and
        checked under its lock (``fsck --repair`` may have removed an unreferenced blob in
        between); StorageError when one is gone and the item does not carry its bytes.
        """
        if action not in (IMPORT_ACTION, MIRROR_ACTION):
            raise InvalidInputError(f"import action {action!r} is not one of import, mirror")
        for item in items:  # blobs first, outside the lock (like publish)
            self._put_blob(item.data)
            self._put_blob(item.signature)
            if item.derived is not None:
                self._store_derived(item.digest, item.derived)
        results: list[ItemResult] = []
        stopped = False
        with self.catalog.transaction() as tx:
            graph = tx.stages()
            touched: set[str] = set()
            for item in items:
                name, version, stage, digest = item.name, item.version, item.stage, item.digest
                try:
                    check_import(graph, stage)
                    for blob, data in (
                        (digest, item.data),
                        (item.signature_digest, item.signature),
                    ):
                        self._ensure_blob(
                            blob,
                            data,
                            f"blob {blob} of {name} {version} vanished before it was recorded"
                            " (fsck --repair at the same time?): run the import again",
                        )
                    change = self._plan_put(
                        tx,
                        graph,
                        stage,
                        name,
                        version,
                        digest,
                        item.signature_digest,
                        force=force,
                        reason=reason,
                    )
                except PolicyError as exc:
                    results.append(ItemResult(item, "refused", str(exc)))
                    if stop_on_refusal:
                        stopped = True
                        break
                    continue
                if change is None:
                    results.append(ItemResult(item, "unchanged"))
                    continue
                self._put_artifact(
                    tx,
                    change,
                    action=action,
                    stage=stage,
                    name=name,
                    version=version,
                    digest=digest,
                    size=item.size,
                    signature_digest=item.signature_digest,
                    summary=item.summary,
                    reason=reason,
                    source=item.detail,
                )
                touched.add(stage)
                status: Literal["imported", "overwritten", "signature_added"] = (
                    "overwritten"
                    if change.overwrite
                    else "signature_added"
                    if change.signature_added
                    else "imported"
                )
                results.append(ItemResult(item, status, previous=change.previous))
            revisions = _cascade(tx, graph, touched)
        return BatchResult(tuple(results), revisions, stopped)

    # --- history import --------------------------------------------------------------------

    def record_history(self, steps: Sequence[HistoryStep]) -> list[tuple[Revision, ...]]:
        """Record the states of git commits (``import-git --history``) in ONE transaction, one
        change sequence per step, oldest first: per step its versions put (blobs written
        before, as for :meth:`import_batch`) and removed, one ``import``/``remove`` event per
        version and one ``commit`` event, all at the commit's time with its author as the
        actor, and a new revision of every distribution that sees the step's stage, recording
        the commit id (``dist@<commit>``). The stage's rules are not applied: a step is what
        git held (the recorded bypass of import); a frozen stage refuses. Returns the
        revisions of each step."""
        for step in steps:
            for item in step.put:
                self._put_blob(item.data)
                self._put_blob(item.signature)
        made: list[tuple[Revision, ...]] = []
        with self.catalog.transaction() as tx:
            graph = tx.stages()
            for i, step in enumerate(steps):
                if i:
                    tx.advance()
                check_import(graph, step.stage)
                self._record_step(tx, step)
                made.append(
                    tuple(
                        tx.new_revision(d, commit=step.commit)
                        for d in graph.affected_distributions(step.stage)
                    )
                )
        return made

    def _record_step(self, tx: Transaction, step: HistoryStep) -> None:
        stage, actor, when = step.stage, step.author or self.actor, step.time
        reason = step.reason.strip() or None
        base: JSONObject = {"commit": step.commit, "history": True, **step.detail}
        for item in step.put:
            for blob, data in ((item.digest, item.data), (item.signature_digest, item.signature)):
                self._ensure_blob(
                    blob,
                    data,
                    f"blob {blob} of {item.name} {item.version} vanished before it was recorded"
                    " (fsck --repair at the same time?): run the import again",
                )
            tx.add_artifact(
                ArtifactRecord(
                    digest=item.digest,
                    size=item.size,
                    name=item.name,
                    version=item.version,
                    signature_digest=item.signature_digest,
                    manifest=item.summary,
                )
            )
            previous = tx.put_entry(stage, item.name, item.version, item.digest, actor=actor)
            if previous is not None and previous.artifact == item.digest:
                continue
            detail: JSONObject = {"digest": item.digest, "size": item.size, **item.detail, **base}
            if previous is not None:
                detail["previous"] = previous.artifact
            tx.record_event(
                IMPORT_ACTION,
                actor=actor,
                stage=stage,
                name=item.name,
                version=item.version,
                detail=detail,
                time=when,
                reason=reason,
            )
        for name, version in step.remove:
            entry = tx.get_entry(stage, name, version)
            if entry is None:
                continue
            tx.delete_entry(stage, name, version)
            tx.record_event(
                "remove",
                actor=actor,
                stage=stage,
                name=name,
                version=version,
                detail={"digest": entry.artifact, **base},
                time=when,
                reason=reason,
            )
        tx.record_event(
            "commit",
            actor=actor,
            stage=stage,
            detail={
                **base,
                "subject": step.subject,
                "put": len(step.put),
                "removed": len(step.remove),
            },
            time=when,
            reason=reason,
        )

    # --- promote / remove ------------------------------------------------------------------

    def promote(
        self,
        name: str,
        version: str,
        *,
        to: str,
        source: str | None = None,
        force: bool = False,
        reason: str = "",
    ) -> ChangeResult:
        """Move ``name version`` from ``source`` (default: the stage that promotes to ``to``)
        into ``to`` in one transaction. ``force``/``reason`` are for a target whose overwrite
        rule is ``force`` and which holds other bytes."""
        with self.catalog.transaction() as tx:
            graph = tx.stages()
            graph.stage(to)
            src = source if source is not None else _promotion_source(tx, graph, to, name, version)
            graph.check_promote(src, to)
            entry = tx.get_entry(src, name, version)
            held = tx.get_entry(to, name, version)
            if entry is None and held is not None:  # promoted before (a CI re-run)
                return ChangeResult(
                    False,
                    None,
                    (),
                    f"{name} {version} is already in {to} (sha256 {held.artifact}): nothing to do",
                )
            if entry is None:
                raise NotFoundError(_not_in_stage(tx, src, name, version))
            same = held is not None and held.artifact == entry.artifact
            forced = False
            if held is not None and not same:
                forced = check_overwrite_rule(graph, to, name, version, force=force, reason=reason)
            if not same:
                tx.put_entry(to, name, version, entry.artifact, actor=self.actor)
            tx.delete_entry(src, name, version)
            detail: JSONObject = {"from": src, "digest": entry.artifact}
            if held is not None:
                detail["previous"] = held.artifact
                detail["already_present"] = same
            if forced:
                detail["forced"] = True
            event = self._version_event(
                tx, "promote", to, name, version, reason=reason, detail=detail
            )
            revisions = _cascade(tx, graph, (to, src))
            crash_point("promote:before-commit")
        crash_point("promote:after-commit")
        if same:
            message = (
                f"{name} {version} was already in {to} with these bytes: removed it from {src}"
            )
        elif held is not None:
            message = f"promoted {name} {version} from {src} to {to}, replacing other bytes"
        else:
            message = f"promoted {name} {version} from {src} to {to}"
        return ChangeResult(True, event, revisions, message)

    def remove(
        self, name: str, version: str, *, stage: str, force: bool = False, reason: str = ""
    ) -> ChangeResult:
        """Remove ``name version`` from ``stage`` by the stage's remove rule."""
        with self.catalog.transaction() as tx:
            graph = tx.stages()
            graph.check_remove(stage, name, version, force=force, reason=reason)
            entry = tx.get_entry(stage, name, version)
            if entry is None:
                raise NotFoundError(_not_in_stage(tx, stage, name, version))
            tx.delete_entry(stage, name, version)
            detail: JSONObject = {"digest": entry.artifact}
            if force and graph.stage(stage).policy.remove == "force":
                detail["forced"] = True
            event = self._version_event(
                tx, "remove", stage, name, version, reason=reason, detail=detail
            )
            revisions = _cascade(tx, graph, (stage,))
            crash_point("remove:before-commit")
        return ChangeResult(True, event, revisions, f"removed {name} {version} from {stage}")

    # --- yank ------------------------------------------------------------------------------

    def yank(
        self, name: str, version: str, *, stage: str, reason: str, yanked: bool = True
    ) -> ChangeResult:
        """Yank (``yanked=False``: unyank) ``name version`` in ``stage``: for a bad release in a
        stage that never removes. A yanked version stays in the stage and in every revision,
        downloadable and viewable by its exact version, but is left out of /search and
        /categories (and so of a client's latest-version choice). ``reason`` is required;
        a frozen stage refuses. New revisions of every distribution that sees the stage (the
        revision digest covers artifacts, so it does not change)."""
        verb = "yank" if yanked else "unyank"
        _require_reason(reason, f"{verb} {name} {version}")
        with self.catalog.transaction() as tx:
            graph = tx.stages()
            if graph.stage(stage).policy.frozen:
                raise PolicyError(f"stage {stage} is frozen: it never changes: cannot {verb}")
            entry = tx.get_entry(stage, name, version)
            if entry is None:
                raise NotFoundError(_not_in_stage(tx, stage, name, version))
            if entry.yanked == yanked:
                state = "yanked" if yanked else "not yanked"
                return ChangeResult(
                    False, None, (), f"{name} {version} in {stage} is already {state}"
                )
            tx.set_yanked(stage, name, version, yanked)
            event = self._version_event(
                tx, verb, stage, name, version, reason=reason, detail={"digest": entry.artifact}
            )
            revisions = _cascade(tx, graph, (stage,))
        what = (
            "hidden from search and categories, still downloadable by its version"
            if yanked
            else "listed again"
        )
        return ChangeResult(True, event, revisions, f"{verb}ed {name} {version} in {stage}: {what}")

    # --- tags and rollback -----------------------------------------------------------------

    def tag(
        self, distribution: str, tag: str, *, revision: int | None = None, reason: str = ""
    ) -> Tag:
        """Name a revision (default: the current one) permanently. ConflictError when the tag
        exists (tags never move, even to the same revision). ``reason`` (optional) goes into
        the event."""
        check_tag_name(tag)
        with self.catalog.transaction() as tx:
            if tx.stages().stage(distribution).policy.frozen:
                raise PolicyError(f"stage {distribution} is frozen: it cannot be tagged")
            if revision is None:
                current = tx.current_revision(distribution)
                if current is None:
                    raise NotFoundError(
                        f"distribution {distribution} has no revision yet: nothing to tag"
                    )
                number = current.number
            else:
                number = revision
            created = tx.add_tag(distribution, tag, number, actor=self.actor)
            tx.record_event(
                "tag",
                actor=self.actor,
                stage=distribution,
                reason=reason or None,
                detail={"tag": tag, "revision": number},
            )
        return created

    def resolve_revision(self, distribution: str, revision_or_tag: str | int) -> Revision:
        """The revision named by a number or a tag; NotFoundError when there is none."""
        number, _ = _resolve(self.catalog, distribution, revision_or_tag)
        return self.catalog.revision(distribution, number)

    def rollback_plan(self, distribution: str, revision_or_tag: str | int) -> RollbackPlan:
        """What :meth:`rollback` would do, without changing anything (``--dry-run``)."""
        graph = self.catalog.stages()
        return plan_rollback(self.catalog, graph, distribution, revision_or_tag)

    def rollback(
        self, distribution: str, revision_or_tag: str | int, *, reason: str = ""
    ) -> ChangeResult:
        """Point ``distribution`` back at an old revision and restore its stage's entries (see
        the module docstring): a version taken out that arrived by promotion goes back to the
        stage it was promoted from; one event per version moved, plus the rollback's."""
        with self.catalog.transaction() as tx:
            graph = tx.stages()
            plan = plan_rollback(tx, graph, distribution, revision_or_tag)
            number, tag = plan.revision, plan.tag
            if plan.previous == number and not plan.moves:
                return ChangeResult(
                    False,
                    None,
                    (),
                    f"distribution {distribution} is already at revision {number}: nothing to do",
                )
            base: JSONObject = {"revision": number, "tag": tag, "rollback_of": distribution}
            changed_stages: set[str] = set()
            for move in plan.moves:
                self._apply_move(tx, distribution, move, base, reason)
                changed_stages.add(distribution)
                if move.stage is not None and move.action in ("return", "take_back"):
                    changed_stages.add(move.stage)
            removed = [m.as_json() for m in plan.moves if m.action in ("remove", "return")]
            restored = [m.as_json() for m in plan.moves if m.action in ("restore", "take_back")]
            rev = tx.set_current(distribution, number)
            event = tx.record_event(
                "rollback",
                actor=self.actor,
                stage=distribution,
                reason=reason.strip() or None,
                detail={
                    "revision": number,
                    "tag": tag,
                    "previous_revision": plan.previous,
                    "removed": removed,
                    "restored": restored,
                },
            )
            affected: set[str] = set()
            for stage in changed_stages:
                affected.update(graph.affected_distributions(stage))
            affected.discard(distribution)
            others = tuple(tx.new_revision(d) for d in graph.distributions() if d in affected)
            crash_point("rollback:before-commit")
        what = f"revision {number}" + (f" (tag {tag})" if tag else "")
        returned = sum(1 for m in plan.moves if m.action == "return")
        message = (
            f"rolled {distribution} back to {what}: removed {len(removed)}"
            + (f" ({returned} returned to the stage they were promoted from)" if returned else "")
            + f", restored {len(restored)} version(s)"
        )
        return ChangeResult(True, event, (rev, *others), message)

    def _apply_move(
        self,
        tx: Transaction,
        distribution: str,
        move: RollbackMove,
        base: JSONObject,
        reason: str,
    ) -> None:
        """Carry out one planned rollback move and record its per-version event."""
        name, version, digest = move.name, move.version, move.digest
        detail: JSONObject = {**base, "digest": digest}
        if move.action in ("remove", "return"):
            tx.delete_entry(distribution, name, version)
            if move.action == "return" and move.stage is not None:
                tx.put_entry(move.stage, name, version, digest, actor=self.actor)
                detail["returned_to"] = move.stage
                self._version_event(
                    tx,
                    "rollback_return",
                    move.stage,
                    name,
                    version,
                    reason=reason,
                    detail={**base, "digest": digest, "from": distribution},
                )
            elif move.stage is not None:
                detail["kept_in"] = move.stage
            self._version_event(
                tx, "rollback_remove", distribution, name, version, reason=reason, detail=detail
            )
            return
        tx.put_entry(distribution, name, version, digest, actor=self.actor)
        if move.replaced is not None:
            detail["replaced"] = move.replaced
        if move.action == "take_back" and move.stage is not None:
            tx.delete_entry(move.stage, name, version)
            detail["taken_from"] = move.stage
            self._version_event(
                tx,
                "rollback_take",
                move.stage,
                name,
                version,
                reason=reason,
                detail={**base, "digest": digest, "to": distribution},
            )
        self._version_event(
            tx, "rollback_restore", distribution, name, version, reason=reason, detail=detail
        )

    # --- stage configuration ---------------------------------------------------------------

    def configure_stages(self, graph: StageGraph, *, reason: str = "") -> ChangeResult:
        """Replace the whole stage configuration (``init --stages FILE``): only while the store
        holds no package version and no revision (ConflictError otherwise: change a store in
        use with :meth:`add_stage`, :meth:`freeze_stage`). The same configuration again is a
        no-op."""
        with self.catalog.transaction() as tx:
            current = tx.stages()
            if current == graph:
                return ChangeResult(False, None, (), "the store has this stage configuration")
            used = [n for n in current.names if tx.entries(n)] + list(tx.distributions())
            if used:
                raise ConflictError(
                    f"the store already holds packages or revisions ({used[0]}): its stages"
                    " cannot be replaced; use `package-storage stages add|freeze|unfreeze`"
                )
            tx.set_stages(graph)
            event = tx.record_event(
                "stages_configure",
                actor=self.actor,
                reason=reason.strip() or None,
                detail={"stages": graph.as_config(), "previous": current.as_config()},
            )
        return ChangeResult(
            True, event, (), f"configured stages: {', '.join(reversed(graph.names))}"
        )

    def add_stage(self, stage: Stage, *, reason: str) -> ChangeResult:
        """Add a stage to the configuration (recorded with ``reason``, which is required).
        ConflictError when a stage of that name exists; ConfigError when the new graph breaks
        a rule (unknown stages in ``sees``, ranks, a reserved name, ...)."""
        _require_reason(reason, f"adding stage {stage.name}")
        with self.catalog.transaction() as tx:
            graph = tx.stages()
            if stage.name in graph:
                raise ConflictError(f"stage {stage.name} exists already")
            new = graph.with_stage(stage)
            tx.set_stages(new)
            event = tx.record_event(
                "stage_add",
                actor=self.actor,
                stage=stage.name,
                reason=reason.strip(),
                detail={"stage": stage.as_config()},
            )
        return ChangeResult(True, event, (), f"added stage {stage.name}")

    def freeze_stage(self, name: str, *, reason: str, frozen: bool = True) -> ChangeResult:
        """Freeze (``frozen=False``: unfreeze) a stage, recorded with ``reason`` (required).
        A frozen stage is served but refuses every change (publish, import, promotion in or
        out, removal, overwrite, rollback, tag, yank) until it is unfrozen."""
        verb = "freeze" if frozen else "unfreeze"
        _require_reason(reason, f"{verb} stage {name}")
        with self.catalog.transaction() as tx:
            graph = tx.stages()
            if graph.stage(name).policy.frozen == frozen:
                state = "frozen" if frozen else "not frozen"
                return ChangeResult(False, None, (), f"stage {name} is already {state}")
            tx.set_stages(graph.with_frozen(name, frozen))
            event = tx.record_event(
                f"stage_{verb}", actor=self.actor, stage=name, reason=reason.strip()
            )
        state = "now frozen: it is served but never changes" if frozen else "no longer frozen"
        return ChangeResult(True, event, (), f"stage {name} is {state}")

    def stage_events(self, name: str | None = None) -> list[Event]:
        """The events that changed the stage configuration (of one stage, or all)."""
        if name is not None:
            self.catalog.stages().stage(name)
        found = [
            e
            for action in _STAGE_ACTIONS
            for e in self.catalog.events(EventFilter(action=action, stage=name))
        ]
        if name is not None:
            found += [
                e
                for e in self.catalog.events(EventFilter(action="stages_configure"))
                if any(st.get("name") == name for st in e.detail.get("stages", []))
            ]
        return sorted(found, key=lambda e: e.id)

    # --- reads -----------------------------------------------------------------------------

    def stages(self) -> StageGraph:
        return self.catalog.stages()

    def list_entries(
        self,
        *,
        stage: str | None = None,
        distribution: str | None = None,
        revision: str | int | None = None,
    ) -> list[StageEntry] | list[RevisionEntry]:
        """Entries of one stage, what a distribution serves (its current revision, or
        ``revision``: a number or tag), or with neither every stage's entries (most stable
        stage first)."""
        if stage is not None and distribution is not None:
            raise InvalidInputError("list either a stage or a distribution, not both")
        graph = self.catalog.stages()
        if distribution is not None:
            graph.stage(distribution)
            if revision is None:
                current = self.catalog.current_revision(distribution)
                if current is None:
                    return []
                number = current.number
            else:
                number, _ = _resolve(self.catalog, distribution, revision)
            return self.catalog.revision_entries(distribution, number)
        if revision is not None:
            raise InvalidInputError("a revision needs a distribution")
        if stage is not None:
            graph.stage(stage)
            return self.catalog.entries(stage)
        result: list[StageEntry] = []
        for name in graph.names:
            result.extend(self.catalog.entries(name))
        return result

    def show(self, name: str, version: str | None = None) -> list[PackageLocation]:
        """Every version of ``name`` (or just ``version``): where it lives, its artifacts and
        events. NotFoundError when the store never saw it."""
        graph = self.catalog.stages()
        order = {n: i for i, n in enumerate(graph.names)}
        by_version: dict[str, list[StageEntry]] = {}
        for e in self.catalog.find_entries(name, version):
            by_version.setdefault(e.version, []).append(e)
        events = self.catalog.events(EventFilter(name=name, version=version))
        events_by_version: dict[str, list[Event]] = {}
        for ev in events:
            if ev.version is not None:
                events_by_version.setdefault(ev.version, []).append(ev)
        versions = sorted(set(by_version) | set(events_by_version), key=sort_key_for)
        if not versions:
            what = f"{name} {version}" if version else name
            raise NotFoundError(f"package {what} is in no stage and has no history")
        result: list[PackageLocation] = []
        for v in versions:
            entries = sorted(by_version.get(v, []), key=lambda e: order.get(e.stage, len(order)))
            records: list[ArtifactRecord] = []
            for digest in dict.fromkeys(e.artifact for e in entries):
                record = self.catalog.get_artifact(digest)
                if record is not None:
                    records.append(record)
            served = records[0] if records else None
            result.append(
                PackageLocation(
                    name=name,
                    version=v,
                    entries=tuple(entries),
                    artifact_size=served.size if served else 0,
                    signed=bool(served and served.signature_digest),
                    artifacts=tuple(records),
                    events=tuple(events_by_version.get(v, ())),
                )
            )
        return result

    def diff(
        self,
        stage_a: str,
        stage_b: str,
        *,
        revision_entries: Callable[[str, int], Sequence[RevisionEntry]] | None = None,
    ) -> StageDiff:
        """Compare two of: a stage (``NAME``: the versions stored in it), a revision of a
        distribution (``DIST@N``, ``DIST@TAG``, ``DIST@<commit>``) or what a distribution
        serves now (``DIST@current``; a tag named ``current`` wins). ``revision_entries``
        (distribution, number) reads a revision's entries (default: the catalog; a caller
        may pass a cache, a revision never changes)."""
        read = revision_entries or self.catalog.revision_entries
        a = self._diff_side(stage_a, read)
        b = self._diff_side(stage_b, read)
        return StageDiff(
            stage_a=stage_a,
            stage_b=stage_b,
            only_a=tuple(a[k] for k in sorted(a.keys() - b.keys())),
            only_b=tuple(b[k] for k in sorted(b.keys() - a.keys())),
            different=tuple(
                (a[k], b[k]) for k in sorted(a.keys() & b.keys()) if a[k].artifact != b[k].artifact
            ),
        )

    def _diff_side(
        self, ref: str, read: Callable[[str, int], Sequence[RevisionEntry]]
    ) -> dict[tuple[str, str], StageEntry | RevisionEntry]:
        name, at, rev = ref.partition("@")
        self.catalog.stages().stage(name)  # NotFoundError naming the stages
        if not at:
            return {(e.name, e.version): e for e in self.catalog.entries(name)}
        if not rev.strip():
            raise InvalidInputError(f"{ref!r}: say which revision after '@' (N, TAG, current)")
        try:
            number, _ = _resolve(self.catalog, name, rev)
        except NotFoundError:
            current = self.catalog.current_revision(name) if rev == "current" else None
            if current is None:
                raise
            number = current.number
        return {(e.name, e.version): e for e in read(name, number)}

    def history(self, query: EventFilter | None = None) -> list[Event]:
        if query is not None and query.stage is not None:
            self.catalog.stages().stage(query.stage)
        return self.catalog.events(query)

    def revisions(
        self, distribution: str, *, newest: int | None = None, skip: int = 0
    ) -> list[Revision]:
        """Every revision of ``distribution``, oldest first, each with the event that made it
        (the events a transaction records carry its time, as its revisions do). ``newest``:
        only that many of the newest revisions after skipping the ``skip`` newest (a page;
        only its events are read)."""
        self.catalog.stages().stage(distribution)
        revs = self.catalog.revisions(distribution)
        if newest is not None:
            end = max(0, len(revs) - max(0, skip))
            revs = revs[max(0, end - max(0, newest)) : end]
        if not revs:
            return revs
        query = EventFilter(
            since=min(r.created for r in revs),
            until=max(r.created for r in revs) + timedelta(microseconds=1),
        )
        by_time: dict[datetime, list[Event]] = {}
        for event in self.catalog.events(query):
            by_time.setdefault(event.time, []).append(event)
        made: list[Revision] = []
        for rev in revs:
            events = by_time.get(rev.created, [])
            if events:
                more = f" (+{len(events) - 1} more)" if len(events) > 1 else ""
                rev = dataclasses.replace(
                    rev, event=events[0].id, event_title=event_title(events[0]) + more
                )
            made.append(rev)
        return made

    def revision_entries(
        self, distribution: str, revision_or_tag: str | int
    ) -> list[RevisionEntry]:
        number, _ = _resolve(self.catalog, distribution, revision_or_tag)
        return self.catalog.revision_entries(distribution, number)

    def tags(self, distribution: str | None = None) -> list[Tag]:
        if distribution is not None:
            self.catalog.stages().stage(distribution)
        return self.catalog.tags(distribution)

    # --- maintenance -----------------------------------------------------------------------

    def fsck(self, *, repair: bool = False) -> FsckReport:
        """Check the catalog against the blobs: catalog self-check (every revision digest),
        referenced blobs missing or corrupt (bytes do not hash to the digest), orphaned blobs.
        ``repair`` deletes orphans (under the write lock, so no publish in flight loses its
        blob) and old temp files of interrupted writes."""
        problems = tuple(self.catalog.check(deep=True))
        referenced = self.catalog.referenced_blobs()
        missing: list[str] = []
        corrupt: list[str] = []
        for digest in sorted(referenced):
            if not self.blobs.exists(digest):
                missing.append(digest)
            elif not self.blobs.verify(digest):
                corrupt.append(digest)
        repaired: list[str] = []
        if repair:
            with self.catalog.transaction() as tx:
                referenced = tx.referenced_blobs()
                orphaned = sorted(set(self.blobs.iter_digests()) - referenced)
                for digest in orphaned:
                    if self.blobs.delete(digest):
                        repaired.append(digest)
            cleanup = getattr(self.blobs, "cleanup_temp", None)
            if callable(cleanup):
                cleanup()
        else:
            orphaned = sorted(set(self.blobs.iter_digests()) - referenced)
        temp_files = getattr(self.blobs, "temp_files", None)
        temps: tuple[str, ...] = ()
        if callable(temp_files):
            temps = tuple(str(p) for p in temp_files())
        return FsckReport(
            missing=tuple(missing),
            corrupt=tuple(corrupt),
            orphaned=tuple(orphaned),
            catalog_problems=problems,
            repaired=tuple(repaired),
            temp_files=temps,
            checked=len(referenced),
        )

    # --- tokens (management API) and signatures --------------------------------------------

    def create_token(
        self, name: str, scopes: Sequence[str], *, lifetime: timedelta | None = None
    ) -> tuple[TokenRecord, str]:
        """A new token and its secret (shown once; only its hash is stored). Every stage or
        distribution a scope names must exist; ConflictError when an unrevoked token has
        ``name``. Recorded as a ``token_create`` event."""
        check_token_name(name)
        parsed = parse_scopes(scopes)
        fresh = new_secret()
        with self.catalog.transaction() as tx:
            graph = tx.stages()
            for scope in parsed:
                if scope.target not in (None, WILDCARD) and scope.target not in graph:
                    raise InvalidInputError(
                        f"scope {scope}: there is no stage or distribution {scope.target}"
                        f" (stages: {', '.join(graph.names)})"
                    )
            record = tx.add_token(
                TokenRecord(
                    id=fresh.token_id,
                    name=name,
                    secret_hash=fresh.secret_hash,
                    scopes=tuple(str(scope) for scope in parsed),
                    created=tx.time,
                    created_by=self.actor,
                    expires=tx.time + lifetime if lifetime is not None else None,
                )
            )
            tx.record_event(
                "token_create",
                actor=self.actor,
                detail={
                    "token": name,
                    "scopes": list(record.scopes),
                    "expires": format_time(record.expires) if record.expires else None,
                },
            )
        return record, fresh.text

    def current_revision(self, distribution: str) -> Revision | None:
        """The revision ``distribution`` serves now (None before its first)."""
        self.catalog.stages().stage(distribution)
        return self.catalog.current_revision(distribution)

    def tokens(self) -> list[TokenRecord]:
        """Every token (never a secret), revoked ones included."""
        return self.catalog.tokens()

    def revoke_token(self, name: str) -> tuple[TokenRecord, bool]:
        """Revoke the token ``name`` (effective on its next request): (record, changed).
        Revoking a revoked token changes nothing; NotFoundError when no token has the name."""
        with self.catalog.transaction() as tx:
            held = [t for t in tx.tokens() if t.name == name]
            live = [t for t in held if t.revoked is None]
            if not live:
                if held:
                    return held[-1], False
                raise NotFoundError(f"there is no token {name}")
            record = tx.revoke_token(live[0].id, actor=self.actor)
            tx.record_event("token_revoke", actor=self.actor, detail={"token": name})
        return record, True

    def authenticate(self, presented: str, *, now: datetime | None = None) -> TokenRecord:
        """The token whose secret is ``presented``; AuthenticationError when it is unknown,
        expired or revoked (checked on every call: a revocation takes effect at once)."""
        token_id, secret = split_secret(presented)
        record = self.catalog.token(token_id)
        if record is None:
            secret_matches(secret, "0" * 64)  # the same work as for a known id
            raise AuthenticationError("unknown token")
        if not secret_matches(secret, record.secret_hash):
            raise AuthenticationError("unknown token")
        check_usable(record.name, record.expires, record.revoked, now or datetime.now(UTC))
        return record

    def verify(self, name: str, version: str, *, stage: str | None = None) -> list[SignatureCheck]:
        """Check the stored signature of every copy of ``name version`` (or the one in
        ``stage``) against the store's keys. NotFoundError when there is no copy;
        SignatureError when the store has no key to verify with."""
        keyring = self.keyring
        if keyring is None or not keyring.verification_keys():
            raise SignatureError(
                "no keys to verify with: generate or import a signing key, or trust a public key "
                "(package-storage keys import FILE --trusted)"
            )
        if stage is not None:
            self.catalog.stages().stage(stage)  # NotFoundError naming the known stages
            entry = self.catalog.get_entry(stage, name, version)
            entries = [entry] if entry is not None else []
        else:
            entries = self.catalog.find_entries(name, version)
        if not entries:
            where = f" in stage {stage}" if stage else ""
            raise NotFoundError(f"{name} {version} is not in the store{where}")
        checks: list[SignatureCheck] = []
        for entry in entries:
            artifact = self.catalog.get_artifact(entry.artifact)
            if artifact is None or artifact.signature_digest is None:
                checks.append(SignatureCheck(entry.stage, "missing", "the artifact is not signed"))
                continue
            data = self.blobs.get(artifact.digest)
            signature = self.blobs.get(artifact.signature_digest)
            try:
                result = verify_artifact(keyring, data, signature)
            except SignatureError as exc:
                checks.append(SignatureCheck(entry.stage, "bad", exc.message))
                continue
            checks.append(
                SignatureCheck(entry.stage, "ok" if result.ok else "failed", result.reason)
            )
        return checks

    def artifact(self, digest: str) -> ArtifactRecord:
        """The record of the stored artifact ``digest`` (size, signature, manifest summary)."""
        record = self.catalog.get_artifact(check_digest(digest))
        if record is None:
            raise NotFoundError(f"no artifact sha256:{digest} in the store")
        return record

    def event_revisions(self, event_id: int) -> tuple[Event, list[Revision]]:
        """Event ``event_id`` and the revisions its transaction made (the distributions that
        see its stage; a revision and its events carry the transaction's time)."""
        found = self.catalog.events(EventFilter(after_id=event_id - 1, limit=1))
        if not found or found[0].id != event_id:
            raise NotFoundError(f"there is no event {event_id}")
        event = found[0]
        graph = self.catalog.stages()
        if event.stage is None or event.stage not in graph:
            return event, []
        made = [
            rev
            for dist in graph.affected_distributions(event.stage)
            for rev in self.catalog.revisions(dist)
            if rev.created == event.time
        ]
        return event, made

    def artifact_docs(self, digest: str) -> PackageDocs:
        """README, changelog and icon of the stored artifact ``digest`` (one the catalog
        knows; NotFoundError otherwise). Package content: the caller renders it as untrusted."""
        record = self.artifact(digest)
        tree = ZipTree.from_bytes(self.blobs.get(digest), f"{record.name}-{record.version}.zip")
        return read_docs(tree)


# --- helpers ---------------------------------------------------------------------------------


def prepare_folder(path: Path) -> PreparedPackage:
    """The package folder at ``path`` gated, validated and built into its deterministic zip
    (nothing stored): what publish does first, also for a remote store's client."""
    check_folder(path, str(path))  # the gate, before any file is opened
    tree = FolderTree(path)
    real = path.resolve()
    check_tree_identity(tree, str(path), folder=real.name, parent=real.parent.name)
    pkg = validated_package(tree, str(path), version_dir=path.name)
    version = str(pkg.version)
    data = build_zip(tree, pkg.name, version)
    safety.check_artifact_size(len(data), str(path))
    return PreparedPackage(
        pkg.name, version, data, None, artifact_summary(pkg, "folder"), str(path)
    )


def check_tag_name(tag: str) -> str:
    """Return ``tag`` when it is a valid tag name, else raise InvalidInputError.

    1-128 ASCII letters, digits, ``.``, ``_`` or ``-``, not starting with ``.`` or ``-``, not
    only digits (digits name revisions), e.g. the stack version ``8.12.0`` (no ``v``).
    """
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag) or tag.isdigit():
        raise InvalidInputError(
            f"tag {tag!r} is not valid: use 1-128 ASCII letters, digits, '.', '_' or '-' (not"
            " starting with '.' or '-'), not only digits (those name revisions), no '@' or '/'"
        )
    return tag


def _resolve(
    reader: CatalogReader, distribution: str, revision_or_tag: str | int
) -> tuple[int, str | None]:
    """(revision number, tag or None) for a number or a tag of ``distribution``."""
    if isinstance(revision_or_tag, int):
        number, tag = revision_or_tag, None
    else:
        text = revision_or_tag.strip()
        if text.isdigit():
            number, tag = int(text), None
        else:
            try:
                number, tag = reader.tag(distribution, text).revision, text
            except NotFoundError:
                found = commit_revision(reader, distribution, text)
                if found is None:
                    raise
                number, tag = found, None
    reader.revision(distribution, number)  # NotFoundError when absent
    return int(number), tag


COMMIT_RE = re.compile(r"[0-9a-f]{7,40}")
"""A git commit id or an abbreviation of it, as ``dist@<commit>`` names a revision."""


def commit_revision(reader: CatalogReader, distribution: str, ref: str) -> int | None:
    """The revision of ``distribution`` made from the git commit ``ref`` (7-40 lowercase hex
    digits, a prefix of the id), the newest one when several revisions record that commit;
    None when there is none or ``ref`` is no commit id. InvalidInputError when the prefix
    names several commits."""
    if not COMMIT_RE.fullmatch(ref):
        return None
    found = reader.revisions_by_commit(distribution, ref)
    commits = {r.commit for r in found}
    if len(commits) > 1:
        raise InvalidInputError(
            f"{distribution}@{ref} is ambiguous: it abbreviates {len(commits)} commits"
            " (give more hex digits)"
        )
    return found[-1].number if found else None


def validated_package(
    tree: PackageTree, location: str, *, version_dir: str | None, level: ValidationLevel = "publish"
) -> Package:
    """The package in ``tree`` when it passes the ``level`` rules (see :data:`ValidationLevel`).

    Raises PublishValidationError listing every broken rule, PackageError when a listed file
    vanished or cannot be read (``location`` names the package in both).
    """
    try:
        if level == "none":
            return read_package(tree, validate=False, version_dir=None)
        if level == "publish":
            problems = validate_for_publish(tree, version_dir=version_dir)
        else:
            problems = validate(tree, version_dir=version_dir)
        if problems:
            raise PublishValidationError(location, problems)
        return read_package(tree, validate=False, version_dir=version_dir)
    except UnsafePackageError as exc:  # a YAML limit met while validating
        raise exc.within(location) from None
    except NotFoundError as exc:  # a listed file vanished or cannot be read
        raise PackageError(str(exc), path=location) from None


def check_zip(data: bytes, location: str) -> CheckedZip:
    """The archive-safety gate on a package zip (``packages/safety.py``): UnsafePackageError
    naming ``location``, the entry and the rule; reads every member through a bounded buffer
    (sizes, CRC); stores nothing."""
    return safety.check_zip(data, location)


def artifact_summary(pkg: Package, source: str) -> JSONObject:
    """The manifest summary recorded with an artifact (:attr:`ArtifactRecord.manifest`): title,
    description, type, release, format and Kibana versions, categories, and ``source`` (how it
    arrived: ``folder``, ``zip``, ``git``)."""
    doc = pkg.document
    return {
        "title": doc.get("title"),
        "description": doc.get("description"),
        "type": pkg.type,
        "release": pkg.release,
        "format_version": doc.get("format_version"),
        "kibana_version": None if pkg.kibana_version is None else str(pkg.kibana_version),
        "categories": list(pkg.categories),
        "source": source,
    }


def _require_reason(reason: str, what: str) -> None:
    if not reason.strip():
        raise PolicyError(f"{what} needs a reason (--reason TEXT): it is recorded in the history")


def _default_publish_stage(graph: StageGraph) -> str:
    stages = graph.publish_stages()
    if not stages:
        raise PolicyError("no stage accepts a publish (every stage is frozen or promoted into)")
    return stages[0]


def check_overwrite_rule(
    graph: StageGraph, stage: str, name: str, version: str, *, force: bool, reason: str
) -> bool:
    """May ``name version`` in ``stage`` be replaced by other bytes? PolicyError when not.

    :meth:`StageGraph.check_overwrite` plus the reason that a ``force`` rule needs as well
    (publish, promote and import apply the same rule); True when the change is forced.
    """
    graph.check_overwrite(stage, name, version, force=force, reason=reason)
    if graph.stage(stage).policy.overwrite != "force":
        return False
    if not reason.strip():
        raise PolicyError(
            f"stage {stage} overwrites a version only when forced with a reason: {name}"
            f" {version} exists with other bytes: needs --force and --reason"
        )
    return True


def check_import(graph: StageGraph, stage: str) -> None:
    """May versions be imported into ``stage``? Every stage but a frozen one (PolicyError)
    accepts an import, also one filled only by promotion; NotFoundError for an unknown stage."""
    if graph.stage(stage).policy.frozen:
        raise PolicyError(f"stage {stage} is frozen: it cannot be imported into")


def _promotion_source(
    reader: Transaction, graph: StageGraph, to: str, name: str, version: str
) -> str:
    sources = [s.name for s in graph if s.promotes_to == to]
    if not sources:
        raise PolicyError(f"stage {to} is not filled by promotion: no stage promotes to it")
    if len(sources) == 1:
        return sources[0]
    holding = [s for s in sources if reader.get_entry(s, name, version) is not None]
    if len(holding) == 1:
        return holding[0]
    raise PolicyError(
        f"stages {', '.join(sources)} promote to {to}: say which one to promote from (--from STAGE)"
    )


def _not_in_stage(reader: Transaction, stage: str, name: str, version: str) -> str:
    elsewhere = [e.stage for e in reader.find_entries(name, version)]
    where = ", ".join(elsewhere) if elsewhere else "no stage"
    return f"{name} {version} is not in stage {stage} (it is in {where})"


def _cascade(tx: Transaction, graph: StageGraph, stages: Iterable[str]) -> tuple[Revision, ...]:
    """New revisions of every distribution that sees one of ``stages`` (each once, most stable
    first)."""
    affected: set[str] = set()
    for stage in stages:
        affected.update(graph.affected_distributions(stage))
    return tuple(tx.new_revision(d) for d in graph.distributions() if d in affected)


# --- rollback planning -----------------------------------------------------------------------

RollbackAction = Literal["remove", "return", "restore", "take_back"]

_PUT_ACTIONS = frozenset(
    {"publish", "overwrite", "promote", IMPORT_ACTION, MIRROR_ACTION, "rollback_restore"}
)


@dataclass(frozen=True, slots=True)
class RollbackMove:
    """One version a rollback moves.

    ``remove``: taken out of the distribution's stage (``stage``, when set, already holds it
    and keeps its own copy); ``return``: taken out and put back into ``stage``, the stage it
    was promoted from; ``restore``: put back into the distribution's stage (``replaced``: the
    artifact it replaces); ``take_back``: restored from ``stage``, where an earlier rollback
    had returned it.
    """

    action: RollbackAction
    name: str
    version: str
    digest: str
    stage: str | None = None
    replaced: str | None = None

    def as_json(self) -> JSONObject:
        item: JSONObject = {"name": self.name, "version": self.version, "digest": self.digest}
        if self.action == "return":
            item["returned_to"] = self.stage
        elif self.action == "remove" and self.stage is not None:
            item["kept_in"] = self.stage
        elif self.action == "take_back":
            item["taken_from"] = self.stage
        if self.replaced is not None:
            item["replaced"] = self.replaced
        return item


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    """What a rollback of ``distribution`` to ``revision`` does (see :meth:`StoreService.rollback`)."""

    distribution: str
    revision: int
    tag: str | None
    previous: int | None
    moves: tuple[RollbackMove, ...]


def _arrival(reader: CatalogReader, stage: str, name: str, version: str) -> Event | None:
    """The event that put the live ``name version`` into ``stage`` (a rollback's return does
    not count: the version's earlier arrival decides where it goes back to)."""
    for event in reader.events(
        EventFilter(stage=stage, name=name, version=version, newest_first=True)
    ):
        if event.action in _PUT_ACTIONS:
            return event
    return None


def _returned_to(
    reader: CatalogReader, distribution: str, name: str, version: str, digest: str
) -> str | None:
    """The stage an earlier rollback of ``distribution`` returned ``name version`` to, when it
    still holds that artifact there (a later restore then takes it back from there)."""
    for event in reader.events(
        EventFilter(stage=distribution, name=name, version=version, newest_first=True)
    ):
        if event.action == "rollback_remove":
            stage = event.detail.get("returned_to")
            if isinstance(stage, str) and event.detail.get("digest") == digest:
                held = reader.get_entry(stage, name, version)
                if held is not None and held.artifact == digest:
                    return stage
            return None
        if event.action in _PUT_ACTIONS:
            return None
    return None


def plan_rollback(
    reader: CatalogReader, graph: StageGraph, distribution: str, revision_or_tag: str | int
) -> RollbackPlan:
    """The moves of a rollback (pure reads): versions added to the distribution's stage since
    the revision are taken out, those that arrived by promotion go back to the stage they were
    promoted from (unless it holds the version already); versions removed or overwritten
    since are put back. PolicyError when a stage that would change is frozen."""
    stage = graph.stage(distribution)
    if stage.policy.frozen:
        raise PolicyError(f"stage {distribution} is frozen: it is never rolled back")
    number, tag = _resolve(reader, distribution, revision_or_tag)
    previous = reader.distributions().get(distribution)
    target: dict[tuple[str, str], str] = {}
    shadowed: set[tuple[str, str]] = set()
    for e in reader.revision_entries(distribution, number):
        if e.stage == distribution:
            target[(e.name, e.version)] = e.artifact
        else:
            shadowed.add((e.name, e.version))
    current = {(e.name, e.version): e.artifact for e in reader.entries(distribution)}
    moves: list[RollbackMove] = []
    for (name, version), artifact in sorted(current.items()):
        if (name, version) in target or (name, version) in shadowed:
            continue
        arrival = _arrival(reader, distribution, name, version)
        source = arrival.detail.get("from") if arrival is not None else None
        if arrival is None or arrival.action != "promote" or not isinstance(source, str):
            moves.append(RollbackMove("remove", name, version, artifact))
            continue
        if source not in graph:
            moves.append(RollbackMove("remove", name, version, artifact))
            continue
        if graph.stage(source).policy.frozen:
            raise PolicyError(
                f"stage {source} is frozen: the rollback of {distribution} would return"
                f" {name} {version} to it"
            )
        held = reader.get_entry(source, name, version)
        if held is not None and held.artifact != artifact:
            raise PolicyError(
                f"the rollback of {distribution} would lose {name} {version}: {source}, where"
                " it was promoted from, holds other bytes for that version; remove them from"
                f" {source} first"
            )
        if held is not None:
            moves.append(RollbackMove("remove", name, version, artifact, stage=source))
        else:
            moves.append(RollbackMove("return", name, version, artifact, stage=source))
    for (name, version), artifact in sorted(target.items()):
        now = current.get((name, version))
        if now == artifact:
            continue
        back = _returned_to(reader, distribution, name, version, artifact)
        action: RollbackAction = "take_back" if back is not None else "restore"
        moves.append(RollbackMove(action, name, version, artifact, stage=back, replaced=now))
    return RollbackPlan(distribution, number, tag, previous, tuple(moves))


def event_title(event: Event) -> str:
    """``[staging] Promote apache-1.2.3 from snapshot`` and the like."""
    d = event.detail
    prefix = f"[{event.stage}] " if event.stage else ""
    pkg = f"{event.name}-{event.version}" if event.name and event.version else event.name or ""
    forced = " (forced)" if d.get("forced") else ""
    action = event.action
    if action == "publish":
        extra = " (signature added)" if d.get("signature_added") else ""
        return f"{prefix}Publish {pkg}{extra}"
    if action == "overwrite":
        return f"{prefix}Overwrite {pkg}{forced}"
    if action == "promote":
        src = f" from {d['from']}" if d.get("from") else ""
        return f"{prefix}Promote {pkg}{src}{forced}"
    if action == "remove":
        return f"{prefix}Remove {pkg}{forced}"
    if action == MIRROR_ACTION:
        src = f" from {d['upstream']}" if d.get("upstream") else ""
        return f"{prefix}Mirror {pkg}{src}"
    if action in ("yank", "unyank"):
        return f"{prefix}{action.capitalize()} {pkg}"
    if action == "commit":
        return f"{prefix}{d.get('subject', '')}".rstrip()
    if action == "stage_add":
        return f"{prefix}Add stage {event.stage}"
    if action in ("stage_freeze", "stage_unfreeze"):
        return f"{prefix}{action[6:].capitalize()} stage {event.stage}"
    if action == "stages_configure":
        names = ", ".join(str(st.get("name")) for st in d.get("stages", []))
        return f"Configure stages: {names}"
    if action == "tag":
        return f"{prefix}Tag {d.get('tag')} -> revision {d.get('revision')}"
    if action == "rollback":
        tag = f" ({d['tag']})" if d.get("tag") else ""
        return f"{prefix}Rollback to revision {d.get('revision')}{tag}"
    if action in ("token_create", "token_revoke"):
        verb = "Create" if action == "token_create" else "Revoke"
        scopes = f" ({', '.join(d['scopes'])})" if d.get("scopes") else ""
        return f"{verb} token {d.get('token')}{scopes}"
    of = f"the rollback of {d.get('rollback_of')}"
    if action == "rollback_remove":
        where = (
            f": returned to {d['returned_to']}"
            if d.get("returned_to")
            else f": {d['kept_in']} keeps its copy"
            if d.get("kept_in")
            else ""
        )
        return f"{prefix}Rollback takes out {pkg}{where}"
    if action == "rollback_return":
        return f"{prefix}Return {pkg} from {d.get('from')} ({of})"
    if action == "rollback_restore":
        src = f" from {d['taken_from']}" if d.get("taken_from") else ""
        return f"{prefix}Rollback restores {pkg}{src}"
    if action == "rollback_take":
        return f"{prefix}Take back {pkg} to {d.get('to')} ({of})"
    words = action.replace("_", " ").capitalize()
    return f"{prefix}{words} {pkg}".rstrip()


__all__: Sequence[str] = (
    "CRASH_ENV",
    "CRASH_POINTS",
    "IMPORT_ACTION",
    "MIRROR_ACTION",
    "BatchResult",
    "ChangeResult",
    "FsckReport",
    "HistoryStep",
    "ImportItem",
    "ItemResult",
    "PackageLocation",
    "PreparedPackage",
    "PublishValidationError",
    "RollbackMove",
    "RollbackPlan",
    "SignatureCheck",
    "StageDiff",
    "StoreService",
    "ValidationLevel",
    "artifact_summary",
    "check_import",
    "check_overwrite_rule",
    "check_tag_name",
    "check_zip",
    "commit_revision",
    "crash_point",
    "event_title",
    "plan_rollback",
    "prepare_folder",
    "validated_package",
)
