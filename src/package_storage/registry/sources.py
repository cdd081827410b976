"""Package sources on disk: the zip source and the folder source over ``package_paths`` (spec §7).

``load_sources(paths, ...)`` returns ``[zip_packages, folder_packages]``: every path is scanned
by the zip source (every regular ``*.zip`` at any depth that opens as a zip archive) and by the
folder source (``<path>/<name>/<version>/`` with a strict-semver version directory). Paths are
scanned in configuration order; within a source the first ``(name, version)`` wins; deprecation
notices are propagated per source. Any package that fails to load aborts the whole load: every
failing package is collected and reported in one :class:`PackageError`.

Packages are read in parallel by a pool of ``workers`` (threads or processes; the result does not
depend on the pool). :class:`PackagePathsWatcher` polls the paths and rebuilds the sources.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import Literal

from package_storage import __version__
from package_storage.errors import PackageError, PackageStorageError, UnsafePackageError
from package_storage.packages import derived, manifest, pathscan, safety, trees
from package_storage.packages.bulkcache import BulkCache
from package_storage.packages.derived import FORMAT, LazyTree
from package_storage.packages.doccache import DocCache
from package_storage.packages.model import Package, PackageTree, SourceKind

log = logging.getLogger("package_storage.sources")

ExecutorKind = Literal["thread", "process", "serial"]

DEFAULT_EXECUTOR: ExecutorKind = "process"
"""Measured on 2,000 versions (see the project report): process pool beats threads (the YAML
loader holds the GIL), and a serial loop wins below :data:`PARALLEL_MIN_TASKS`."""

PARALLEL_MIN_TASKS = 64
"""Below this many packages a pool costs more than it saves; load in the calling thread."""

SIGNATURE_HINT = (
    "set --require-package-signatures=false (or EPR_REQUIRE_PACKAGE_SIGNATURES=false) "
    "to serve unsigned packages"
)


@dataclass(frozen=True, slots=True)
class LoadTask:
    """One package to read: where it lives and where its signature would be."""

    kind: SourceKind
    location: str  # folder path or zip path
    signature: str | None  # path of the .sig file when it exists
    version_dir: str | None = None  # folder source: the <version> directory name
    stamp: bytes | None = field(default=None, repr=False, compare=False)  # pathscan.scan's


@dataclass(frozen=True, slots=True)
class LoadFailure:
    location: str
    message: str
    rule: str = ""  # the archive-safety rule code when the gate refused the package


# --- discovery ---------------------------------------------------------------------------------


def _task(kind: SourceKind, found: pathscan.Found) -> LoadTask:
    sig = found.path + ".sig" if found.signed else None
    return LoadTask(kind, found.path, sig, found.version_dir, found.stamp)


def discover_zips(paths: Sequence[str]) -> list[LoadTask]:
    """Zip-source tasks: invalid archives are skipped with a warning."""
    return _valid_zips(pathscan.scan(paths, stamps=False).zips, lambda _task: False)


def _valid_zips(
    found: Sequence[pathscan.Found], known: Callable[[LoadTask], bool]
) -> list[LoadTask]:
    """The tasks of the zip files that open as zip archives, or are ``known`` (read before,
    unchanged since: a cached package); the others are skipped with a warning."""
    tasks: list[LoadTask] = []
    for item in found:
        task = _task("zip", item)
        if not known(task) and not zipfile.is_zipfile(item.path):
            log.warning("ignoring invalid zip file", extra={"fields": {"file.path": item.path}})
            continue
        tasks.append(task)
    return tasks


def _folder_tasks(scan: pathscan.Scan) -> list[LoadTask]:
    """Folder-source tasks, after logging the folder layout's warnings."""
    for message, fields in scan.warnings:
        log.warning(message, extra={"fields": fields})
    return [_task("folder", item) for item in scan.folders]


def discover_folders(paths: Sequence[str]) -> list[LoadTask]:
    """Folder-source tasks: ``<path>/<x>/<y>/`` with ``<y>`` strict semver."""
    return _folder_tasks(pathscan.scan(paths, stamps=False))


def _is_bundle(path: str) -> bool:
    """An export bundle's ``packages/`` (or the bundle folder): ``bundle.json`` beside it."""
    folder = os.path.normpath(path)
    candidates = [folder]
    if os.path.basename(folder) == "packages":
        candidates.append(os.path.dirname(folder))
    return any(os.path.isfile(os.path.join(c, "bundle.json")) for c in candidates)


def check_signed(paths: Sequence[str]) -> None:
    """Fail fast, before anything is loaded, when a package of an export bundle among
    ``paths`` has no ``.sig``: PackageError, one line naming the first unsigned package, how
    many there are and the flag that turns the check off. Only file names are looked at.
    Other package paths are left to loading, which lists every unsigned package as the
    reference does."""
    unsigned: list[str] = []
    total = 0
    for base in paths:
        if not os.path.isdir(base) or not _is_bundle(base):
            continue
        found = pathscan.scan([base], stamps=False)
        for item in [*found.zips, *found.folders]:
            total += 1
            if not item.signed:
                unsigned.append(item.path)
    if unsigned:
        raise PackageError(
            f"{unsigned[0]}: no signature file (.sig), and signatures are required"
            f" ({len(unsigned)} of {total} packages are unsigned): {SIGNATURE_HINT}"
        )


# --- content keys ------------------------------------------------------------------------------


def _stamp(task: LoadTask) -> bytes:
    """``task``'s stamp (``packages/pathscan.py``), from the scan or taken now; OSError when
    the package cannot be stamped."""
    if task.stamp is not None:
        return task.stamp
    if task.kind == "zip":
        return pathscan.stamp_file(task.location)
    stamp = pathscan.stamp_folder(task.location)
    if stamp is None:
        raise OSError(f"{task.location}: cannot stat every file")
    return stamp


_KEY_HEAD = f"{__version__}\0{FORMAT}\0{sys.implementation.cache_tag}"


def content_key(task: LoadTask, validate: bool) -> str:
    """The cache key of ``task``'s package as it is now: this program's version, the
    derived-document format, how it is read (validation, signature, location) and the stamp
    of its files (``packages/pathscan.py``: name, type, size, inode, modification and change
    times of every file in it, of the zip file for a zip). Raises OSError when it cannot stat."""
    head = (
        f"{_KEY_HEAD}\0{task.kind}\0{task.location}\0{validate}\0"
        f"{task.signature is not None}\0{task.version_dir}\n"
    )
    h = hashlib.sha256(head.encode("utf-8", "surrogateescape"))
    h.update(_stamp(task))
    return h.hexdigest()


def _key_or_none(task: LoadTask, validate: bool) -> str | None:
    try:
        return content_key(task, validate)
    except OSError:
        return None


def _bulk(cache: DocCache, paths: Sequence[str], validate: bool) -> BulkCache:
    """The file of every document of one load of ``paths`` (one per paths and validation)."""
    name = hashlib.sha256(repr((tuple(paths), validate)).encode("utf-8", "surrogateescape"))
    return BulkCache(Path(cache.root) / f"bulk-v{FORMAT}" / f"{name.hexdigest()[:32]}.docs")


# --- reading -----------------------------------------------------------------------------------


def _open_tree(task: LoadTask) -> trees.FolderTree | trees.ZipTree:
    if task.kind == "zip":
        return trees.ZipTree.open(Path(task.location))
    return trees.FolderTree(Path(task.location))


def _lazy_tree(task: LoadTask) -> PackageTree:
    """The tree of an already read package: a folder's tree is cheap to make, a zip's is
    opened on the first file asked for."""
    if task.kind == "zip":
        return LazyTree("zip", task.location, partial(trees.ZipTree.open, Path(task.location)))
    return trees.FolderTree(Path(task.location))


def _from_document(data: bytes, task: LoadTask) -> Package | None:
    try:
        return derived.load_package(data, _lazy_tree(task))
    except (ValueError, KeyError, TypeError, PackageStorageError):
        return None


Read = tuple[Package | LoadFailure, bytes | None]
"""A package (or why not) and its derived document when it has one."""


def read_task(task: LoadTask, validate: bool, cache: DocCache | None = None) -> Package:
    """Read one package (raises ``PackageError`` naming the location) after the
    archive-safety gate (``packages/safety.py``) and before its identity check.

    With ``cache``, a package whose files did not change since it was last read (see
    :func:`content_key`) comes from its derived document instead, gate and validation
    included (they passed for these very files); a package read now is stored there.
    """
    key = None if cache is None else _key_or_none(task, validate)
    return _read_document(task, validate, cache, key)[0]


def _read_document(
    task: LoadTask, validate: bool, cache: DocCache | None, key: str | None
) -> tuple[Package, bytes | None]:
    """:func:`read_task` with the key already taken (None: not cached)."""
    if cache is not None and key is not None:
        data = cache.get(key)
        if data is not None:
            found = _from_document(data, task)
            if found is not None:
                return found, data
    pkg = _read_now(task, validate)
    data = None
    if cache is not None and key is not None:
        data = derived.dump_package(pkg)
        if data is not None:
            cache.put(key, data)
    return pkg, data


def _read_now(task: LoadTask, validate: bool) -> Package:
    where = Path(task.location)
    tree = _open_tree_safely(task)
    if isinstance(tree, trees.ZipTree):
        safety.check_tree_identity(
            tree, task.location, zip_file=task.location, root_dir=tree.root_dir
        )
    else:
        safety.check_tree_identity(tree, task.location, folder=where.name, parent=where.parent.name)
    return manifest.read_package(
        tree,
        validate=validate,
        version_dir=task.version_dir,
        signature=task.signature is not None,
    )


def _open_tree_safely(task: LoadTask) -> trees.FolderTree | trees.ZipTree:
    """The archive-safety gate (``packages/safety.py``), then the tree."""
    if task.kind == "zip":
        safety.check_zip_file(Path(task.location), task.location)
    else:
        # links leaving the package are absent for the folder tree (as for the reference)
        safety.check_folder(Path(task.location), task.location, links="ignore")
    return _open_tree(task)


def _read_safely(task: LoadTask, validate: bool, cache: DocCache | None, key: str | None) -> Read:
    try:
        return _read_document(task, validate, cache, key)
    except UnsafePackageError as exc:
        message = exc.detail if exc.path == task.location else exc.message
        return LoadFailure(task.location, message, exc.rule), None
    except PackageError as exc:
        message = exc.detail if exc.path == task.location else exc.message
        return LoadFailure(task.location, message), None
    except PackageStorageError as exc:
        return LoadFailure(task.location, exc.message), None
    except (OSError, ValueError, zipfile.BadZipFile, RecursionError) as exc:
        return LoadFailure(task.location, f"{type(exc).__name__}: {exc}"), None


Job = tuple[LoadTask, str | None]  # a package to read and its content key (None: not cached)


def _read_chunk(jobs: Sequence[Job], validate: bool, cache: DocCache | None = None) -> list[Read]:
    return [_read_safely(task, validate, cache, key) for task, key in jobs]


def _read_chunk_detached(
    jobs: Sequence[Job], validate: bool, cache: DocCache | None = None
) -> list[Read]:
    """Process-pool worker: packages travel back without their tree (trees hold locks and
    open files); the parent attaches a tree again (a zip's is opened on first use)."""
    out: list[Read] = []
    for result, data in _read_chunk(jobs, validate, cache):
        if isinstance(result, Package):
            result = replace(result, tree=None)  # type: ignore[arg-type]
        out.append((result, data))
    return out


def _reattach(task: LoadTask, result: Package | LoadFailure) -> Package | LoadFailure:
    if isinstance(result, LoadFailure):
        return result
    try:
        return replace(result, tree=_lazy_tree(task))
    except PackageStorageError as exc:
        return LoadFailure(task.location, exc.message)


def _chunks(jobs: Sequence[Job], n: int) -> Iterator[Sequence[Job]]:
    size = max(1, n)
    for i in range(0, len(jobs), size):
        yield jobs[i : i + size]


def read_all(
    tasks: Sequence[LoadTask],
    *,
    validate: bool,
    workers: int,
    executor: ExecutorKind | None = None,
    cache: DocCache | None = None,
) -> list[Package | LoadFailure]:
    """Read every task, results in task order, with a pool of ``workers`` (``cache``: see
    :func:`read_task`)."""
    jobs = [(t, None if cache is None else _key_or_none(t, validate)) for t in tasks]
    return [r for r, _ in _read_jobs(jobs, validate, workers, executor, cache)]


def _read_jobs(
    jobs: Sequence[Job],
    validate: bool,
    workers: int,
    executor: ExecutorKind | None,
    cache: DocCache | None,
) -> list[Read]:
    kind = executor or DEFAULT_EXECUTOR
    if not jobs or workers <= 1 or kind == "serial" or len(jobs) < PARALLEL_MIN_TASKS:
        return _read_chunk(jobs, validate, cache)
    # a few chunks per worker: balances the load without paying per-package IPC
    chunk = max(1, len(jobs) // (workers * 4))
    pool: Executor
    if kind == "process":
        import multiprocessing

        # fork: the children start with the modules already imported (nothing else runs yet
        # when packages are loaded at startup); fall back to the platform default elsewhere.
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    else:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="package-loader")
    with pool:
        if kind == "process":
            parts = pool.map(
                _read_chunk_detached, _chunks(jobs, chunk), repeat(validate), repeat(cache)
            )
            flat = [result for part in parts for result in part]
            return [(_reattach(job[0], r), data) for job, (r, data) in zip(jobs, flat, strict=True)]
        parts = pool.map(_read_chunk, _chunks(jobs, chunk), repeat(validate), repeat(cache))
        return [result for part in parts for result in part]


def _read_cached(
    tasks: Sequence[LoadTask],
    *,
    validate: bool,
    workers: int,
    executor: ExecutorKind | None,
    cache: DocCache,
    bulk: tuple[BulkCache, dict[str, bytes]],
) -> list[Package | LoadFailure]:
    """Every task in order: the unchanged packages from the bulk file (in this process), the
    others read by the pool (from their own derived documents when there). Then the bulk
    file is rewritten with the documents of this load, when that changes it (``bulk``: the
    file and what it held)."""
    bulk_file, stored = bulk
    results: list[Package | LoadFailure | None] = [None] * len(tasks)
    documents: dict[str, bytes] = {}
    keys = [_key_or_none(task, validate) for task in tasks]
    misses: list[int] = []
    for i, (task, key) in enumerate(zip(tasks, keys, strict=True)):
        data = None if key is None else stored.get(key)
        pkg = None if data is None else _from_document(data, task)
        if pkg is None or key is None or data is None:
            misses.append(i)
            continue
        results[i] = pkg
        documents[key] = data
    jobs = [(tasks[i], keys[i]) for i in misses]
    for i, (result, data) in zip(
        misses, _read_jobs(jobs, validate, workers, executor, cache), strict=True
    ):
        results[i] = result
        key = keys[i]
        if key is not None and data is not None:
            documents[key] = data
    if documents.keys() != stored.keys():
        bulk_file.write(documents)
    return [r for r in results if r is not None]


def _dedupe(packages: Iterable[Package]) -> list[Package]:
    seen: set[tuple[str, str]] = set()
    out: list[Package] = []
    for pkg in packages:
        if pkg.key in seen:
            log.debug(
                "duplicate package ignored",
                extra={"fields": {"package.name": pkg.name, "package.version": str(pkg.version)}},
            )
            continue
        seen.add(pkg.key)
        out.append(pkg)
    return out


def _format_failures(failures: Sequence[LoadFailure], unsigned: Sequence[Package]) -> str:
    lines: list[str] = []
    total = len(failures) + len(unsigned)
    lines.append(f"{total} package{'s' if total != 1 else ''} failed to load:")
    for f in failures:
        lines.append(f"  {f.location}: {f.message}")
    for pkg in unsigned:
        where = pkg.tree.location
        lines.append(
            f"  {where}: package {pkg.name}-{pkg.version} is missing a required signature file"
        )
    if unsigned:
        lines.append(SIGNATURE_HINT)
    return "\n".join(lines)


def _skip_unsafe(
    pairs: list[tuple[LoadTask, Package | LoadFailure]],
) -> list[tuple[LoadTask, Package | LoadFailure]]:
    """Drop the packages the archive-safety gate refused, each with a warning naming its path
    and rule (validation off: the other packages are served)."""
    kept: list[tuple[LoadTask, Package | LoadFailure]] = []
    for task, result in pairs:
        if isinstance(result, LoadFailure) and result.rule:
            log.warning(
                f"skipping unsafe package {result.location}: {result.message}",
                extra={
                    "fields": {
                        "file.path": result.location,
                        "error.message": result.message,
                        "error.code": result.rule,
                    }
                },
            )
            continue
        kept.append((task, result))
    return kept


def load_sources(
    paths: Sequence[str],
    *,
    validate: bool = True,
    require_signatures: bool = False,
    workers: int = 1,
    executor: ExecutorKind | None = None,
    cache: DocCache | None = None,
) -> list[list[Package]]:
    """Load ``[zip source, folder source]`` from ``paths`` (spec §7).

    Raises ``PackageError`` listing every package that failed to load (location and rule) and,
    with ``require_signatures``, every package without a ``.sig`` file. ``cache`` keeps the
    derived documents of the packages read, by content (see :func:`read_task`): a restart over
    unchanged package folders reads those instead of the packages' YAML, all from one file
    (``packages/bulkcache.py``), and forks no pool.
    """
    if workers <= 0:
        raise PackageError("package-paths-workers must be greater than 0")
    # one walk of every path: the zips, the package folders and (with a cache) their stamps
    found = pathscan.scan(paths, stamps=cache is not None)
    if cache is None:
        zip_tasks = _valid_zips(found.zips, lambda _task: False)
        folder_tasks = _folder_tasks(found)
        tasks = [*zip_tasks, *folder_tasks]
        results = [
            r for r, _ in _read_jobs([(t, None) for t in tasks], validate, workers, executor, None)
        ]
    else:
        bulk = _bulk(cache, paths, validate)
        stored = bulk.read()
        zip_tasks = _valid_zips(found.zips, lambda t: _key_or_none(t, validate) in stored)
        folder_tasks = _folder_tasks(found)
        tasks = [*zip_tasks, *folder_tasks]
        results = _read_cached(
            tasks,
            validate=validate,
            workers=workers,
            executor=executor,
            cache=cache,
            bulk=(bulk, stored),
        )
    pairs = list(zip(tasks, results, strict=True))
    if not validate:  # hostile packages are skipped with a warning (refused when validating)
        pairs = _skip_unsafe(pairs)
    failures = [r for _, r in pairs if isinstance(r, LoadFailure)]
    loaded = [r for _, r in pairs if not isinstance(r, LoadFailure)]
    unsigned: list[Package] = []
    if require_signatures:
        unsigned = [r for t, r in pairs if not isinstance(r, LoadFailure) and t.signature is None]
    if failures or unsigned:
        raise PackageError(_format_failures(failures, unsigned))
    n_zip = sum(1 for t, _ in pairs if t.kind == "zip")  # no failures: zips come first
    return [
        manifest.propagate_deprecations(_dedupe(loaded[:n_zip])),
        manifest.propagate_deprecations(_dedupe(loaded[n_zip:])),
    ]


def count_packages(sources: Sequence[Sequence[Package]]) -> int:
    return sum(len(s) for s in sources)


# --- watcher -----------------------------------------------------------------------------------

Snapshot = tuple[tuple[str, tuple[tuple[str, bool, int, int], ...] | None], ...]


def snapshot(paths: Sequence[str]) -> Snapshot:
    """The top level of each path: (name, is_dir, size, mtime_ns) of every entry."""
    out: list[tuple[str, tuple[tuple[str, bool, int, int], ...] | None]] = []
    for base in paths:
        try:
            entries = pathscan.sorted_entries(base)
        except OSError:
            out.append((base, None))
            continue
        rows: list[tuple[str, bool, int, int]] = []
        for e in entries:
            try:
                st = e.stat()
            except OSError:
                continue
            rows.append((e.name, e.is_dir(), st.st_size, st.st_mtime_ns))
        out.append((base, tuple(rows)))
    return tuple(out)


class PackagePathsWatcher:
    """Polls the top level of every package path; after a change has settled, reloads.

    ``load()`` builds new sources (e.g. a ``functools.partial`` of :func:`load_sources`);
    ``on_change(sources)`` receives them (swap the served index there). A failed reload is
    logged and the old sources stay. Runs in a daemon thread; ``stop()`` ends it.
    """

    RELOAD_RETRIES = 3
    """How many more reloads are tried, one per interval, after a failed one."""

    def __init__(
        self,
        paths: Sequence[str],
        load: Callable[[], list[list[Package]]],
        on_change: Callable[[list[list[Package]]], None],
        *,
        interval: float = 1.0,
        debounce: float = 1.0,
    ) -> None:
        self.paths = tuple(paths)
        self._load = load
        self._on_change = on_change
        self.interval = interval
        self.debounce = debounce
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0
        self.failures = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        # The baseline is taken before start() returns: a change made right after start()
        # is always seen as a change.
        baseline = snapshot(self.paths)
        self._thread = threading.Thread(
            target=self._run, args=(baseline,), name="package-paths-watcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self, current: object) -> None:
        retries = 0
        while not self._stop.wait(self.interval):
            new = snapshot(self.paths)
            if new == current and not retries:
                continue
            # debounce: wait until nothing changes for `debounce` seconds
            while not self._stop.wait(self.debounce):
                settled = snapshot(self.paths)
                if settled == new:
                    break
                new = settled
            if self._stop.is_set():
                return
            current = new
            # Only the top level is watched, so a package still being copied below it can make
            # the reload fail without a further visible change: try again a few times.
            reloaded = self.reload()
            if reloaded:
                retries = 0
            elif retries:
                retries -= 1
            else:
                retries = self.RELOAD_RETRIES

    def reload(self) -> bool:
        """Rebuild now; True when the new sources were handed to ``on_change``."""
        try:
            sources = self._load()
        except PackageStorageError as exc:
            self.failures += 1
            log.error(
                "reloading package paths failed, keeping the packages loaded before",
                extra={"fields": {"error.message": exc.message}},
            )
            return False
        except Exception:  # keep serving whatever happens
            self.failures += 1
            log.exception("reloading package paths failed, keeping the packages loaded before")
            return False
        self.reloads += 1
        log.info(f"{count_packages(sources)} local package manifests loaded.")
        self._on_change(sources)
        return True
