"""Air-gapped bundles: export the package versions of one distribution revision to a folder.

``export_bundle`` writes a self-contained folder that the registry serves as is and that another
store imports::

    OUT/packages/<name>-<version>.zip        the artifact, byte for byte as stored
    OUT/packages/<name>-<version>.zip.sig    its detached signature (when the store has one)
    OUT/config.yml                           EPR config: package_paths [./packages]
    OUT/bundle.json                          what, when, from which revision, selection, counts
    OUT/README.txt                           how to verify, serve and import the bundle
    OUT/public-key.asc                       the store's public signing key (when it has one)
    OUT/SHA256SUMS                           ``sha256sum -c`` format: every other file

Selection, from the revision's entries:

* ``kibana_version``: keep the versions whose ``conditions.kibana.version`` constraint accepts
  it (the version is parsed leniently, like the ``kibana.version`` query parameter of
  ``/search``); versions without the condition are kept.
* ``latest``: then keep only the newest N versions of each package by semver order.
  Prereleases count as versions (``1.1.0-beta1`` is newer than ``1.0.9``), so a package whose
  newest version is a prerelease keeps it; the filter runs after the Kibana filter, so it keeps
  the newest N *compatible* versions.

``config.yml`` lists ``./packages`` and sets ``package_paths_relative_to_config: true``:
``package-storage serve`` then resolves the path against the config file's folder, so
``serve --config OUT/config.yml`` works from any working directory and after the bundle was
moved. The reference registry ignores that key (it ignores unknown keys) and resolves
``./packages`` against its working directory: run it from inside the bundle.

``public-key.asc`` (its fingerprint is in ``bundle.json`` under ``public_key``) lets the importing
site trust the exporting store: after comparing the fingerprint with the one announced by the
exporting site, ``package-storage keys import OUT/public-key.asc --trusted``; ``import`` then
verifies every signature of every later bundle (:mod:`package_storage.transfer.bundle`).

Delta bundles (``since``: a tag or revision number of the same distribution, the *base*): the
same selection is applied to the base revision and to the exported one, and the bundle holds only
the versions the base selection did not have (or had with other bytes). ``bundle.json`` then has
``kind: "delta"``, ``base`` (distribution, ref, tag, revision, revision digest, the digest and
count of the base selection) and the changes the importer applies after the new versions:
``removes`` (versions of the base that are gone), ``yanks`` and ``unyanks`` (yank state changed).
Every bundle names the digest of its whole selection (``selection_digest``, the content digest of
``(name, version, artifact)``, equal to the revision digest when nothing is filtered out): a store
that imported a full bundle and then each delta in order holds exactly that selection. A full
bundle lists the yanked versions of its selection under ``yanks`` too.

Every file is written to a temporary name in its final folder and renamed into place, so a file
of the bundle is either complete or absent. ``SHA256SUMS`` is written last (an interrupted
export has none, and a forced re-export removes the old one first). Artifacts are copied with
``copy_file_range``/``sendfile`` when the blob store has local files (zero-copy in the kernel,
reflinks on filesystems that support them) or hard-linked with ``link=True``; otherwise they
are streamed from the blob store. Checksums of artifacts and signatures are their blob digests
(the blob store is content-addressed), so nothing is hashed twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from package_storage import __version__
from package_storage.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PackageStorageError,
    VersionError,
)
from package_storage.packages.signing import PublicKey
from package_storage.packages.trees import ZipTree
from package_storage.packages.versions import Constraint, Version
from package_storage.packages.yamlutil import expand_dotted, load_yaml
from package_storage.store.storage.base import (
    ArtifactRecord,
    BlobStore,
    CatalogReader,
    Revision,
    RevisionEntry,
    content_digest,
    format_time,
)

__all__ = [
    "BUNDLE_FORMAT",
    "DeltaBase",
    "ExportReport",
    "ExportedVersion",
    "ProgressCallback",
    "export_bundle",
    "parse_distribution_ref",
]

BUNDLE_FORMAT = "package-storage-bundle/1"
PACKAGES_DIR = "packages"
CONFIG_FILE = "config.yml"
BUNDLE_FILE = "bundle.json"
README_FILE = "README.txt"
PUBLIC_KEY_FILE = "public-key.asc"
SUMS_FILE = "SHA256SUMS"

ProgressCallback = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; phases ``"scan"`` (reading manifests for the Kibana filter)
and ``"copy"`` (writing artifacts)."""

_CHUNK = 1 << 20
COPY_THREADS = 8


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportedVersion:
    """One package version in the bundle."""

    name: str
    version: str
    stage: str
    sha256: str
    size: int
    file: str  # relative to the bundle, e.g. "packages/apache-1.2.3.zip"
    signature_file: str | None = None
    signature_sha256: str | None = None
    yanked: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "stage": self.stage,
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
            "signature": self.signature_file,
            "yanked": self.yanked,
        }


@dataclass(frozen=True, slots=True)
class DeltaBase:
    """The revision a delta bundle applies on top of, and what its selection held."""

    distribution: str
    ref: str
    tag: str | None
    revision: int
    revision_digest: str
    selection_digest: str
    count: int

    def as_json(self) -> dict[str, Any]:
        return {
            "distribution": self.distribution,
            "ref": self.ref,
            "tag": self.tag,
            "revision": self.revision,
            "digest": self.revision_digest,
            "selection_digest": self.selection_digest,
            "count": self.count,
        }


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What :func:`export_bundle` wrote."""

    out: Path
    distribution: str
    revision: int
    revision_digest: str
    tag: str | None
    kibana_version: str | None
    latest: int | None
    in_revision: int  # versions the revision serves
    excluded_by_kibana: int
    excluded_by_latest: int
    exported: tuple[ExportedVersion, ...]
    files: int  # files in the bundle, SHA256SUMS included
    bundle_bytes: int  # total size of those files
    seconds: float
    warnings: tuple[str, ...] = field(default=())
    selection_digest: str = ""
    base: DeltaBase | None = None
    removes: tuple[tuple[str, str], ...] = ()
    yanks: tuple[tuple[str, str], ...] = ()
    unyanks: tuple[tuple[str, str], ...] = ()

    @property
    def versions(self) -> int:
        return len(self.exported)

    @property
    def packages(self) -> int:
        return len({v.name for v in self.exported})

    @property
    def signatures(self) -> int:
        return sum(1 for v in self.exported if v.signature_file)


# --- distribution references -------------------------------------------------------------------


def parse_distribution_ref(ref: str) -> tuple[str, str | None, int | None]:
    """``production`` -> (production, None, None); ``production@8.12.0`` -> tag ``8.12.0``;
    ``production@7`` -> revision 7 (tags are never all digits)."""
    distribution, sep, rest = ref.partition("@")
    if not distribution or (sep and not rest):
        raise InvalidInputError(
            f"distribution {ref!r} is not DISTRIBUTION, DISTRIBUTION@TAG or DISTRIBUTION@REVISION"
        )
    if not sep:
        return distribution, None, None
    if rest.isascii() and rest.isdigit():
        return distribution, None, int(rest)
    return distribution, rest, None


def _resolve(catalog: CatalogReader, ref: str) -> tuple[Revision, str | None]:
    distribution, tag, number = parse_distribution_ref(ref)
    if tag is not None:
        number = catalog.tag(distribution, tag).revision
    if number is not None:
        return catalog.revision(distribution, number), tag
    current = catalog.current_revision(distribution)
    if current is None:
        raise NotFoundError(f"distribution {distribution!r} has no revision to export")
    return current, None


def _resolve_base(catalog: CatalogReader, distribution: str, since: str) -> Revision:
    if not since:
        raise InvalidInputError("--since: give a tag or a revision number of the base")
    _, tag, number = parse_distribution_ref(f"{distribution}@{since}")
    if tag is not None:
        number = catalog.tag(distribution, tag).revision
    assert number is not None
    return catalog.revision(distribution, number)


# --- selection ---------------------------------------------------------------------------------


class _Records:
    """Artifact records, each read from the catalog once per export."""

    def __init__(self, catalog: CatalogReader) -> None:
        self._catalog = catalog
        self._records: dict[str, ArtifactRecord | None] = {}

    def get(self, digest: str) -> ArtifactRecord | None:
        if digest not in self._records:
            self._records[digest] = self._catalog.get_artifact(digest)
        return self._records[digest]


def _constraint_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInputError(f"conditions.kibana.version is {type(value).__name__}, not text")
    return str(value)


def _summary_constraint(record: ArtifactRecord) -> tuple[bool, str | None]:
    """(known, constraint text) from the artifact's manifest summary, when it carries it."""
    summary = record.manifest
    if "kibana_version" in summary:
        return True, _constraint_text(summary["kibana_version"])
    conditions = summary.get("conditions")
    if isinstance(conditions, dict):
        expanded = expand_dotted(conditions)
        kibana = expanded.get("kibana") if isinstance(expanded, dict) else None
        return True, _constraint_text(kibana.get("version") if isinstance(kibana, dict) else None)
    return False, None


def _manifest_constraint(blobs: BlobStore, entry: RevisionEntry) -> str | None:
    """``conditions.kibana.version`` read from the artifact's ``manifest.yml``."""
    location = f"{entry.name}-{entry.version}.zip ({entry.artifact})"
    path = blobs.path_for(entry.artifact)
    tree = (
        ZipTree.open(path)
        if path is not None
        else ZipTree.from_bytes(blobs.get(entry.artifact), location)
    )
    loaded = load_yaml(tree.read("manifest.yml"), path=f"{location}/manifest.yml")
    manifest = expand_dotted(loaded) if isinstance(loaded, dict) else {}
    conditions = manifest.get("conditions")
    kibana = conditions.get("kibana") if isinstance(conditions, dict) else None
    return _constraint_text(kibana.get("version") if isinstance(kibana, dict) else None)


def _kibana_filter(
    catalog: _Records,
    blobs: BlobStore,
    entries: Sequence[RevisionEntry],
    kibana: Version,
    progress: ProgressCallback | None,
    warnings: list[str],
) -> list[RevisionEntry]:
    kept: list[RevisionEntry] = []
    cache: dict[str, bool] = {}  # artifact digest -> compatible
    total = len(entries)
    for done, entry in enumerate(entries, 1):
        ok = cache.get(entry.artifact)
        if ok is None:
            ok = _compatible(catalog, blobs, entry, kibana, warnings)
            cache[entry.artifact] = ok
        if ok:
            kept.append(entry)
        if progress is not None:
            progress("scan", done, total)
    return kept


def _compatible(
    catalog: _Records,
    blobs: BlobStore,
    entry: RevisionEntry,
    kibana: Version,
    warnings: list[str],
) -> bool:
    try:
        record = catalog.get(entry.artifact)
        known, text = _summary_constraint(record) if record is not None else (False, None)
        if not known:
            text = _manifest_constraint(blobs, entry)
        if text is None:
            return True
        return Constraint.parse(text).check(kibana)
    except PackageStorageError as exc:
        warnings.append(
            f"{entry.name}-{entry.version}: left out, its Kibana condition cannot be read: {exc}"
        )
        return False


def _version_key(entry: RevisionEntry) -> tuple[int, Version | str]:
    try:
        return (1, Version.parse_lenient(entry.version))
    except VersionError:
        return (0, entry.version)  # unparsable versions sort below every real one


def _newest(entries: Sequence[RevisionEntry], latest: int) -> list[RevisionEntry]:
    by_name: dict[str, list[RevisionEntry]] = {}
    for entry in entries:
        by_name.setdefault(entry.name, []).append(entry)
    kept: list[RevisionEntry] = []
    for versions in by_name.values():
        versions.sort(key=_version_key, reverse=True)
        kept.extend(versions[:latest])
    kept.sort(key=lambda e: (e.name, _version_key(e)))
    return kept


# --- writing -----------------------------------------------------------------------------------


def _temp_for(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")


def _atomic_write(dest: Path, data: bytes) -> None:
    temp = _temp_for(dest)
    try:
        temp.write_bytes(data)
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _copy_range(src: Path, dest: Path) -> None:
    """Kernel-side copy: ``copy_file_range`` (reflink where supported), else ``sendfile``."""
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is None:
        shutil.copyfile(src, dest)
        return
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        remaining = os.fstat(fin.fileno()).st_size
        try:
            while remaining > 0:
                n = copy_range(fin.fileno(), fout.fileno(), min(remaining, 1 << 30))
                if n == 0:
                    break
                remaining -= n
        except OSError:
            fin.seek(0)
            fout.seek(0)
            fout.truncate()
            shutil.copyfileobj(fin, fout, _CHUNK)


def _stream(src: BinaryIO, dest: Path) -> None:
    with src, open(dest, "wb") as fout:
        shutil.copyfileobj(src, fout, _CHUNK)


def _place_blob(blobs: BlobStore, digest: str, dest: Path, *, link: bool) -> None:
    temp = _temp_for(dest)
    try:
        local = blobs.path_for(digest)
        if local is None:
            _stream(blobs.open(digest), temp)
        elif link:
            try:
                os.link(local, temp)
            except OSError:  # another filesystem, or links not allowed: copy instead
                _copy_range(local, temp)
        else:
            _copy_range(local, temp)
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _prepare_out(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"bundle folder {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ConflictError(f"bundle folder {out} is not empty (use --force to replace it)")
        # An interrupted re-export must not look complete.
        with contextlib.suppress(FileNotFoundError):
            (out / SUMS_FILE).unlink()
    (out / PACKAGES_DIR).mkdir(parents=True, exist_ok=True)


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".part")


def _sums_line(digest: str, rel: str) -> str:
    """One ``sha256sum`` line; names with a backslash or newline use GNU's escaped form."""
    if "\\" in rel or "\n" in rel:
        escaped = rel.replace("\\", "\\\\").replace("\n", "\\n")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {rel}\n"


def _remove_stale(packages: Path, keep: set[str]) -> None:
    """Forced re-export: drop zips and signatures of an earlier bundle that are not kept."""
    for child in packages.iterdir():
        name = child.name
        stale = name.endswith((".zip", ".zip.sig")) or _is_temp(name)
        if stale and name not in keep and (child.is_file() or child.is_symlink()):
            child.unlink()


def _config_text() -> str:
    return (
        "# Elastic Package Registry configuration of this bundle (written by package-storage).\n"
        "#\n"
        "# package-storage serve resolves ./packages against this file's folder\n"
        "# (package_paths_relative_to_config), so it works from any working directory:\n"
        "#   package-storage serve --config /path/to/bundle/config.yml\n"
        "# The reference registry ignores that key and resolves ./packages against its working\n"
        "# directory: run it from inside the bundle folder.\n"
        "package_paths:\n"
        f"  - ./{PACKAGES_DIR}\n"
        "package_paths_relative_to_config: true\n"
        "\n"
        "cache_time.index: 10s\n"
        "cache_time.search: 10m\n"
        "cache_time.categories: 10m\n"
        "cache_time.catch_all: 10m\n"
    )


def _readme_text(
    revision: Revision,
    tag: str | None,
    kibana: str | None,
    n: int,
    signed: bool,
    base: DeltaBase | None = None,
) -> str:
    source = f"{revision.distribution}@{tag}" if tag else f"{revision.distribution}"
    what = f"{n} package version{'s' if n != 1 else ''} of {source}"
    what += f" (revision {revision.number}, digest {revision.digest})"
    if kibana:
        what += f", compatible with Kibana {kibana}"
    if base is not None:
        what += (
            f".\nA delta bundle: only what {base.distribution}@{base.ref} (revision"
            f" {base.revision}) did not have. Import it into a stage that holds that base\n"
            "(its full bundle and the deltas before this one); it cannot be served on its own"
        )
    sig_flag = "" if signed else " -require-package-signatures=false"
    sig_note = (
        "Every package carries its detached signature (.zip.sig).\n"
        if signed
        else "Some packages have no signature (.zip.sig), hence -require-package-signatures=false.\n"
    )
    return (
        "package-storage bundle\n"
        "======================\n\n"
        f"{what}.\n"
        "bundle.json describes the selection; packages/ holds the zips.\n\n"
        "Verify the copy:\n\n"
        f"    cd <this folder> && sha256sum -c {SUMS_FILE}\n\n"
        "Serve it (from any working directory):\n\n"
        f"    package-storage serve --config <this folder>/{CONFIG_FILE}{sig_flag}\n\n"
        "or with the reference registry, from inside this folder:\n\n"
        f"    package-registry -config {CONFIG_FILE}{sig_flag}\n\n"
        f"{sig_note}\n"
        "Import it into another store (the checksums, bundle.json and, when the store trusts\n"
        "keys, every signature are verified first; any difference refuses the whole bundle):\n\n"
        "    package-storage import <this folder> --stage production\n\n"
        "To have the signatures verified, trust the exporting store's key once (after checking\n"
        "its fingerprint, bundle.json public_key):\n\n"
        f"    package-storage keys import <this folder>/{PUBLIC_KEY_FILE} --trusted\n"
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- the export --------------------------------------------------------------------------------


def export_bundle(
    catalog: CatalogReader,
    blobs: BlobStore,
    distribution_ref: str,
    out: Path,
    *,
    kibana_version: str | None,
    latest: int | None,
    force: bool = False,
    link: bool = False,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
    public_key: PublicKey | None = None,
    since: str | None = None,
) -> ExportReport:
    """Write the bundle of ``distribution_ref`` (``production``, ``production@8.12.0``,
    ``production@7``) to ``out``; see the module docstring for the layout and selection.
    ``public_key``: the store's public signing key, written as ``public-key.asc``.
    ``since``: a tag or revision number of the same distribution: write a delta bundle on top
    of that base (see the module docstring).

    Raises ``InvalidInputError`` for a bad reference, Kibana version or ``latest``,
    ``NotFoundError`` for an unknown distribution/tag/revision or a missing blob and
    ``ConflictError`` when ``out`` is not empty and ``force`` is not set.
    """
    started = time.perf_counter()
    if latest is not None and latest < 1:
        raise InvalidInputError(f"--latest {latest}: must be at least 1")
    kibana: Version | None = None
    if kibana_version is not None:
        try:
            kibana = Version.parse_lenient(kibana_version)
        except VersionError as exc:
            raise InvalidInputError(f"Kibana version {kibana_version!r}: {exc}") from None
    revision, tag = _resolve(catalog, distribution_ref)
    entries = catalog.revision_entries(revision.distribution, revision.number)

    warnings: list[str] = []
    records = _Records(catalog)

    def select(rows: Sequence[RevisionEntry]) -> tuple[list[RevisionEntry], int]:
        chosen = list(rows)
        if kibana is not None:
            chosen = _kibana_filter(records, blobs, chosen, kibana, progress, warnings)
        compatible = len(chosen)
        if latest is not None:
            chosen = _newest(chosen, latest)
        else:
            chosen.sort(key=lambda e: (e.name, _version_key(e)))
        return chosen, compatible

    selected, after_kibana = select(entries)
    selection_digest = content_digest((e.name, e.version, e.artifact) for e in selected)
    yanks = tuple((e.name, e.version) for e in selected if e.yanked)
    base: DeltaBase | None = None
    removes: tuple[tuple[str, str], ...] = ()
    unyanks: tuple[tuple[str, str], ...] = ()
    written = selected
    if since is not None:
        base_revision = _resolve_base(catalog, revision.distribution, since)
        if base_revision.number == revision.number:
            raise InvalidInputError(
                f"--since {since}: that is revision {revision.number}, the one exported"
            )
        base_rows, _ = select(
            catalog.revision_entries(base_revision.distribution, base_revision.number)
        )
        old = {(e.name, e.version): e for e in base_rows}
        new = {(e.name, e.version): e for e in selected}
        written = [
            e
            for e in selected
            if (o := old.get((e.name, e.version))) is None or o.artifact != e.artifact
        ]
        removes = tuple(sorted(k for k in old if k not in new))
        yanks = tuple(
            (e.name, e.version)
            for e in selected
            if e.yanked and not ((o := old.get((e.name, e.version))) is not None and o.yanked)
        )
        unyanks = tuple(
            (e.name, e.version)
            for e in selected
            if not e.yanked and (o := old.get((e.name, e.version))) is not None and o.yanked
        )
        base = DeltaBase(
            distribution=base_revision.distribution,
            ref=since,
            tag=None if since.isdigit() else since,
            revision=base_revision.number,
            revision_digest=base_revision.digest,
            selection_digest=content_digest((e.name, e.version, e.artifact) for e in base_rows),
            count=len(base_rows),
        )

    out = Path(out)
    _prepare_out(out, force=force)
    packages_dir = out / PACKAGES_DIR
    exported: list[ExportedVersion] = []
    for entry in written:
        record = records.get(entry.artifact)
        if record is None:
            raise NotFoundError(
                f"{entry.name}-{entry.version}: artifact {entry.artifact} is not in the catalog"
            )
        file = f"{PACKAGES_DIR}/{entry.name}-{entry.version}.zip"
        signature = record.signature_digest
        exported.append(
            ExportedVersion(
                name=entry.name,
                version=entry.version,
                stage=entry.stage,
                sha256=entry.artifact,
                size=record.size,
                file=file,
                signature_file=f"{file}.sig" if signature else None,
                signature_sha256=signature,
                yanked=entry.yanked,
            )
        )
    keep: set[str] = set()
    for v in exported:
        keep.update(Path(f).name for f in (v.file, v.signature_file) if f)

    def place(v: ExportedVersion) -> None:
        _place_blob(blobs, v.sha256, out / v.file, link=link)
        if v.signature_file and v.signature_sha256:
            _place_blob(blobs, v.signature_sha256, out / v.signature_file, link=link)

    # File creation dominates (not bytes): a few threads overlap the filesystem round trips.
    total = len(exported)
    with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
        futures = [pool.submit(place, v) for v in exported]
        try:
            for done, future in enumerate(as_completed(futures), 1):
                future.result()
                if progress is not None:
                    progress("copy", done, total)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    if force:
        _remove_stale(packages_dir, keep)

    created = now or datetime.now(UTC)
    all_signed = all(v.signature_file for v in exported)
    description = {
        "format": BUNDLE_FORMAT,
        "created": format_time(created),
        "server_version": __version__,
        "source": {
            "distribution": revision.distribution,
            "ref": distribution_ref,
            "tag": tag,
            "revision": revision.number,
            "digest": revision.digest,
            "revision_created": format_time(revision.created),
            "revision_server_version": revision.server_version,
        },
        "selection": {
            "kibana_version": kibana_version,
            "latest": latest,
            "in_revision": len(entries),
            "excluded_by_kibana": len(entries) - after_kibana,
            "excluded_by_latest": after_kibana - len(selected),
        },
        "counts": {
            "packages": len({v.name for v in exported}),
            "versions": len(exported),
            "signatures": sum(1 for v in exported if v.signature_file),
        },
        "kind": "full" if base is None else "delta",
        "selection_digest": selection_digest,
        "selection_count": len(selected),
        "base": None if base is None else base.as_json(),
        "removes": [{"name": n, "version": v} for n, v in removes],
        "yanks": [{"name": n, "version": v} for n, v in yanks],
        "unyanks": [{"name": n, "version": v} for n, v in unyanks],
        "packages": [v.as_json() for v in exported],
    }
    if public_key is not None:
        description["public_key"] = {
            "file": PUBLIC_KEY_FILE,
            "fingerprint": public_key.fingerprint,
        }
    texts = {
        CONFIG_FILE: _config_text().encode(),
        BUNDLE_FILE: (json.dumps(description, indent=2, ensure_ascii=False) + "\n").encode(),
        README_FILE: _readme_text(
            revision, tag, kibana_version, len(exported), all_signed, base
        ).encode(),
    }
    if public_key is not None:
        texts[PUBLIC_KEY_FILE] = public_key.armored.encode()
    elif force:
        with contextlib.suppress(FileNotFoundError):
            (out / PUBLIC_KEY_FILE).unlink()  # an earlier export's key is not this bundle's
    for name, data in texts.items():
        _atomic_write(out / name, data)

    sums: dict[str, str] = {name: hashlib.sha256(data).hexdigest() for name, data in texts.items()}
    for v in exported:
        sums[v.file] = v.sha256
        if v.signature_file and v.signature_sha256:
            sums[v.signature_file] = v.signature_sha256
    # Files already in OUT that this export did not write (a forced re-export over a folder
    # with other files) are served or imported too, so they are covered as well.
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and rel != SUMS_FILE and rel not in sums and not _is_temp(path.name):
            sums[rel] = _sha256_file(path)
    sums_text = "".join(_sums_line(sums[rel], rel) for rel in sorted(sums))
    _atomic_write(out / SUMS_FILE, sums_text.encode())

    size = len(sums_text.encode()) + sum((out / rel).stat().st_size for rel in sums)
    return ExportReport(
        out=out,
        distribution=revision.distribution,
        revision=revision.number,
        revision_digest=revision.digest,
        tag=tag,
        kibana_version=kibana_version,
        latest=latest,
        in_revision=len(entries),
        excluded_by_kibana=len(entries) - after_kibana,
        excluded_by_latest=after_kibana - len(selected),
        exported=tuple(exported),
        files=len(sums) + 1,
        bundle_bytes=size,
        seconds=time.perf_counter() - started,
        warnings=tuple(warnings),
        selection_digest=selection_digest,
        base=base,
        removes=removes,
        yanks=yanks,
        unyanks=unyanks,
    )
