"""Import existing package-storage content into a store: folders, zips and git branches.

Sources (each becomes a list of :class:`ImportSource`, one per package version):

* a folder in package-storage layout, ``<name>/<version>/manifest.yml`` (a checkout's
  ``packages/``; a folder holding ``packages/`` is taken as its root);
* a folder of ``<name>-<version>.zip`` files with their ``.sig`` beside them (an export bundle
  ``OUT`` holds them in ``OUT/packages/``); a folder may hold both kinds;
* a package-storage git repository: the ``packages/`` of one branch per stage
  (:func:`plan_git_import`), read with git, no checkout. A version found in two branches (a
  promotion left half done) is imported into the more stable stage only and listed in
  :attr:`ImportReport.duplicates`.

How an import runs (:func:`import_sources`):

1. **Plan** in this process: the stage graph (a frozen stage refuses the whole import) and what
   the target stages already hold (digest, source fingerprint, signed or not).
2. **Prepare** in a process pool (the CPU-heavy part: reading files, validating, building
   deterministic zips, checking or making signatures, writing blobs). A worker first computes a
   cheap *fingerprint* of its source (the zip's sha256; for folders a sha256 over paths and
   contents; for git the version folder's tree id) and, when the stage already holds that
   version with an artifact recorded under the same fingerprint (or, for zips, the same
   digest), answers "skipped" without validating or zipping: that is what makes a second run
   fast. Otherwise it builds the artifact, and a version whose digest turns out identical to
   the stored one is skipped after building. Workers write blobs themselves when the blob store
   is a local folder (atomic, idempotent puts), so artifacts never travel through pipes.
3. **Record** in this process, results taken in source order: prepared versions are written in
   batches (``batch_size``, default 200) through :meth:`StoreService.import_batch
   <package_storage.store.service.StoreService.import_batch>`, one catalog transaction
   per batch: one ``import`` event per package version and one new revision per affected
   distribution per batch (not per package). An interrupted or stopped import keeps the
   batches recorded so far (run it again to resume); blobs that workers wrote for versions
   that were not recorded are unreferenced (``fsck`` lists them as orphans, ``fsck --repair``
   deletes them), as after a crash during publish.

Rules of an import (the explicit, recorded bypass of ``check_publish``): a stage normally filled
only by promotion (staging, production) accepts an import, since that is how existing
package-storage content arrives; a frozen stage never does; a version already present with
other bytes follows the stage's overwrite rule (snapshot: overwritten; staging: only with
``force`` and a reason; production: never), exactly like publish. Every change is recorded as
an ``import`` event (``[production] Import apache-1.2.3``) whose detail says where it came from.

Validation: ``validation="load"`` (default) applies the rules the registry applies when it
serves a package folder (spec §7.4: existing content was accepted under those);
``validation="publish"`` applies the stricter publish-time rules. A package that fails, a
broken zip, a refused signature or a refused overwrite is *rejected*: with
``on_invalid="stop"`` the import stops there (everything before it in source order is
imported, nothing after), with ``"report"`` it carries on and the report lists every rejected
package with its reason.

Signatures: a ``.sig`` beside a zip must pass
:func:`~package_storage.store.keyring.check_imported_signature` (checked against the store's trusted
keys when it has any). An artifact that arrives without a signature is signed with the store's
signing key when it has one (``sign=True``, the default).
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from package_storage.errors import (
    InvalidInputError,
    NotFoundError,
    PackageError,
    PackageStorageError,
    StorageError,
)
from package_storage.packages import safety
from package_storage.packages.artifacts import build_zip
from package_storage.packages.derived import dump_package
from package_storage.packages.model import Package
from package_storage.packages.signing import PublicKey, SecretKey, sign_detached
from package_storage.packages.trees import FolderTree, ZipTree
from package_storage.store.keyring import StoreKeyring, check_imported_signature
from package_storage.store.service import (
    IMPORT_ACTION,
    BatchResult,
    ImportItem,
    StoreService,
    ValidationLevel,
    artifact_summary,
    check_import,
    check_overwrite_rule,
    check_zip,
    validated_package,
)
from package_storage.store.stages import StageGraph
from package_storage.store.storage.base import ArtifactRecord, Catalog, JSONObject
from package_storage.store.storage.localfs import LocalBlobStore
from package_storage.transfer.bundle import BundleCheck, check_bundle
from package_storage.transfer.gitsource import (
    GitPackage,
    GitReader,
    MemoryTree,
    git_tree,
    list_packages,
)
from package_storage.transfer.gitsource import resolve_branch as git_resolve_branch

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "BatchResult",
    "Duplicate",
    "GitImportPlan",
    "ImportItem",
    "ImportOptions",
    "ImportProgress",
    "ImportReport",
    "ImportSource",
    "ImportedVersion",
    "Known",
    "RejectedVersion",
    "SkippedVersion",
    "import_sources",
    "plan_git_import",
    "prepare_source",
    "scan_folder",
]

OnInvalid = Literal["stop", "report"]
SourceType = Literal["folder", "zip", "git"]

DEFAULT_BATCH_SIZE = 200
_IN_PROCESS_BELOW = 8  # fewer sources than this: no process pool (start-up costs more)
_WINDOW_PER_WORKER = 64  # tasks in flight per worker: bounds memory; covers a batch write


# --- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportSource:
    """One package version to import into ``stage`` (picklable: it is a worker's task).

    ``name``/``version`` come from the source's path (``<name>/<version>/`` or
    ``<name>-<version>.zip``); they are a hint for the skip check, the manifest decides.
    """

    stage: str
    kind: SourceType
    location: str
    name: str
    version: str
    path: str | None = None  # folder or zip
    signature_path: str | None = None  # the .sig beside a zip
    git: GitPackage | None = None
    branch: str | None = None
    sha256: str | None = None  # a zip of a verified bundle: the digest it was verified with

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.stage, self.name, self.version)


def _zip_hint(filename: str) -> tuple[str, str]:
    stem = filename[: -len(".zip")]
    name, _, version = stem.partition("-")
    return name, version


def scan_folder(
    source: Path,
    stage: str,
    *,
    keyring: StoreKeyring | None = None,
    checked: BundleCheck | None = None,
) -> list[ImportSource]:
    """The package versions of a folder (see the module docstring), sorted by name, version.

    A version folder without ``manifest.yml`` is listed too (its import is then rejected with
    that reason) so that nothing in the source is silently ignored. Hidden entries (``.git``)
    are. NotFoundError when ``source`` is not a folder or holds no package at all.

    An export bundle is verified first (:func:`~package_storage.transfer.bundle.check_bundle`,
    signatures too when ``keyring`` has trusted keys): BundleError refuses the whole bundle;
    its zips are imported only with the digests they were verified with. ``checked``: the
    bundle already verified by the caller (not verified again). A bundle may hold no package
    (a delta that only removes or yanks): then the list is empty.
    """
    source = Path(source)
    if not source.is_dir():
        raise NotFoundError(f"{source} is not a folder: give a package-storage folder or bundle")
    bundle = checked if checked is not None else check_bundle(source, keyring)
    root = source
    if (source / "packages").is_dir() and not (source / "manifest.yml").is_file():
        root = source / "packages"
    if (root / "manifest.yml").is_file():  # one package folder
        return [
            ImportSource(stage, "folder", str(root), root.parent.name, root.name, path=str(root))
        ]
    found: list[ImportSource] = []
    try:
        top = sorted(os.scandir(root), key=lambda e: os.fsencode(e.name))
    except OSError as exc:
        raise NotFoundError(f"cannot read {root}: {exc.strerror or exc}") from None
    for entry in top:
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.name.endswith(".zip"):
            sig = Path(entry.path + ".sig")
            name, version = _zip_hint(entry.name)
            found.append(
                ImportSource(
                    stage,
                    "zip",
                    entry.path,
                    name,
                    version,
                    path=entry.path,
                    signature_path=str(sig) if sig.is_file() else None,
                )
            )
        elif entry.is_dir():
            if Path(entry.path, "manifest.yml").is_file():  # <name>/ without a version level
                found.append(
                    ImportSource(stage, "folder", entry.path, entry.name, "", path=entry.path)
                )
                continue
            try:
                versions = sorted(os.scandir(entry.path), key=lambda e: os.fsencode(e.name))
            except OSError:
                continue
            for child in versions:
                if child.name.startswith(".") or not child.is_dir():
                    continue
                found.append(
                    ImportSource(
                        stage, "folder", child.path, entry.name, child.name, path=child.path
                    )
                )
    if not found and bundle is None:
        raise NotFoundError(
            f"no packages in {source}: expected <name>/<version>/manifest.yml folders"
            " or <name>-<version>.zip files"
        )
    if bundle is not None:
        found = [dataclasses.replace(s, sha256=bundle.digest_of(s.location)) for s in found]
    return found


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A version found in several branches: imported into ``kept`` only.

    ``dropped`` lists the other stages with whether their copy has the same content (same git
    tree) as the kept one.
    """

    name: str
    version: str
    kept: str
    dropped: tuple[tuple[str, bool], ...]


@dataclass(frozen=True, slots=True)
class GitImportPlan:
    """What :func:`plan_git_import` found: the sources, the duplicates, the branches."""

    repo: str
    sources: tuple[ImportSource, ...]
    duplicates: tuple[Duplicate, ...]
    branches: tuple[tuple[str, str, str], ...]  # (stage, branch, commit) found
    missing: tuple[tuple[str, str], ...]  # (stage, branch) not in the repository


def default_branches(graph: StageGraph) -> list[tuple[str, str]]:
    """(stage, branch) pairs: every stage that is not frozen, read from the branch of the
    same name (``production``, ``staging``, ``snapshot``)."""
    return [(s.name, s.name) for s in graph if not s.policy.frozen]


def plan_git_import(
    repo: Path,
    branches: Sequence[tuple[str, str]],
    graph: StageGraph,
    *,
    subdir: str = "packages",
) -> GitImportPlan:
    """The sources of a git import: ``<subdir>/<name>/<version>/`` of each (stage, branch).

    A version in several branches goes to the most stable of their stages only. Unknown stages
    raise NotFoundError; branches missing from the repository are reported in ``missing``
    (NotFoundError when none of them exists).
    """
    repo = Path(repo)
    if not repo.exists():
        raise NotFoundError(f"git repository {repo} does not exist")
    run_check = git_resolve_branch  # resolves refs; raises NotFoundError without git
    found: list[tuple[str, str, str]] = []
    missing: list[tuple[str, str]] = []
    for stage, branch in branches:
        graph.stage(stage)
        commit = run_check(repo, branch)
        if commit is None:
            missing.append((stage, branch))
        else:
            found.append((stage, branch, commit))
    if not found:
        wanted = ", ".join(b for _, b in branches)
        raise NotFoundError(f"git repository {repo} has none of the branches {wanted}")
    by_key: dict[tuple[str, str], list[tuple[str, str, GitPackage]]] = {}
    for stage, branch, commit in found:
        for pkg in list_packages(repo, commit, subdir):
            by_key.setdefault((pkg.name, pkg.version), []).append((stage, branch, pkg))
    rank = {s.name: s.rank for s in graph}
    sources: list[ImportSource] = []
    duplicates: list[Duplicate] = []
    for (name, version), holders in sorted(by_key.items()):
        holders.sort(key=lambda h: -rank[h[0]])
        stage, branch, pkg = holders[0]
        sources.append(
            ImportSource(stage, "git", pkg.location, name, version, git=pkg, branch=branch)
        )
        if len(holders) > 1:
            duplicates.append(
                Duplicate(
                    name,
                    version,
                    stage,
                    tuple((s, p.tree == pkg.tree) for s, _, p in holders[1:]),
                )
            )
    return GitImportPlan(
        repo=str(repo),
        sources=tuple(sources),
        duplicates=tuple(duplicates),
        branches=tuple(found),
        missing=tuple(missing),
    )


# --- preparing (runs in worker processes) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Known:
    """What the target stage holds for a version: artifact digest, the fingerprint of the
    source it was imported from (None when not imported, or from another kind of source) and
    whether it has a signature."""

    digest: str
    fingerprint: str | None
    signed: bool


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    validation: ValidationLevel = "load"
    blob_root: str | None = None  # workers write blobs here (local blob store)
    keyring: StoreKeyring | None = None
    sign: bool = False  # sign artifacts that arrive without a signature
    # The stage graph and overwrite options: a worker refuses an overwrite the transaction
    # would refuse before it writes any blob (no orphan blobs for refused versions).
    graph: StageGraph | None = None
    force: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated artifact, ready to be recorded: ``item`` for
    :meth:`StoreService.import_batch` (its blobs already written when its ``data``/``signature``
    are None; the parent fills in its event ``detail``)."""

    source: ImportSource
    item: ImportItem
    fingerprint: str
    files: int


@dataclass(frozen=True, slots=True)
class Skipped:
    source: ImportSource
    digest: str
    files: int


@dataclass(frozen=True, slots=True)
class Rejected:
    source: ImportSource
    reason: str
    code: str
    files: int = 0
    name: str | None = None
    version: str | None = None


Outcome = Prepared | Skipped | Rejected


class _CachedKeyring(StoreKeyring):
    """A keyring that reads its key files once (a worker checks many signatures)."""

    def __init__(self, base: StoreKeyring) -> None:
        super().__init__(base.store_dir, passphrase=base.passphrase())
        self._trusted: list[PublicKey] | None = None
        self._public: tuple[PublicKey | None] | None = None
        self._secret: tuple[SecretKey | None] | None = None

    def trusted_keys(self) -> list[PublicKey]:
        if self._trusted is None:
            self._trusted = super().trusted_keys()
        return list(self._trusted)

    def signing_public_key(self) -> PublicKey | None:
        if self._public is None:
            self._public = (super().signing_public_key(),)
        return self._public[0]

    def signing_key(self) -> SecretKey | None:
        if self._secret is None:
            self._secret = (super().signing_key(),)
        return self._secret[0]


# Per-process state of a worker (also used in-process): blob stores, git readers, keyrings.
_BLOBS: dict[str, LocalBlobStore] = {}
_READERS: dict[str, GitReader] = {}
_KEYRINGS: dict[str, _CachedKeyring] = {}


def _blob_store(root: str) -> LocalBlobStore:
    store = _BLOBS.get(root)
    if store is None:
        store = _BLOBS[root] = LocalBlobStore(root)
    return store


def _git_reader(repo: str) -> GitReader:
    reader = _READERS.get(repo)
    if reader is None:
        reader = _READERS[repo] = GitReader(Path(repo))
    return reader


def _keyring(keyring: StoreKeyring) -> _CachedKeyring:
    key = str(keyring.store_dir)
    cached = _KEYRINGS.get(key)
    if cached is None:
        cached = _KEYRINGS[key] = _CachedKeyring(keyring)
    return cached


def close_worker_state() -> None:
    """Close the git readers and forget cached keys of this process."""
    for reader in _READERS.values():
        reader.close()
    _READERS.clear()
    _BLOBS.clear()
    _KEYRINGS.clear()


def _fingerprint(tree: MemoryTree) -> str:
    """sha256 over the walk: directories by name, files by name, size and contents."""
    h = hashlib.sha256()
    for entry in tree.entries():
        path = entry.path.encode("utf-8", "surrogateescape")
        if entry.is_dir:
            h.update(b"D\0" + path + b"\0")
        else:
            data = tree.read(entry.path)
            h.update(b"F\0" + path + b"\0" + str(len(data)).encode() + b"\0")
            h.update(data)
    return "files-sha256:" + h.hexdigest()


def _folder_tree(path: str) -> MemoryTree:
    """The folder read once into memory (same entries and bytes as a FolderTree)."""
    folder = FolderTree(Path(path))
    files: dict[str, bytes] = {}
    dirs: list[str] = []
    for entry in folder.entries():
        if entry.is_dir:
            dirs.append(entry.path)
            continue
        # The walk has already refused symlinks that leave the package, so the listed path
        # is read directly (FolderTree.read resolves every path again: 3x slower here).
        try:
            with open(os.path.join(path, *entry.path.split("/")), "rb") as fh:
                files[entry.path] = fh.read()
        except OSError as exc:
            raise PackageError(
                f"cannot read {entry.path}: {exc.strerror or exc}", path=path
            ) from None
    return MemoryTree(path, files, dirs)


def _sig_ok(known: Known, signature: bool, config: WorkerConfig) -> bool:
    """Does the stored copy already have every signature this import would bring?"""
    return known.signed or not (signature or config.sign)


def _store_blobs(
    config: WorkerConfig, data: bytes, signature: bytes | None
) -> tuple[str, str | None, bool]:
    """(digest, signature digest, written): blobs written here when the store is local."""
    if config.blob_root is not None:
        blobs = _blob_store(config.blob_root)
        digest = blobs.put(data)
        sig_digest = None if signature is None else blobs.put(signature)
        return digest, sig_digest, True
    digest = hashlib.sha256(data).hexdigest()
    sig_digest = None if signature is None else hashlib.sha256(signature).hexdigest()
    return digest, sig_digest, False


def _finish(
    source: ImportSource,
    pkg: Package,
    data: bytes,
    signature: bytes | None,
    fingerprint: str,
    files: int,
    known: Known | None,
    config: WorkerConfig,
    summary_source: str,
) -> Outcome:
    name, version = pkg.name, str(pkg.version)
    digest = hashlib.sha256(data).hexdigest()
    same_key = (name, version) == (source.name, source.version)
    if (
        known is not None
        and same_key
        and known.digest == digest
        and _sig_ok(known, signature is not None, config)
    ):
        return Skipped(source, digest, files)
    if known is not None and same_key and known.digest != digest and config.graph is not None:
        check_overwrite_rule(
            config.graph, source.stage, name, version, force=config.force, reason=config.reason
        )
    if signature is not None:
        if config.keyring is not None:
            check_imported_signature(
                _keyring(config.keyring), data, signature, label=f"{source.location}.sig"
            )
    elif config.sign and config.keyring is not None:
        key = _keyring(config.keyring).signing_key()
        if key is not None:
            signature = sign_detached(key, data)
    digest, sig_digest, written = _store_blobs(config, data, signature)
    summary = artifact_summary(pkg, summary_source)
    summary["fingerprint"] = fingerprint
    item = ImportItem(
        stage=source.stage,
        name=name,
        version=version,
        digest=digest,
        size=len(data),
        signature_digest=sig_digest,
        summary=summary,
        location=source.location,
        data=None if written else data,
        signature=None if written else signature,
        # read from these very bytes: its derived document is exact (trees: derived later)
        derived=dump_package(pkg) if summary_source == "zip" else None,
    )
    return Prepared(source, item, fingerprint, files)


def _read_file(path: str, what: str, location: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise PackageError(f"cannot read {what}: {exc.strerror or exc}", path=location) from None


def _prepare_zip(source: ImportSource, known: Known | None, config: WorkerConfig) -> Outcome:
    assert source.path is not None
    safety.check_input_file(Path(source.path), source.location)  # the gate: type, size
    data = _read_file(source.path, "zip", source.location)
    signature = None
    if source.signature_path is not None:
        signature = _read_file(source.signature_path, "signature", source.location)
        if not signature.strip():
            raise PackageError("signature file is empty", path=source.signature_path)
    digest = hashlib.sha256(data).hexdigest()
    if source.sha256 is not None and digest != source.sha256:
        raise PackageError("changed since its bundle was verified", path=source.location)
    if (
        known is not None
        and known.digest == digest
        and _sig_ok(known, signature is not None, config)
    ):
        return Skipped(source, digest, 0)
    checked = check_zip(data, source.location)
    tree = ZipTree.from_bytes(data, source.location)
    files = sum(1 for e in tree.entries() if not e.is_dir)
    safety.check_tree_identity(tree, source.location, zip_file=source.path, root_dir=checked.root)
    pkg = validated_package(tree, source.location, version_dir=None, level=config.validation)
    return _finish(source, pkg, data, signature, "sha256:" + digest, files, known, config, "zip")


def _prepare_tree(
    source: ImportSource,
    known: Known | None,
    config: WorkerConfig,
    fingerprint: str,
    load: Callable[[], MemoryTree],
    version_dir: str | None,
    summary_source: str,
) -> Outcome:
    if known is not None and known.fingerprint == fingerprint and _sig_ok(known, False, config):
        return Skipped(source, known.digest, len(source.git.files) if source.git else 0)
    if source.git is not None:  # the entry count, before anything is read from git
        safety.check_tree_limits(source.location, ((f.path, False, 0) for f in source.git.files))
    tree = load()
    safety.check_tree_limits(source.location, ((e.path, e.is_dir, e.size) for e in tree.entries()))
    files = sum(1 for e in tree.entries() if not e.is_dir)
    if tree.stat("manifest.yml") is None:
        raise PackageError(
            "no manifest.yml: a package version folder must hold its manifest",
            path=source.location,
        )
    folder, parent = _folder_names(source)
    safety.check_tree_identity(tree, source.location, folder=folder, parent=parent)
    pkg = validated_package(tree, source.location, version_dir=version_dir, level=config.validation)
    data = build_zip(tree, pkg.name, str(pkg.version))
    safety.check_artifact_size(len(data), source.location)
    return _finish(source, pkg, data, None, fingerprint, files, known, config, summary_source)


def _folder_names(source: ImportSource) -> tuple[str, str]:
    """(version folder, the folder above it) of a folder or git source (identity check)."""
    if source.git is not None:
        return source.git.version, source.git.name
    real = Path(source.path or source.location).resolve()
    return real.name, real.parent.name


def prepare_source(source: ImportSource, known: Known | None, config: WorkerConfig) -> Outcome:
    """Prepare one package version (see the module docstring, step 2). Never raises for a
    bad package: it answers :class:`Rejected` with the reason."""
    files = 0
    try:
        if source.kind == "zip":
            return _prepare_zip(source, known, config)
        if source.kind == "git":
            assert source.git is not None
            git = source.git
            files = len(git.files)
            return _prepare_tree(
                source,
                known,
                config,
                "git-tree:" + git.tree,
                lambda: git_tree(git, _git_reader(git.repo)),
                git.version,
                "git",
            )
        assert source.path is not None
        path = source.path
        safety.check_folder(Path(path), source.location)  # the gate, before any file is read
        tree = _folder_tree(path)
        files = sum(1 for e in tree.entries() if not e.is_dir)
        fingerprint = _fingerprint(tree)
        outcome = _prepare_tree(
            source,
            known,
            config,
            fingerprint,
            lambda: tree,
            source.version or None,
            "folder",
        )
        if isinstance(outcome, Skipped):
            return Skipped(source, outcome.digest, files)
        return outcome
    except StorageError:
        raise  # the store or git failed, not the package: abort the import
    except PackageStorageError as exc:
        return Rejected(source, str(exc), exc.code, files)
    except (OSError, ValueError, UnicodeError, RecursionError) as exc:
        # not expected from a package, but one odd package must not abort a long import
        return Rejected(source, f"cannot read package: {type(exc).__name__}: {exc}", "error", files)


def _worker_init() -> None:
    # Ctrl-C is the parent's business: it cancels what is pending and stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _prepare_task(args: tuple[ImportSource, Known | None, WorkerConfig]) -> Outcome:
    return prepare_source(*args)


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportedVersion:
    stage: str
    name: str
    version: str
    digest: str
    status: str  # imported | overwritten | signature_added
    location: str


@dataclass(frozen=True, slots=True)
class SkippedVersion:
    stage: str
    name: str
    version: str
    digest: str
    location: str


@dataclass(frozen=True, slots=True)
class RejectedVersion:
    stage: str
    location: str
    reason: str
    code: str
    name: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """Progress so far: ``done`` of ``total`` versions prepared (``pending`` of them wait for
    their batch to be recorded), with counts and files read."""

    done: int
    total: int
    imported: int
    skipped: int
    rejected: int
    files: int
    pending: int = 0


ProgressCallback = Callable[[ImportProgress], None]


@dataclass
class ImportReport:
    """What an import did. ``stopped`` when ``on_invalid="stop"`` ended it at a rejection;
    ``not_tried`` counts the versions after that point."""

    total: int = 0
    imported: list[ImportedVersion] = field(default_factory=list)
    skipped: list[SkippedVersion] = field(default_factory=list)
    rejected: list[RejectedVersion] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    # (name, version, stage): a duplicate that the store still holds in a less stable stage
    # (from an earlier import or a publish); the import adds, it never removes
    left_behind: list[tuple[str, str, str]] = field(default_factory=list)
    stopped: bool = False
    not_tried: int = 0
    files: int = 0
    seconds: float = 0.0
    batches: int = 0
    revisions: dict[str, int] = field(default_factory=dict)  # distribution -> newest revision
    run: str = ""
    workers: int = 0

    def progress(self, pending: int = 0) -> ImportProgress:
        return ImportProgress(
            done=len(self.imported) + len(self.skipped) + len(self.rejected) + pending,
            total=self.total,
            imported=len(self.imported),
            skipped=len(self.skipped),
            rejected=len(self.rejected),
            files=self.files,
            pending=pending,
        )

    def by_stage(self) -> dict[str, tuple[int, int, int]]:
        """stage -> (imported, skipped, rejected)."""
        counts: dict[str, list[int]] = {}
        stages: list[tuple[int, str]] = [(0, v.stage) for v in self.imported]
        stages.extend((1, v.stage) for v in self.skipped)
        stages.extend((2, v.stage) for v in self.rejected)
        for i, stage in stages:
            counts.setdefault(stage, [0, 0, 0])[i] += 1
        return {s: (c[0], c[1], c[2]) for s, c in counts.items()}


@dataclass(frozen=True, slots=True)
class ImportOptions:
    on_invalid: OnInvalid = "stop"
    validation: ValidationLevel = "load"
    workers: int | None = None  # None: one per CPU; 0 or 1: in this process
    batch_size: int = DEFAULT_BATCH_SIZE
    force: bool = False
    reason: str = ""
    sign: bool = True
    # the event action (``mirror`` for transfer.mirror) and what every event's detail adds
    action: str = IMPORT_ACTION
    detail: JSONObject = field(default_factory=dict)


def _known(catalog: Catalog, sources: Sequence[ImportSource]) -> dict[tuple[str, str, str], Known]:
    wanted = {s.key for s in sources}
    known: dict[tuple[str, str, str], Known] = {}
    records: dict[str, ArtifactRecord | None] = {}
    for stage in sorted({s.stage for s in sources}):
        for entry in catalog.entries(stage):
            key = (stage, entry.name, entry.version)
            if key not in wanted:
                continue
            if entry.artifact not in records:
                records[entry.artifact] = catalog.get_artifact(entry.artifact)
            record = records[entry.artifact]
            fingerprint = None
            signed = False
            if record is not None:
                value = record.manifest.get("fingerprint")
                fingerprint = value if isinstance(value, str) else None
                signed = bool(record.signature_digest)
            known[key] = Known(entry.artifact, fingerprint, signed)
    return known


def _detail(source: ImportSource, prepared: Prepared, run: str) -> JSONObject:
    detail: JSONObject = {"source": source.kind, "location": source.location, "run": run}
    if source.git is not None:
        detail["repository"] = source.git.repo
        detail["branch"] = source.branch
        detail["commit"] = source.git.commit
        detail["path"] = source.git.path
    detail["fingerprint"] = prepared.fingerprint
    return detail


def _outcomes(
    tasks: Sequence[tuple[ImportSource, Known | None, WorkerConfig]],
    workers: int,
    stop: Callable[[], bool],
) -> Iterator[Outcome]:
    """Outcomes in task order; a bounded window of tasks in flight in a process pool."""
    if workers <= 1:
        try:
            for task in tasks:
                if stop():
                    return
                yield _prepare_task(task)
        finally:
            close_worker_state()
        return
    context = multiprocessing.get_context("spawn")
    window = workers * _WINDOW_PER_WORKER
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_worker_init
    ) as pool:
        pending: deque[Future[Outcome]] = deque()
        it = iter(tasks)
        try:
            for task in it:
                pending.append(pool.submit(_prepare_task, task))
                if len(pending) >= window:
                    break
            while pending:
                outcome = pending.popleft().result()
                yield outcome
                if stop():
                    return
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(_prepare_task, nxt))
        finally:
            for fut in pending:
                fut.cancel()


def import_sources(
    service: StoreService,
    sources: Sequence[ImportSource],
    *,
    options: ImportOptions | None = None,
    keyring: StoreKeyring | None = None,
    progress: ProgressCallback | None = None,
    duplicates: Iterable[Duplicate] = (),
) -> ImportReport:
    """Import ``sources`` into their stages (see the module docstring).

    Raises PolicyError before doing anything when a target stage is frozen, NotFoundError for
    an unknown stage, InvalidInputError for bad options; StorageError aborts (batches recorded
    before stay recorded). Bad packages never raise: they are in ``report.rejected``.
    """
    opts = options or ImportOptions()
    if opts.batch_size < 1:
        raise InvalidInputError(f"batch size {opts.batch_size} must be at least 1")
    if opts.on_invalid not in ("stop", "report"):
        raise InvalidInputError(f"on_invalid {opts.on_invalid!r} is not one of stop, report")
    started = time.perf_counter()
    graph = service.catalog.stages()
    for stage in sorted({s.stage for s in sources}):
        check_import(graph, stage)
    report = ImportReport(total=len(sources), duplicates=list(duplicates), run=uuid.uuid4().hex)
    known = _known(service.catalog, sources)
    blob_root = str(service.blobs.root) if isinstance(service.blobs, LocalBlobStore) else None
    sign = bool(opts.sign and keyring is not None and keyring.has_signing_key())
    config = WorkerConfig(
        validation=opts.validation,
        blob_root=blob_root,
        keyring=keyring,
        sign=sign,
        graph=graph,
        force=opts.force,
        reason=opts.reason,
    )
    workers = opts.workers if opts.workers is not None else (os.cpu_count() or 1)
    if len(sources) < _IN_PROCESS_BELOW:
        workers = min(workers, 1)
    report.workers = max(workers, 1)
    stop_on = opts.on_invalid == "stop"
    state = {"stop": False}
    batch: list[ImportItem] = []
    seen: dict[tuple[str, str, str], str] = {}

    def reject(r: RejectedVersion) -> None:
        report.rejected.append(r)
        if stop_on:
            state["stop"] = True

    def flush() -> None:
        if not batch:
            return
        result = service.import_batch(
            batch,
            force=opts.force,
            reason=opts.reason,
            stop_on_refusal=stop_on,
            action=opts.action,
        )
        report.batches += 1
        for rev in result.revisions:
            report.revisions[rev.distribution] = rev.number
        for res in result.results:
            it = res.item
            if res.status == "unchanged":
                report.skipped.append(
                    SkippedVersion(it.stage, it.name, it.version, it.digest, it.location)
                )
            elif res.status == "refused":
                reject(
                    RejectedVersion(
                        it.stage, it.location, res.reason, "policy", it.name, it.version
                    )
                )
            else:
                report.imported.append(
                    ImportedVersion(
                        it.stage, it.name, it.version, it.digest, res.status, it.location
                    )
                )
        if result.stopped:
            # the items after the refused one were not tried
            report.not_tried += len(batch) - len(result.results)
        batch.clear()

    tasks = [(s, known.get(s.key), config) for s in sources]
    consumed = 0
    for outcome in _outcomes(tasks, workers, lambda: state["stop"]):
        consumed += 1
        report.files += outcome.files
        src = outcome.source
        if isinstance(outcome, Skipped):
            report.skipped.append(
                SkippedVersion(src.stage, src.name, src.version, outcome.digest, src.location)
            )
        elif isinstance(outcome, Rejected):
            if stop_on:
                flush()  # everything before it in source order is recorded first
            reject(
                RejectedVersion(
                    src.stage,
                    src.location,
                    outcome.reason,
                    outcome.code,
                    src.name or None,
                    src.version or None,
                )
            )
        else:
            item = outcome.item
            key = (src.stage, item.name, item.version)
            first = seen.get(key)
            if first is not None:
                if stop_on:
                    flush()
                reject(
                    RejectedVersion(
                        src.stage,
                        src.location,
                        f"{item.name} {item.version} was already imported into"
                        f" {src.stage} from {first} in this run",
                        "conflict",
                        item.name,
                        item.version,
                    )
                )
            else:
                seen[key] = src.location
                detail = {**_detail(src, outcome, report.run), **opts.detail}
                if opts.validation == "none":
                    detail["validation"] = "none"  # recorded: imported without package rules
                batch.append(dataclasses.replace(item, detail=detail))
                if len(batch) >= opts.batch_size:
                    flush()
        if progress is not None:
            progress(report.progress(len(batch)))
        if state["stop"]:
            break
    if not state["stop"]:
        flush()
    report.stopped = state["stop"]
    report.not_tried += len(sources) - consumed
    for dup in report.duplicates:
        for stage, _ in dup.dropped:
            if service.catalog.get_entry(stage, dup.name, dup.version) is not None:
                report.left_behind.append((dup.name, dup.version, stage))
    report.seconds = time.perf_counter() - started
    if progress is not None:
        progress(report.progress())
    return report
