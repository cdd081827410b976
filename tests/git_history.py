"""A generated package-storage git repository with history (a plain module, imported by name by
the history tests and by ``bench/history_import.py``).

:func:`make_history_repo` writes, through one ``git fast-import`` run (fast: thousands of commits
in seconds), branches shaped like Elastic's package-storage: ``snapshot`` (a new package version
per commit, now and then old versions removed), ``staging``, ``production`` (versions added, one
changed in place, one merge of a side branch), the frozen legacy branches ``production-7.9`` and
``experimental`` (most of whose folders have a ``-`` in the package name, which today's rules
refuse), and tags: ``7.9.0`` on a production commit, ``snap-1`` on a snapshot commit, an annotated
``v1`` on the staging tip and ``side`` on the merged side branch (off the first-parent line).
Package versions are copies of ``examples/packages`` with their name and version edited.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "packages"
TEMPLATE = EXAMPLES / "hello_nginx" / "1.1.0"
BASE_TIME = 1_577_836_800  # 2020-01-01T00:00:00Z


def _template() -> dict[str, bytes]:
    return {
        str(p.relative_to(TEMPLATE)): p.read_bytes()
        for p in sorted(TEMPLATE.rglob("*"))
        if p.is_file()
    }


_FILES = _template()


def package_files(name: str, version: str, *, note: str = "") -> dict[str, bytes]:
    """The files of package ``name`` ``version`` (hello_nginx renamed), ``note`` in its README."""
    out: dict[str, bytes] = {}
    for rel, data in _FILES.items():
        text = data.decode().replace("hello_nginx", name)
        if rel == "manifest.yml":
            text = text.replace("version: 1.1.0", f"version: {version}", 1)
        if rel == "changelog.yml":
            text = (
                f'- version: "{version}"\n  changes:\n'
                f"    - description: Release {version}.\n      type: enhancement\n"
                f"      link: https://example.com/{name}/{version}\n"
            )
        if rel == "docs/README.md" and note:
            text += f"\n{note}\n"
        out[rel.replace("hello_nginx", name)] = text.encode()
    return out


@dataclass
class _Writer:
    """Builds a fast-import stream; blobs are written once per distinct content."""

    chunks: list[bytes] = field(default_factory=list)
    blobs: dict[bytes, int] = field(default_factory=dict)
    mark: int = 0
    time: int = BASE_TIME

    def _next(self) -> int:
        self.mark += 1
        return self.mark

    def blob(self, data: bytes) -> int:
        found = self.blobs.get(data)
        if found is not None:
            return found
        mark = self._next()
        self.chunks.append(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
        self.blobs[data] = mark
        return mark

    def commit(
        self,
        ref: str,
        subject: str,
        author: str,
        *,
        put: dict[str, dict[str, bytes]] | None = None,
        delete: Sequence[str] = (),
        parent: int | None = None,
        merge: int | None = None,
        at: int | None = None,
    ) -> int:
        files = [
            (f"{folder}/{rel}", self.blob(data))
            for folder, fs in (put or {}).items()
            for rel, data in fs.items()
        ]
        self.time = at if at is not None else self.time + 60
        mark = self._next()
        message = subject.encode()
        ident = f"{author} <{author.lower().replace(' ', '.')}@example.com> {self.time} +0000"
        head = b"commit refs/heads/%s\nmark :%d\nauthor %s\ncommitter %s\ndata %d\n%s\n" % (
            ref.encode(),
            mark,
            ident.encode(),
            ident.encode(),
            len(message),
            message,
        )
        self.chunks.append(head)
        if parent is not None:
            self.chunks.append(b"from :%d\n" % parent)
        if merge is not None:
            self.chunks.append(b"merge :%d\n" % merge)
        for path in delete:
            self.chunks.append(b"D %s\n" % path.encode())
        for path, blob in files:
            self.chunks.append(b"M 100644 :%d %s\n" % (blob, path.encode()))
        self.chunks.append(b"\n")
        return mark

    def tag(self, name: str, commit: int, *, annotated: bool = False) -> None:
        if annotated:
            message = f"release {name}".encode()
            self.chunks.append(
                b"tag %s\nfrom :%d\ntagger Release <r@example.com> %d +0000\ndata %d\n%s\n"
                % (name.encode(), commit, self.time, len(message), message)
            )
        else:
            self.chunks.append(b"reset refs/tags/%s\nfrom :%d\n\n" % (name.encode(), commit))


@dataclass
class HistoryRepo:
    path: Path
    commits: dict[str, int]  # branch -> first-parent commits written
    packages: list[str]


def make_history_repo(
    root: Path,
    *,
    snapshot: int = 120,
    staging: int = 20,
    production: int = 40,
    packages: int = 8,
    legacy: bool = True,
) -> HistoryRepo:
    """``root/repo`` (see the module docstring); the counts are first-parent commits."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    names = [f"pkg_{i:03d}" for i in range(packages)]
    w = _Writer()
    counts: dict[str, int] = {}

    def grow(branch: str, count: int, *, minor: int, removals: bool, every: int) -> list[int]:
        marks: list[int] = []
        live: list[str] = []
        last: int | None = None
        for i in range(count):
            name = names[i % len(names)]
            version = f"{minor}.{i // len(names)}.{i % 3}"
            folder = f"packages/{name}/{version}"
            delete: list[str] = []
            subject = f"Update {name} to {version} (#{1000 + i})"
            if removals and i and i % 10 == 0 and len(live) > 3:
                delete.append(live.pop(0))
                subject = (
                    f"[{branch}] Update {name} to {version} and remove old versions (#{1000 + i})"
                )
            last = w.commit(
                branch,
                subject,
                f"Author {i % 5}",
                put={folder: package_files(name, version)},
                delete=delete,
                parent=last,
                at=BASE_TIME + i * every + minor,  # branches interleave in time
            )
            live.append(folder)
            marks.append(last)
        return marks

    span = 60 * max(snapshot, staging, production)
    snap = grow("snapshot", snapshot, minor=3, removals=True, every=span // snapshot)
    stag = grow("staging", staging, minor=2, removals=False, every=span // max(staging, 1))
    prod = grow("production", production, minor=1, removals=False, every=span // production)
    w.time = BASE_TIME + span
    counts.update(snapshot=snapshot, staging=staging)
    # production: one version changed in place, and a merged side branch
    first = names[0]
    changed = w.commit(
        "production",
        f"Fix the README of {first} 1.0.0",
        "Author 1",
        put={f"packages/{first}/1.0.0": package_files(first, "1.0.0", note="Fixed.")},
        parent=prod[-1],
    )
    side = w.commit(
        "side",
        "Add pkg_side 1.0.0",
        "Author 2",
        put={"packages/pkg_side/1.0.0": package_files("pkg_side", "1.0.0")},
        parent=changed,
    )
    merged = w.commit(
        "production",
        "Merge branch side",
        "Author 3",
        put={"packages/pkg_side/1.0.0": package_files("pkg_side", "1.0.0")},
        parent=changed,
        merge=side,
    )
    counts["production"] = production + 2
    w.tag("7.9.0", prod[len(prod) // 2])
    w.tag("snap-1", snap[len(snap) // 3])
    w.tag("v1", stag[-1], annotated=True)
    w.tag("side", side)
    del merged
    if legacy:
        last = None
        for i in range(5):
            version = f"0.9.{i}"
            last = w.commit(
                "production-7.9",
                f"Add {names[i]} {version}",
                "Legacy",
                put={f"packages/{names[i]}/{version}": package_files(names[i], version)},
                parent=last,
            )
        last = None
        for i in range(4):
            name = f"exp-{i}" if i else "exp_ok"
            last = w.commit(
                "experimental",
                f"Add {name} 0.1.0",
                "Legacy",
                put={f"packages/{name}/0.1.0": package_files(name, "0.1.0")},
                parent=last,
            )
        counts["production-7.9"] = 5
        counts["experimental"] = 4
    subprocess.run(
        ["git", "-C", str(repo), "fast-import", "--quiet"],
        input=b"".join(w.chunks),
        check=True,
    )
    subprocess.run(["git", "-C", str(repo), "branch", "-q", "-D", "side"], check=True)
    return HistoryRepo(repo, counts, names)


def ls_tree_versions(repo: Path, commit: str) -> set[tuple[str, str, str]]:
    """(name, version, tree id) of every ``packages/<name>/<version>`` folder of ``commit``."""
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "-d", commit, "--", "packages"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found: set[tuple[str, str, str]] = set()
    for line in out.splitlines():
        meta, path = line.split("\t", 1)
        parts = path.split("/")
        if len(parts) == 3:
            found.add((parts[1], parts[2], meta.split()[2]))
    return found


def first_parents(repo: Path, branch: str) -> list[str]:
    """Commit ids of the first-parent line of ``branch``, oldest first."""
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--first-parent", "--reverse", branch],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()
