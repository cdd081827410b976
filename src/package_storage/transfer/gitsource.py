"""Package folders read straight from a git repository (no checkout, no working tree).

A package-storage repository keeps one branch per stage (``production``, ``staging``,
``snapshot``), each with ``packages/<name>/<version>/``. :func:`list_packages` lists the
package versions of one branch with a single ``git ls-tree -r -t -z`` (which also gives the git
tree id of every version folder: a free content fingerprint), and :class:`GitReader` reads file
contents through one long-lived ``git cat-file --batch`` process. :func:`git_tree` turns a
listed version into a :class:`MemoryTree` (a :class:`~package_storage.packages.model.PackageTree`), so
validation and the deterministic zip build see exactly what a checkout would hold.

Only regular files are taken: a symlink (mode ``120000``) or a submodule (``160000``) inside a
package is refused with :class:`~package_storage.errors.PackageError`, as a checkout could not
reproduce it safely. Every ``git`` call runs with ``GIT_*`` repository overrides cleared and a
fixed locale, so the environment of the caller cannot point it at another repository.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from package_storage.errors import NotFoundError, PackageError, StorageError
from package_storage.packages.model import SourceKind, TreeEntry
from package_storage.packages.trees import clean_relative_path

__all__ = [
    "GitChange",
    "GitCommit",
    "GitFile",
    "GitPackage",
    "GitReader",
    "MemoryTree",
    "first_parent_log",
    "git_tree",
    "is_ancestor",
    "list_packages",
    "list_tags",
    "resolve_branch",
    "run_git",
]

REGULAR_MODES = frozenset({"100644", "100755", "100664"})
_SYMLINK_MODE = "120000"
_GITLINK_MODE = "160000"

# Environment variables that would make git use another repository, index or config.
_GIT_OVERRIDES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_COMMON_DIR",
)


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_OVERRIDES}
    env["LC_ALL"] = "C"
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def run_git(repo: Path, *args: str) -> bytes:
    """Run ``git -C repo args...`` and return its stdout; StorageError (with git's message)
    when git fails, NotFoundError when git is not installed."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            env=_git_env(),
            check=False,
        )
    except FileNotFoundError:
        raise NotFoundError("git is not installed: import-git needs the git command") from None
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[-1] if message else f"exit status {proc.returncode}"
        raise StorageError(f"git {' '.join(args[:2])} in {repo} failed: {detail}")
    return proc.stdout


def resolve_branch(repo: Path, branch: str) -> str | None:
    """The commit id of ``branch`` (a local branch, else ``origin/<branch>``, else any ref
    git resolves), or None when the repository has no such branch."""
    for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}", branch):
        try:
            out = run_git(
                repo, "rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"
            )
        except StorageError:
            continue
        commit = out.decode().strip()
        if commit:
            return commit
    return None


# --- listing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GitFile:
    """One file of a package: path relative to the version folder, git mode and blob id."""

    path: str
    mode: str
    blob: str


@dataclass(frozen=True, slots=True)
class GitPackage:
    """One ``<subdir>/<name>/<version>/`` folder of a commit.

    ``tree`` is the git tree id of the version folder: equal ids mean equal content (paths,
    bytes and modes), so it serves as a cheap fingerprint.
    """

    repo: str
    commit: str
    path: str  # "packages/<name>/<version>"
    name: str
    version: str
    tree: str
    files: tuple[GitFile, ...]

    @property
    def location(self) -> str:
        return f"{self.repo}@{self.commit[:12]}:{self.path}"

    @property
    def has_manifest(self) -> bool:
        return any(f.path == "manifest.yml" for f in self.files)


def _split_ls_tree(record: bytes) -> tuple[str, str, str, str]:
    meta, _, path = record.partition(b"\t")
    mode, kind, obj = meta.decode("ascii").split(" ", 2)
    return mode, kind, obj.strip(), path.decode("utf-8", "surrogateescape")


def list_packages(repo: Path, commit: str, subdir: str = "packages") -> list[GitPackage]:
    """Every ``<subdir>/<name>/<version>/`` folder of ``commit``, sorted by (name, version).

    Version folders are listed whether or not they hold a ``manifest.yml`` (the importer
    reports the ones that do not). Files directly in ``<subdir>/<name>/`` are ignored.
    """
    sub = subdir.strip("/")
    out = run_git(repo, "ls-tree", "-r", "-t", "-z", "--full-tree", commit, "--", sub)
    trees: dict[tuple[str, str], str] = {}
    files: dict[tuple[str, str], list[GitFile]] = {}
    prefix = sub + "/"
    for record in out.split(b"\0"):
        if not record:
            continue
        mode, kind, obj, path = _split_ls_tree(record)
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/", 2)
        if len(parts) < 2:
            continue
        key = (parts[0], parts[1])
        if len(parts) == 2:
            if kind == "tree":
                trees[key] = obj
            continue
        if kind == "tree":
            continue  # sub-directories: implied by their files
        files.setdefault(key, []).append(GitFile(parts[2], mode, obj))
    return [
        GitPackage(
            repo=str(repo),
            commit=commit,
            path=f"{sub}/{name}/{version}",
            name=name,
            version=version,
            tree=tree,
            files=tuple(files.get((name, version), ())),
        )
        for (name, version), tree in sorted(trees.items())
    ]


# --- history --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GitChange:
    """One line of ``git log --raw``: a path whose mode or object changed (``new`` is all
    zeros for a deletion)."""

    old_mode: str
    new_mode: str
    new: str
    status: str
    path: str

    @property
    def deleted(self) -> bool:
        return self.status.startswith("D") or self.new_mode == "000000"

    @property
    def is_tree(self) -> bool:
        return (self.old_mode if self.deleted else self.new_mode) == "040000"


@dataclass(frozen=True, slots=True)
class GitCommit:
    """One first-parent commit: id, parents, committer time (Unix seconds), author, subject
    and what changed against its first parent (every file and tree, recursively)."""

    id: str
    parents: tuple[str, ...]
    time: int
    author: str
    subject: str
    changes: tuple[GitChange, ...]


_LOG_FORMAT = "%x01%H %ct %P%x00%an%x00%s%x00"


def first_parent_log(repo: Path, commit: str) -> list[GitCommit]:
    """Every first-parent commit leading to ``commit``, oldest first, with its raw changes
    against the first parent (merges too), in ONE ``git log`` run."""
    out = run_git(
        repo,
        "log",
        "--first-parent",
        "--reverse",
        "--raw",
        "-t",
        "-r",
        "--no-renames",
        "--no-abbrev",
        "-z",
        "--diff-merges=first-parent",
        f"--format={_LOG_FORMAT}",
        commit,
        "--",
    )
    commits: list[GitCommit] = []
    for chunk in out.split(b"\x01"):
        if not chunk:
            continue
        head, author, subject, rest = chunk.split(b"\0", 3)
        fields = head.decode("ascii").split()
        tokens = rest.lstrip(b"\0\n").split(b"\0")
        changes: list[GitChange] = []
        for i in range(0, len(tokens) - 1, 2):
            meta = tokens[i].decode("ascii", "replace").lstrip(":").split()
            if len(meta) < 5:
                continue
            changes.append(
                GitChange(
                    meta[0],
                    meta[1],
                    meta[3],
                    meta[4],
                    tokens[i + 1].decode("utf-8", "surrogateescape"),
                )
            )
        commits.append(
            GitCommit(
                id=fields[0],
                parents=tuple(fields[2:]),
                time=int(fields[1]),
                author=author.decode("utf-8", "replace"),
                subject=subject.decode("utf-8", "replace"),
                changes=tuple(changes),
            )
        )
    return commits


def list_tags(repo: Path) -> list[tuple[str, str]]:
    """Every tag of the repository as (name, commit id it points to, annotated tags peeled),
    sorted by name; tags of other objects than commits are left out."""
    out = run_git(
        repo,
        "for-each-ref",
        "refs/tags",
        "--format=%(refname:strip=2)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)",
    )
    tags: list[tuple[str, str]] = []
    for line in out.decode("utf-8", "replace").splitlines():
        name, kind, obj, peeled_kind, peeled = line.split("\0")
        if kind == "commit":
            tags.append((name, obj))
        elif kind == "tag" and peeled_kind == "commit":
            tags.append((name, peeled))
    return sorted(tags)


def is_ancestor(repo: Path, ancestor: str, commit: str) -> bool:
    """Is ``ancestor`` in the history of ``commit``?"""
    try:
        run_git(repo, "merge-base", "--is-ancestor", ancestor, commit)
    except StorageError:
        return False
    return True


# --- reading blobs ---------------------------------------------------------------------------


class GitReader:
    """Reads blobs through one ``git cat-file --batch`` process (thread-safe, one at a time).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, repo: Path) -> None:
        self.repo = Path(repo)
        self._lock = threading.Lock()
        try:
            self._proc: subprocess.Popen[bytes] = subprocess.Popen(
                ["git", "-C", str(self.repo), "cat-file", "--batch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=_git_env(),
            )
        except FileNotFoundError:
            raise NotFoundError("git is not installed: import-git needs the git command") from None

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        if stdin is None or stdout is None or self._proc.poll() is not None:
            raise StorageError(f"git cat-file in {self.repo} is not running")
        return stdin, stdout

    def read(self, blob: str) -> bytes:
        """The bytes of blob ``blob``; NotFoundError when the repository lacks it."""
        with self._lock:
            stdin, stdout = self._pipes()
            try:
                stdin.write(blob.encode("ascii") + b"\n")
                stdin.flush()
                header = stdout.readline()
            except OSError as exc:
                raise StorageError(f"git cat-file in {self.repo} failed: {exc}") from exc
            fields = header.split()
            if len(fields) == 2 and fields[1] == b"missing":
                raise NotFoundError(f"git object {blob} is missing from {self.repo}")
            if len(fields) != 3:
                raise StorageError(f"git cat-file in {self.repo}: unexpected answer {header!r}")
            size = int(fields[2])
            data = stdout.read(size)
            stdout.read(1)  # the newline after the contents
            if len(data) != size:
                raise StorageError(f"git cat-file in {self.repo}: short read of {blob}")
            if fields[1] != b"blob":
                raise PackageError(f"git object {blob} is a {fields[1].decode()}, not a file")
            return data

    def close(self) -> None:
        proc = self._proc
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - git hangs
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> GitReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- in-memory trees -------------------------------------------------------------------------


def _walk_key(path: str) -> list[bytes]:
    return [os.fsencode(p) for p in path.split("/")]


class MemoryTree:
    """A :class:`~package_storage.packages.model.PackageTree` over file contents held in memory.

    Entries come in the folder walk order (depth first, children in bytewise name order, a
    directory right before its contents), with directory entries derived from the file paths
    (plus ``dirs``, e.g. the empty directories of a folder);
    ``kind`` is ``folder`` (the package was a folder where it came from).
    """

    def __init__(self, location: str, files: Mapping[str, bytes], dirs: Iterable[str] = ()) -> None:
        self._location = location
        self._files: dict[str, bytes] = {}
        for path, data in files.items():
            clean = clean_relative_path(path)
            if clean is None or clean != path:
                raise PackageError(f"unsafe path {path!r} in package", path=location)
            self._files[path] = bytes(data)
        all_dirs: set[str] = set()
        for d in dirs:
            clean = clean_relative_path(d)
            if clean is None or clean != d:
                raise PackageError(f"unsafe path {d!r} in package", path=location)
            while d and d not in all_dirs:
                all_dirs.add(d)
                d = d.rpartition("/")[0]
        for path in self._files:
            parent = path.rpartition("/")[0]
            while parent and parent not in all_dirs:
                all_dirs.add(parent)
                parent = parent.rpartition("/")[0]
        clash = all_dirs.intersection(self._files)
        if clash:
            raise PackageError(
                f"entry {sorted(clash)[0]!r} is both a file and a directory", path=location
            )
        entries = [TreeEntry(d, True, 0, 0.0) for d in all_dirs]
        entries.extend(TreeEntry(p, False, len(b), 0.0) for p, b in self._files.items())
        entries.sort(key=lambda e: _walk_key(e.path))
        self._entries = tuple(entries)
        self._by_path = {e.path: e for e in entries}

    @property
    def kind(self) -> SourceKind:
        return "folder"

    @property
    def location(self) -> str:
        return self._location

    def __repr__(self) -> str:
        return f"MemoryTree({self._location!r}, {len(self._files)} files)"

    def entries(self) -> Sequence[TreeEntry]:
        return self._entries

    def stat(self, path: str) -> TreeEntry | None:
        clean = clean_relative_path(path)
        return None if clean is None else self._by_path.get(clean)

    def read(self, path: str) -> bytes:
        clean = clean_relative_path(path)
        data = None if clean is None else self._files.get(clean)
        if data is None:
            raise NotFoundError(f"{self._location}: no file {path!r} in package")
        return data


def git_tree(package: GitPackage, reader: GitReader) -> MemoryTree:
    """The files of ``package`` read through ``reader``; PackageError for a symlink or a
    submodule inside the package."""
    contents: dict[str, bytes] = {}
    for f in package.files:
        if f.mode == _SYMLINK_MODE:
            raise PackageError(
                f"{f.path} is a symbolic link: packages in git must hold regular files only",
                path=package.location,
            )
        if f.mode == _GITLINK_MODE:
            raise PackageError(
                f"{f.path} is a git submodule: packages in git must hold regular files only",
                path=package.location,
            )
        contents[f.path] = reader.read(f.blob)
    return MemoryTree(package.location, contents)
