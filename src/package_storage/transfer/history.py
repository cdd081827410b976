"""Whole-repository migration of a package-storage git repository: history, tags, legacy stages.

:func:`import_git_history` imports the branches of a package-storage repository as *states*:
each selected first-parent commit of a branch becomes one revision of its stage's distribution,
oldest first, with exactly the package versions that commit holds in ``packages/`` (versions
added or changed are put, versions gone are removed). With ``history=True`` every first-parent
commit is selected; without it, the commits that a git tag names and the branch tip. Steps of
all branches are recorded in commit-time order, so a layered distribution (``snapshot`` sees
``staging`` and ``production``) gets its revisions in the order the branches changed.

Each step is recorded by :meth:`StoreService.record_history
<package_storage.store.service.StoreService.record_history>`: one ``commit`` event with the
commit's time, author and subject (``[snapshot] Update apache to 0.3.4 (#1234)``), one
``import``/``remove`` event per version, and revisions that record the commit id, so
``DIST@<7-40 hex digits>`` names them (over HTTP and in every command taking a revision).

Legacy branches (:data:`LEGACY_BRANCHES`: ``production-7.9``, ``experimental``) become stages of
their own: seeing no other stage, never overwriting or removing, taking no publish; the import
fills them and then freezes them (a frozen stage is served, never changed; a second import
leaves it alone). Every git tag that points at a first-parent commit of a stage branch becomes
a tag of that distribution (the most stable one when several branches hold the commit) naming
the revision of that commit.

Speed (about 5,400 commits in minutes, see ``bench/README.md``): one ``git log --raw`` per branch
gives every commit's changes (no checkout, no ``ls-tree`` per commit); a package zip is built
once per distinct git tree id of a version folder (a commit that does not touch a version reuses
its artifact), in the importer's process pool; steps are recorded in batches of
``batch_size`` commits, one catalog transaction per batch (each commit its own change sequence
inside it). A rerun skips the commits whose revisions are already recorded.

Folders whose manifest names another package or version than the folder are rejected (a
version folder must hold that version). Invalid packages: with ``on_invalid="stop"`` nothing is
recorded and the report names each refused version and the rule; with ``"report"`` they are
left out of every state. ``validation="none"`` imports historic content that fails today's
rules anyway (only the archive checks apply), and every event records ``validation: none``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from package_storage.errors import NotFoundError, PackageStorageError
from package_storage.store.keyring import StoreKeyring
from package_storage.store.service import HistoryStep, ImportItem, StoreService, check_tag_name
from package_storage.store.stages import StageGraph
from package_storage.store.storage.base import JSONObject
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.transfer.gitsource import (
    GitCommit,
    GitFile,
    GitPackage,
    first_parent_log,
    is_ancestor,
    list_tags,
    resolve_branch,
)
from package_storage.transfer.importer import (
    ImportOptions,
    ImportProgress,
    ImportSource,
    Prepared,
    Rejected,
    RejectedVersion,
    WorkerConfig,
    _outcomes,
)

__all__ = [
    "LEGACY_BRANCHES",
    "BranchResult",
    "HistoryReport",
    "TagResult",
    "git_branches",
    "import_git_history",
    "needs_history_import",
]

LEGACY_BRANCHES: tuple[str, ...] = ("production-7.9", "experimental")
"""Frozen legacy branches of Elastic's package-storage, each imported as a stage of its own."""

_ZERO = "0" * 40
FolderKey = tuple[str, str]


# --- planning ----------------------------------------------------------------------------------


def git_branches(repo: Path, graph: StageGraph) -> list[tuple[str, str]]:
    """The (stage, branch) pairs of a whole-repository import: every stage that is not frozen
    from the branch of its name, plus each legacy branch the repository has (also when the
    store has no such stage yet: the import makes it)."""
    pairs = [(s.name, s.name) for s in graph if not s.policy.frozen]
    names = {stage for stage, _ in pairs}
    for branch in LEGACY_BRANCHES:
        if branch not in names and resolve_branch(repo, branch) is not None:
            pairs.append((branch, branch))
    return pairs


def needs_history_import(repo: Path, pairs: Sequence[tuple[str, str]], graph: StageGraph) -> bool:
    """True when a plain tip import would not do: a legacy branch is imported, or a git tag
    points into one of the branches' history (tags need the state of their commit)."""
    if any(stage in LEGACY_BRANCHES and stage not in graph for stage, _ in pairs):
        return True
    if any(stage in LEGACY_BRANCHES for stage, _ in pairs):
        return True
    tips = [c for _, b in pairs if (c := resolve_branch(repo, b)) is not None]
    return any(is_ancestor(repo, commit, tip) for _, commit in list_tags(repo) for tip in tips)


@dataclass
class _Branch:
    stage: str
    branch: str
    tip: str
    commits: list[GitCommit]
    selected: list[int]
    recorded: set[str]
    # per selected commit index: folder -> tree id (None: gone) changed since the previous one
    changes: dict[int, dict[FolderKey, str | None]] = field(default_factory=dict)
    ids: set[str] | None = None


def _walk(
    branch: _Branch, subdir: str, trees: dict[str, tuple[str, GitPackage]], repo: str
) -> None:
    """Replay the branch's commits: the version folders changed between selected commits,
    and every distinct version tree (with its files) that a selected commit holds."""
    prefix = subdir.strip("/") + "/"
    files: dict[FolderKey, dict[str, GitFile]] = {}
    folders: dict[FolderKey, str] = {}
    pending: dict[FolderKey, str | None] = {}
    wanted = set(branch.selected)
    for index, commit in enumerate(branch.commits):
        touched: set[FolderKey] = set()
        for change in commit.changes:
            if not change.path.startswith(prefix):
                continue
            parts = change.path[len(prefix) :].split("/", 2)
            if len(parts) < 2:
                continue
            key = (parts[0], parts[1])
            if len(parts) == 2:
                if not change.is_tree:
                    continue
                touched.add(key)
                if change.deleted:
                    folders.pop(key, None)
                    files.pop(key, None)
                else:
                    folders[key] = change.new
                continue
            if change.is_tree:
                continue  # sub-folders: implied by their files
            entries = files.setdefault(key, {})
            if change.deleted:
                entries.pop(parts[2], None)
            else:
                entries[parts[2]] = GitFile(parts[2], change.new_mode, change.new)
        for key in touched:
            pending[key] = folders.get(key)
        if index not in wanted:
            continue
        branch.changes[index] = pending
        pending = {}
        if commit.id in branch.recorded:
            continue
        for key, tree in branch.changes[index].items():
            if tree is not None and tree not in trees:
                name, version = key
                trees[tree] = (
                    branch.stage,
                    GitPackage(
                        repo=repo,
                        commit=commit.id,
                        path=f"{prefix}{name}/{version}",
                        name=name,
                        version=version,
                        tree=tree,
                        files=tuple(sorted(files.get(key, {}).values(), key=lambda f: f.path)),
                    ),
                )


# --- the report --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BranchResult:
    stage: str
    branch: str
    tip: str
    commits: int  # first-parent commits of the branch
    selected: int  # of them taken as states (all with history)
    recorded: int  # states recorded by this run
    already: int  # states recorded by an earlier run


@dataclass(frozen=True, slots=True)
class TagResult:
    distribution: str
    tag: str
    commit: str
    revision: int | None
    status: str  # created | exists | refused
    reason: str = ""
    count: int = 0  # versions the tagged revision serves


@dataclass
class HistoryReport:
    """What a history import did (see the module docstring)."""

    repo: str
    history: bool
    validation: str
    branches: list[BranchResult] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    trees: int = 0  # distinct version trees to build
    built: int = 0
    rejected: list[RejectedVersion] = field(default_factory=list)
    steps: int = 0
    batches: int = 0
    events: int = 0
    tags: list[TagResult] = field(default_factory=list)
    added_stages: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    left_frozen: list[str] = field(default_factory=list)  # frozen before: not read again
    revisions: dict[str, int] = field(default_factory=dict)
    stopped: bool = False
    seconds: float = 0.0
    workers: int = 0


ProgressCallback = Callable[[ImportProgress], None]


# --- the import --------------------------------------------------------------------------------


def _config(
    service: StoreService, options: ImportOptions, keyring: StoreKeyring | None
) -> WorkerConfig:
    blob_root = str(service.blobs.root) if isinstance(service.blobs, LocalBlobStore) else None
    sign = bool(options.sign and keyring is not None and keyring.has_signing_key())
    return WorkerConfig(
        validation=options.validation,
        blob_root=blob_root,
        keyring=keyring,
        sign=sign,
        graph=None,
        force=options.force,
        reason=options.reason,
    )


def _add_legacy_stages(
    service: StoreService, pairs: Sequence[tuple[str, str]], repo: Path, report: HistoryReport
) -> list[tuple[str, str]]:
    """Make the legacy stages the import needs; drop the pairs of legacy stages that are
    frozen already (imported before)."""
    kept: list[tuple[str, str]] = []
    for stage, branch in pairs:
        graph = service.catalog.stages()
        if stage not in graph:
            if stage not in LEGACY_BRANCHES:
                graph.stage(stage)  # NotFoundError naming the stages
            legacy = graph.with_legacy_stage(stage).stage(stage)
            service.add_stage(
                legacy,
                reason=f"import-git: legacy branch {branch} of {repo} (frozen once imported)",
            )
            report.added_stages.append(stage)
        elif graph.stage(stage).policy.frozen:
            if stage in LEGACY_BRANCHES:
                report.left_frozen.append(stage)
                continue
            graph.stage(stage)
        kept.append((stage, branch))
    return kept


def import_git_history(
    service: StoreService,
    repo: Path,
    pairs: Sequence[tuple[str, str]],
    *,
    history: bool,
    options: ImportOptions | None = None,
    keyring: StoreKeyring | None = None,
    subdir: str = "packages",
    progress: ProgressCallback | None = None,
) -> HistoryReport:
    """Import the branches ``pairs`` ((stage, branch)) of the git repository ``repo`` as states
    (see the module docstring). NotFoundError when the repository or every branch is missing;
    PolicyError when a target stage is frozen; StorageError when git or the store fails (the
    batches recorded before stay recorded: run it again to resume)."""
    opts = options or ImportOptions()
    started = time.perf_counter()
    repo = Path(repo)
    if not repo.exists():
        raise NotFoundError(f"git repository {repo} does not exist")
    report = HistoryReport(repo=str(repo), history=history, validation=opts.validation)
    found: list[tuple[str, str, str]] = []
    for stage, branch in pairs:
        tip = resolve_branch(repo, branch)
        if tip is None:
            report.missing.append((stage, branch))
        else:
            found.append((stage, branch, tip))
    if not found:
        wanted = ", ".join(b for _, b in pairs)
        raise NotFoundError(f"git repository {repo} has none of the branches {wanted}")
    kept = _add_legacy_stages(service, [(s, b) for s, b, _ in found], repo, report)
    tips = {(s, b): t for s, b, t in found}
    graph = service.catalog.stages()
    rank = {s.name: s.rank for s in graph}

    # 1. the branches' commits, the selected states, the tags
    branches: list[_Branch] = []
    for stage, branch in kept:
        graph.stage(stage)
        commits = first_parent_log(repo, tips[(stage, branch)])
        recorded = {r.commit for r in service.catalog.revisions_by_commit(stage, "") if r.commit}
        branches.append(_Branch(stage, branch, tips[(stage, branch)], commits, [], recorded))
    tag_targets = _tag_targets(repo, branches, rank, report)
    for b in branches:
        tagged = {c for (stage, _tag), c in tag_targets.items() if stage == b.stage}
        b.selected = [
            i
            for i, c in enumerate(b.commits)
            if history or c.id in tagged or i == len(b.commits) - 1
        ]

    # 2. replay, then build every distinct version tree once (process pool)
    trees: dict[str, tuple[str, GitPackage]] = {}
    for b in branches:
        _walk(b, subdir, trees, str(repo))
    report.trees = len(trees)
    config = _config(service, opts, keyring)
    built: dict[str, ImportItem] = {}
    invalid: set[str] = set()
    tasks = [
        (ImportSource(stage, "git", pkg.location, pkg.name, pkg.version, git=pkg), None, config)
        for stage, pkg in trees.values()
    ]
    workers = opts.workers if opts.workers is not None else (os.cpu_count() or 1)
    if len(tasks) < 8:
        workers = min(workers, 1)
    report.workers = max(workers, 1)
    for outcome in _outcomes(tasks, workers, lambda: False):
        src = outcome.source
        assert src.git is not None
        tree = src.git.tree
        if isinstance(outcome, Prepared):
            item = outcome.item
            if (item.name, item.version) != (src.name, src.version):
                invalid.add(tree)
                report.rejected.append(
                    RejectedVersion(
                        src.stage,
                        src.location,
                        f"folder {src.name}/{src.version} holds {item.name} {item.version}:"
                        " a version folder must hold that package version [folder-name]",
                        "invalid",
                        src.name,
                        src.version,
                    )
                )
                continue
            built[tree] = item
            report.built += 1
        elif isinstance(outcome, Rejected):
            invalid.add(tree)
            report.rejected.append(
                RejectedVersion(
                    src.stage, src.location, outcome.reason, outcome.code, src.name, src.version
                )
            )
        if progress is not None:
            progress(
                ImportProgress(
                    done=report.built + len(invalid),
                    total=report.trees,
                    imported=report.built,
                    skipped=0,
                    rejected=len(invalid),
                    files=0,
                )
            )
    if report.rejected and opts.on_invalid == "stop":
        report.stopped = True
        report.branches = [_branch_result(b, 0) for b in branches]
        report.seconds = time.perf_counter() - started
        return report

    # 3. the steps of all branches in commit-time order, recorded in batches
    steps: list[tuple[int, int, int, _Branch, int]] = []
    for order, b in enumerate(branches):
        for index in b.selected:
            steps.append((b.commits[index].time, order, index, b, index))
    steps.sort(key=lambda t: (t[0], t[1], t[2]))
    emitted: dict[str, dict[FolderKey, str]] = {b.stage: {} for b in branches}
    recorded_now: dict[str, int] = {b.stage: 0 for b in branches}
    batch: list[HistoryStep] = []

    def flush() -> None:
        if not batch:
            return
        for revisions in service.record_history(batch):
            for rev in revisions:
                report.revisions[rev.distribution] = rev.number
        report.batches += 1
        report.steps += len(batch)
        batch.clear()

    for _when, _order, _i, b, index in steps:
        commit = b.commits[index]
        state = emitted[b.stage]
        changes = b.changes.get(index, {})
        if commit.id in b.recorded:
            for key, seen in changes.items():
                if seen is None:
                    state.pop(key, None)
                else:
                    state[key] = seen
            continue
        put: list[ImportItem] = []
        remove: list[tuple[str, str]] = []
        detail = _step_detail(repo, b, opts.validation)
        for key, held in sorted(changes.items(), key=lambda kv: kv[0]):
            ready = built.get(held) if held is not None else None
            if held is None or ready is None:
                if key in state:
                    del state[key]
                    remove.append(key)
                continue
            state[key] = held
            put.append(_with_detail(ready, b, trees[held][1], detail, commit))
        batch.append(
            HistoryStep(
                stage=b.stage,
                commit=commit.id,
                time=datetime.fromtimestamp(commit.time, UTC),
                author=commit.author,
                subject=commit.subject,
                put=tuple(put),
                remove=tuple(remove),
                detail=detail,
                reason=opts.reason,
            )
        )
        recorded_now[b.stage] += 1
        if len(batch) >= opts.batch_size:
            flush()
            if progress is not None:
                progress(
                    ImportProgress(
                        done=report.steps,
                        total=len(steps),
                        imported=report.steps,
                        skipped=0,
                        rejected=len(report.rejected),
                        files=0,
                    )
                )
    flush()
    report.branches = [_branch_result(b, recorded_now[b.stage]) for b in branches]

    # 4. tags, then freeze the legacy stages this import filled
    for (stage, tag), at in sorted(tag_targets.items()):
        report.tags.append(_make_tag(service, stage, tag, at))
    for b in branches:
        if b.stage in LEGACY_BRANCHES and not service.catalog.stages().stage(b.stage).policy.frozen:
            service.freeze_stage(
                b.stage,
                reason=f"import-git: legacy branch {b.branch} of {repo} imported as it was",
            )
            report.frozen.append(b.stage)
    report.seconds = time.perf_counter() - started
    return report


def _ids(b: _Branch) -> set[str]:
    if b.ids is None:
        b.ids = {c.id for c in b.commits}
    return b.ids


def _step_detail(repo: Path, b: _Branch, validation: str) -> JSONObject:
    return {"repository": str(repo), "branch": b.branch, "validation": validation}


def _with_detail(
    item: ImportItem, b: _Branch, pkg: GitPackage, detail: JSONObject, commit: GitCommit
) -> ImportItem:
    return dataclasses.replace(
        item,
        stage=b.stage,
        detail={
            "source": "git",
            "location": f"{pkg.repo}@{commit.id[:12]}:{pkg.path}",
            "path": pkg.path,
            "fingerprint": "git-tree:" + pkg.tree,
            **detail,
        },
    )


def _branch_result(b: _Branch, recorded: int) -> BranchResult:
    already = sum(1 for i in b.selected if b.commits[i].id in b.recorded)
    return BranchResult(
        b.stage, b.branch, b.tip, len(b.commits), len(b.selected), recorded, already
    )


def _tag_targets(
    repo: Path, branches: Sequence[_Branch], rank: dict[str, int], report: HistoryReport
) -> dict[tuple[str, str], str]:
    """(stage, tag) -> commit for every git tag at a first-parent commit of a branch (the most
    stable stage when several branches hold it); tags into a branch's history off its
    first-parent line are reported and left out."""
    targets: dict[tuple[str, str], str] = {}
    for tag, commit in list_tags(repo):
        holders = [b for b in branches if commit in _ids(b)]
        if not holders:
            off = [b for b in branches if is_ancestor(repo, commit, b.tip)]
            if off:
                report.tags.append(
                    TagResult(
                        off[0].stage,
                        tag,
                        commit,
                        None,
                        "refused",
                        f"commit {commit[:12]} is not on the first-parent line of"
                        f" {off[0].branch}: it has no state of its own",
                    )
                )
            continue
        holder = max(holders, key=lambda b: rank.get(b.stage, 0))
        try:
            check_tag_name(tag)
        except PackageStorageError as exc:
            report.tags.append(TagResult(holder.stage, tag, commit, None, "refused", str(exc)))
            continue
        targets[(holder.stage, tag)] = commit
    return targets


def _make_tag(service: StoreService, stage: str, tag: str, commit: str) -> TagResult:
    found = service.catalog.revisions_by_commit(stage, commit)
    if not found:
        return TagResult(stage, tag, commit, None, "refused", "no revision of that commit")
    number = found[-1].number
    count = found[-1].count
    try:
        existing = service.catalog.tag(stage, tag)
    except NotFoundError:
        existing = None
    if existing is not None:
        if existing.revision == number:
            return TagResult(stage, tag, commit, number, "exists", count=count)
        return TagResult(
            stage,
            tag,
            commit,
            existing.revision,
            "refused",
            f"{stage}@{tag} already names revision {existing.revision} (tags never move)",
        )
    try:
        service.tag(stage, tag, revision=number)
    except PackageStorageError as exc:
        return TagResult(stage, tag, commit, None, "refused", str(exc))
    return TagResult(stage, tag, commit, number, "created", count=count)
