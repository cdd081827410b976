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

import contextlib
import hashlib
import logging
import os
import stat as stat_mod
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import Literal

from package_storage import __version__
from package_storage.errors import PackageError, PackageStorageError, UnsafePackageError
from package_storage.packages import derived, manifest, safety, trees
from package_storage.packages.derived import FORMAT, LazyTree
from package_storage.packages.doccache import DocCache
from package_storage.packages.model import Package, PackageTree, SourceKind
from package_storage.packages.versions import Version

log = logging.getLogger("package_storage.sources")

ExecutorKind = Literal["thread", "process", "serial"]

DEFAULT_EXECUTOR: ExecutorKind = "process"
"""Measured on 2,000 versions (see the project report): process pool beats threads (the YAML
loader holds the GIL), and a serial loop wins below :data:`PARALLEL_MIN_TASKS`."""

_KEY_MAX_DEPTH = 64  # folder levels a content key walks (the package limits are far below)

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


@dataclass(frozen=True, slots=True)
class LoadFailure:
    location: str
    message: str
    rule: str = ""  # the archive-safety rule code when the gate refused the package


# --- discovery ---------------------------------------------------------------------------------


def _sorted_entries(path: str) -> list[os.DirEntry[str]]:
    """Directory entries in Go's ``os.ReadDir`` order (bytewise by name)."""
    with os.scandir(path) as it:
        entries = list(it)
    entries.sort(key=lambda e: os.fsencode(e.name))
    return entries


def _walk_zips(root: str) -> Iterator[str]:
    """Every regular ``*.zip`` file below ``root`` in ``filepath.Walk`` order (lexical, no links)."""
    try:
        entries = _sorted_entries(root)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_zips(entry.path)
        elif entry.name.endswith(".zip") and entry.is_file(follow_symlinks=False):
            yield entry.path


def _existing(path: str) -> bool:
    return os.path.isdir(path)


def discover_zips(paths: Sequence[str]) -> list[LoadTask]:
    """Zip-source tasks: invalid archives are skipped with a warning."""
    tasks: list[LoadTask] = []
    for base in paths:
        if not _existing(base):
            continue
        for zip_path in _walk_zips(base):
            if not zipfile.is_zipfile(zip_path):
                log.warning("ignoring invalid zip file", extra={"fields": {"file.path": zip_path}})
                continue
            sig = zip_path + ".sig"
            tasks.append(LoadTask("zip", zip_path, sig if os.path.isfile(sig) else None))
    return tasks


def _is_strict_version(name: str) -> bool:
    try:
        Version.parse_strict(name)
    except PackageStorageError:
        return False
    return True


def discover_folders(paths: Sequence[str]) -> list[LoadTask]:
    """Folder-source tasks: ``<path>/<x>/<y>/`` with ``<y>`` strict semver."""
    tasks: list[LoadTask] = []
    for base in paths:
        if not _existing(base):
            continue
        for first in _sorted_entries(base):
            if not first.is_dir():
                continue  # depth-1 files are ignored silently
            try:
                seconds = _sorted_entries(first.path)
            except OSError as exc:
                log.warning(
                    "cannot read directory",
                    extra={"fields": {"file.path": first.path, "error.message": str(exc)}},
                )
                continue
            for second in seconds:
                if not second.is_dir():
                    log.warning(
                        "ignoring unexpected file", extra={"fields": {"file.path": second.path}}
                    )
                    continue
                if not _is_strict_version(second.name):
                    log.warning(
                        "ignoring unexpected directory",
                        extra={"fields": {"file.path": second.path}},
                    )
                    continue
                sig = second.path + ".sig"
                tasks.append(
                    LoadTask(
                        "folder",
                        second.path,
                        sig if os.path.isfile(sig) else None,
                        version_dir=second.name,
                    )
                )
    return tasks


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
        if not _existing(base) or not _is_bundle(base):
            continue
        for zip_path in _walk_zips(base):
            total += 1
            if not os.path.isfile(zip_path + ".sig"):
                unsigned.append(zip_path)
        for first in _sorted_entries(base):
            if not first.is_dir():
                continue
            with contextlib.suppress(OSError):
                for second in _sorted_entries(first.path):
                    if second.is_dir() and _is_strict_version(second.name):
                        total += 1
                        if not os.path.isfile(second.path + ".sig"):
                            unsigned.append(second.path)
    if unsigned:
        raise PackageError(
            f"{unsigned[0]}: no signature file (.sig), and signatures are required"
            f" ({len(unsigned)} of {total} packages are unsigned): {SIGNATURE_HINT}"
        )


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


def _stat_line(rel: str, st: os.stat_result) -> bytes:
    line = f"{rel}\0{stat_mod.S_IFMT(st.st_mode)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n"
    return line.encode("utf-8", "surrogateescape")


def _walk_stats(
    root: str, rel: str, out: Callable[[bytes], None], ancestors: frozenset[tuple[int, int]]
) -> None:
    """Every entry below ``root``: its stat line (and, for a link, its target's), folders
    and links to folders walked; ``ancestors`` (device, inode) of the folders above stops a
    link cycle."""
    if len(ancestors) > _KEY_MAX_DEPTH:
        raise OSError(f"{root}: deeper than {_KEY_MAX_DEPTH} levels")
    with os.scandir(root) as it:
        entries = sorted(it, key=_entry_name)  # any fixed order will do
    for entry in entries:
        name = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        out(_stat_line(name, st))
        if stat_mod.S_ISLNK(st.st_mode):
            try:  # what the link points at, when it resolves
                st = os.stat(entry.path)
            except OSError:
                continue
            out(_stat_line(name + " ->", st))
        if stat_mod.S_ISDIR(st.st_mode):
            identity = (st.st_dev, st.st_ino)
            if identity not in ancestors:  # a link cycle is walked once
                _walk_stats(entry.path, name, out, ancestors | {identity})


def _entry_name(entry: os.DirEntry[str]) -> str:
    return entry.name


def content_key(task: LoadTask, validate: bool) -> str:
    """The cache key of ``task``'s package as it is now: this program's version, the
    derived-document format, how it is read (validation, signature, location) and, as
    rsync's quick check does, the path, type, size, modification time and inode of every
    file and folder in it (of the zip file for a zip). Raises OSError when it cannot stat."""
    h = hashlib.sha256()
    head = (
        f"{__version__}\0{FORMAT}\0{task.kind}\0{task.location}\0{validate}\0"
        f"{task.signature is not None}\0{task.version_dir}\n"
    )
    h.update(head.encode("utf-8", "surrogateescape"))
    if task.kind == "zip":
        h.update(_stat_line("", os.stat(task.location)))
    else:
        st = os.stat(task.location)
        h.update(_stat_line("", st))
        _walk_stats(task.location, "", h.update, frozenset({(st.st_dev, st.st_ino)}))
    return h.hexdigest()


def _cached(task: LoadTask, validate: bool, cache: DocCache) -> tuple[Package | None, str | None]:
    """(the cached package, its key); (None, key) on a miss, (None, None) when the package
    cannot be keyed (then it is read and not cached)."""
    try:
        key = content_key(task, validate)
    except OSError:
        return None, None
    data = cache.get(key)
    if data is None:
        return None, key
    try:
        pkg = derived.load_package(data, _lazy_tree(task))
    except (ValueError, KeyError, TypeError, PackageStorageError):
        return None, key
    return pkg, key


def read_task(task: LoadTask, validate: bool, cache: DocCache | None = None) -> Package:
    """Read one package (raises ``PackageError`` naming the location) after the
    archive-safety gate (``packages/safety.py``) and before its identity check.

    With ``cache``, a package whose files did not change since it was last read (see
    :func:`content_key`) comes from its derived document instead, gate and validation
    included (they passed for these very files); a package read now is stored there.
    """
    key = None
    if cache is not None:
        found, key = _cached(task, validate, cache)
        if found is not None:
            return found
    pkg = _read_now(task, validate)
    if key is not None and cache is not None:
        data = derived.dump_package(pkg)
        if data is not None:
            cache.put(key, data)
    return pkg


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


def _read_safely(
    task: LoadTask, validate: bool, cache: DocCache | None = None
) -> Package | LoadFailure:
    try:
        return read_task(task, validate, cache)
    except UnsafePackageError as exc:
        message = exc.detail if exc.path == task.location else exc.message
        return LoadFailure(task.location, message, exc.rule)
    except PackageError as exc:
        message = exc.detail if exc.path == task.location else exc.message
        return LoadFailure(task.location, message)
    except PackageStorageError as exc:
        return LoadFailure(task.location, exc.message)
    except (OSError, ValueError, zipfile.BadZipFile, RecursionError) as exc:
        return LoadFailure(task.location, f"{type(exc).__name__}: {exc}")


def _read_chunk(
    tasks: Sequence[LoadTask], validate: bool, cache: DocCache | None = None
) -> list[Package | LoadFailure]:
    return [_read_safely(t, validate, cache) for t in tasks]


def _read_chunk_detached(
    tasks: Sequence[LoadTask], validate: bool, cache: DocCache | None = None
) -> list[Package | LoadFailure]:
    """Process-pool worker: packages travel back without their tree (trees hold locks and
    open files); the parent attaches a tree again (a zip's is opened on first use)."""
    out: list[Package | LoadFailure] = []
    for result in _read_chunk(tasks, validate, cache):
        if isinstance(result, Package):
            result = replace(result, tree=None)  # type: ignore[arg-type]
        out.append(result)
    return out


def _reattach(task: LoadTask, result: Package | LoadFailure) -> Package | LoadFailure:
    if isinstance(result, LoadFailure):
        return result
    try:
        return replace(result, tree=_lazy_tree(task))
    except PackageStorageError as exc:
        return LoadFailure(task.location, exc.message)


def _chunks(tasks: Sequence[LoadTask], n: int) -> Iterator[Sequence[LoadTask]]:
    size = max(1, n)
    for i in range(0, len(tasks), size):
        yield tasks[i : i + size]


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
    kind = executor or DEFAULT_EXECUTOR
    if workers <= 1 or kind == "serial" or len(tasks) < PARALLEL_MIN_TASKS:
        return _read_chunk(tasks, validate, cache)
    # a few chunks per worker: balances the load without paying per-package IPC
    chunk = max(1, len(tasks) // (workers * 4))
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
                _read_chunk_detached, _chunks(tasks, chunk), repeat(validate), repeat(cache)
            )
            flat = [result for part in parts for result in part]
            return [_reattach(t, r) for t, r in zip(tasks, flat, strict=True)]
        parts = pool.map(_read_chunk, _chunks(tasks, chunk), repeat(validate), repeat(cache))
        return [result for part in parts for result in part]


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
    unchanged package folders reads those instead of the packages' YAML.
    """
    if workers <= 0:
        raise PackageError("package-paths-workers must be greater than 0")
    zip_tasks = discover_zips(paths)
    folder_tasks = discover_folders(paths)
    results = read_all(
        [*zip_tasks, *folder_tasks],
        validate=validate,
        workers=workers,
        executor=executor,
        cache=cache,
    )
    pairs = list(zip([*zip_tasks, *folder_tasks], results, strict=True))
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
            entries = _sorted_entries(base)
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
