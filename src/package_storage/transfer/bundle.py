"""Verifying an export bundle before anything of it is imported.

A bundle (written by :mod:`package_storage.transfer.export`) is accepted only when it is exactly
what its exporter wrote; otherwise the whole bundle is refused (nothing imported, the store
unchanged) with one line naming the file and a stable rule code::

    BUNDLE/packages/apache-1.2.3.zip: sha256 differs from SHA256SUMS [bundle-checksum-mismatch]

Checks, in this order (the first failure is reported):

1. ``SHA256SUMS`` exists, parses (``sha256sum`` format, GNU escapes), names only clean paths
   inside the bundle, each once [``bundle-sums-missing``, ``bundle-sums-invalid``].
2. The files of the bundle are exactly the files listed: nothing missing, nothing extra, no
   symbolic link, no FIFO or device [``bundle-file-missing``, ``bundle-file-unlisted``,
   ``bundle-file-unsafe``].
3. Every file has the listed sha256 [``bundle-checksum-mismatch``].
4. ``bundle.json`` is listed, is this format, and agrees with the files: every package's zip
   and ``.sig`` are listed with the same sha256 and size, and every zip or ``.sig`` of the
   bundle is described by it; the counts and the public key's fingerprint agree
   [``bundle-json-missing``, ``bundle-json-invalid``, ``bundle-json-mismatch``].
5. When the store has trusted keys, every package carries a ``.sig`` that verifies against
   them (or the store's own signing key) [``bundle-signature-missing``,
   ``bundle-signature-refused``]. Checksums only prove the bundle is intact; signatures prove
   who made it.

6. The changes a bundle carries (``kind``, ``base``, ``removes``, ``yanks``, ``unyanks``,
   ``selection_digest``) are well formed; a delta names its base (distribution, revision,
   revision digest, selection digest); a full bundle's ``selection_digest`` is the content
   digest of its packages; nothing is both added and removed [``bundle-json-invalid``,
   ``bundle-json-mismatch``]. Bundles without these keys (older exports) are full bundles.
   Whether the importing stage holds a delta's base is checked by
   :mod:`package_storage.transfer.delta`.

A folder is a bundle when it holds ``SHA256SUMS`` or ``bundle.json`` (or is the ``packages/``
of such a folder). Other folders (a package-storage checkout, a folder of zips) are not
checked here.

The bundle carries its store's public key (``public-key.asc``, listed in both files) so that a
site can trust it: compare its fingerprint (``bundle.json`` ``public_key.fingerprint``) with the
one the exporting site announced, then ``package-storage keys import BUNDLE/public-key.asc
--trusted``; from then on every bundle signed with that key verifies, and any other is refused.
The key in a bundle is never trusted automatically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from package_storage.errors import BundleError, PackageStorageError, SignatureError
from package_storage.packages.signing import load_public_key
from package_storage.store.keyring import StoreKeyring, check_imported_signature
from package_storage.store.storage.base import content_digest

__all__ = [
    "BUNDLE_FILE",
    "PUBLIC_KEY_FILE",
    "SUMS_FILE",
    "BundleBase",
    "BundleChanges",
    "BundleCheck",
    "bundle_root",
    "check_bundle",
    "parse_sums",
]

SUMS_FILE = "SHA256SUMS"
BUNDLE_FILE = "bundle.json"
PUBLIC_KEY_FILE = "public-key.asc"
PACKAGES_DIR = "packages"
BUNDLE_FORMAT = "package-storage-bundle/1"

MAX_SUMS_BYTES = 64 << 20  # 64 MiB: some 500,000 lines
MAX_JSON_BYTES = 256 << 20
MAX_KEY_BYTES = 1 << 20
HASH_THREADS = 4
_CHUNK = 1 << 20

_SUMS_LINE = re.compile(r"(\\?)([0-9a-fA-F]{64}) [ *](.+)")


@dataclass(frozen=True, slots=True)
class BundleBase:
    """The revision a delta bundle applies on top of."""

    distribution: str
    ref: str
    revision: int
    revision_digest: str
    selection_digest: str

    @property
    def label(self) -> str:
        return f"{self.distribution}@{self.ref} (revision {self.revision})"


@dataclass(frozen=True, slots=True)
class BundleChanges:
    """What importing the bundle does besides adding its packages: the base it needs (None: a
    full bundle), the versions it removes, yanks and unyanks, and the digest of the selection
    the stage holds afterwards (empty for an older bundle that does not name it)."""

    base: BundleBase | None
    selection_digest: str
    removes: tuple[tuple[str, str], ...] = ()
    yanks: tuple[tuple[str, str], ...] = ()
    unyanks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BundleCheck:
    """A bundle that verified: its folder, the sha256 of every file (relative POSIX path ->
    digest), whether its signatures were verified against trusted keys and its changes."""

    root: Path
    sums: Mapping[str, str]
    signatures_verified: bool
    changes: BundleChanges = BundleChanges(None, "")

    def digest_of(self, path: str | os.PathLike[str]) -> str | None:
        """The verified sha256 of a file of the bundle given by its path (None: not in it)."""
        try:
            rel = Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return None
        return self.sums.get(rel)


def _refuse(where: Path | str, message: str, rule: str) -> BundleError:
    return BundleError(f"{where}: {message}", rule=rule)


def bundle_root(source: Path) -> Path | None:
    """The bundle folder ``source`` is or is the ``packages/`` of; None: not a bundle."""
    source = Path(source)
    for candidate in (source, source.parent if source.name == PACKAGES_DIR else None):
        if candidate is None:
            continue
        if any(os.path.lexists(candidate / name) for name in (SUMS_FILE, BUNDLE_FILE)):
            return candidate
    return None


def _clean(rel: str) -> bool:
    if not rel or rel.startswith("/") or "\\" in rel or "\x00" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def _unescape(text: str) -> str | None:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt == "\\":
                out.append("\\")
            elif nxt == "n":
                out.append("\n")
            else:
                return None
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_sums(text: str, where: str = SUMS_FILE) -> dict[str, str]:
    """``sha256sum`` output -> {relative path: lower-case digest}; BundleError naming the line
    for anything else (bad syntax, unclean or repeated paths, ``SHA256SUMS`` itself)."""
    sums: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        match = _SUMS_LINE.fullmatch(line)
        rel = None
        if match is not None:
            escaped, digest, name = match.groups()
            rel = _unescape(name) if escaped else name
        if match is None or rel is None:
            raise _refuse(where, f"line {number} is not '<sha256>  <file>'", "bundle-sums-invalid")
        if not _clean(rel) or rel == SUMS_FILE:
            raise _refuse(where, f"line {number} names {rel!r}", "bundle-sums-invalid")
        if rel in sums:
            raise _refuse(where, f"line {number} lists {rel!r} again", "bundle-sums-invalid")
        sums[rel] = digest.lower()
    return sums


def _read_limited(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise _refuse(path, f"larger than {limit} bytes", "bundle-file-unsafe")
    return data


def _files(root: Path) -> dict[str, int]:
    """Every regular file below ``root`` (relative path -> size); refuses anything else."""
    found: dict[str, int] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            children = list(os.scandir(folder))
        except OSError as exc:
            raise _refuse(
                folder, f"cannot be read: {exc.strerror or exc}", "bundle-file-unsafe"
            ) from None
        for child in children:
            path = Path(child.path)
            try:
                st = os.lstat(path)
            except OSError as exc:
                raise _refuse(
                    path, f"cannot be read: {exc.strerror or exc}", "bundle-file-unsafe"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                stack.append(path)
            elif stat.S_ISREG(st.st_mode):
                found[path.relative_to(root).as_posix()] = st.st_size
            else:
                kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
                raise _refuse(path, f"is {kind}", "bundle-file-unsafe")
    return found


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _check_files(root: Path, sums: Mapping[str, str]) -> dict[str, int]:
    files = _files(root)
    files.pop(SUMS_FILE, None)
    for rel in sorted(sums):
        if rel not in files:
            raise _refuse(root / rel, f"listed in {SUMS_FILE} but missing", "bundle-file-missing")
    for rel in sorted(files):
        if rel not in sums:
            raise _refuse(root / rel, f"not listed in {SUMS_FILE}", "bundle-file-unlisted")
    order = sorted(sums)
    try:
        with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
            digests = list(pool.map(lambda rel: _sha256(root / rel), order))
    except OSError as exc:
        where = exc.filename or root
        raise _refuse(
            where, f"cannot be read: {exc.strerror or exc}", "bundle-file-unsafe"
        ) from None
    for rel, digest in zip(order, digests, strict=True):
        if digest != sums[rel]:
            raise _refuse(
                root / rel, f"sha256 differs from {SUMS_FILE}", "bundle-checksum-mismatch"
            )
    return files


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _check_description(
    root: Path, sums: Mapping[str, str], sizes: Mapping[str, int]
) -> tuple[list[tuple[str, str | None]], BundleChanges]:
    """(zip, signature or None) of every package bundle.json describes, checked against the
    files; BundleError naming bundle.json (or the undescribed file) for any disagreement."""
    where = root / BUNDLE_FILE
    if BUNDLE_FILE not in sums:
        raise _refuse(
            where, f"missing (every bundle has one, listed in {SUMS_FILE})", "bundle-json-missing"
        )
    try:
        description = json.loads(_read_limited(where, MAX_JSON_BYTES))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _refuse(where, f"is not JSON: {exc}", "bundle-json-invalid") from None
    if not isinstance(description, dict) or description.get("format") != BUNDLE_FORMAT:
        raise _refuse(where, f"is not a {BUNDLE_FORMAT} description", "bundle-json-invalid")
    packages = description.get("packages")
    if not isinstance(packages, list):
        raise _refuse(where, "has no packages list", "bundle-json-invalid")

    def mismatch(message: str) -> BundleError:
        return _refuse(where, message, "bundle-json-mismatch")

    described: list[tuple[str, str | None]] = []
    keys: list[tuple[str, str, str]] = []
    covered: set[str] = set()
    for number, item in enumerate(packages, 1):
        if not isinstance(item, dict):
            raise _refuse(where, f"package {number} is not an object", "bundle-json-invalid")
        file, sha, signature = (
            _text(item.get("file")),
            _text(item.get("sha256")),
            item.get("signature"),
        )
        size = item.get("size")
        if (
            file is None
            or sha is None
            or not isinstance(size, int)
            or not (signature is None or isinstance(signature, str))
        ):
            raise _refuse(
                where,
                f"package {number} lacks file, sha256, size or signature",
                "bundle-json-invalid",
            )
        if file not in sums:
            raise mismatch(f"describes {file}, which the bundle does not hold")
        if sums[file] != sha.lower():
            raise mismatch(f"gives {file} another sha256 than {SUMS_FILE}")
        if sizes.get(file) != size:
            raise mismatch(f"gives {file} another size ({size}) than it has ({sizes.get(file)})")
        if signature is not None and signature not in sums:
            raise mismatch(f"describes {signature}, which the bundle does not hold")
        if file in covered or (signature is not None and signature in covered):
            raise mismatch(f"describes {file} twice")
        covered.add(file)
        if signature is not None:
            covered.add(signature)
        described.append((file, signature))
        name, version = _text(item.get("name")), _text(item.get("version"))
        if name is not None and version is not None:
            keys.append((name, version, sha.lower()))
    for rel in sorted(sums):
        if rel.endswith((".zip", ".zip.sig")) and rel not in covered:
            raise _refuse(root / rel, f"not described in {BUNDLE_FILE}", "bundle-json-mismatch")
    counts = description.get("counts")
    if isinstance(counts, dict):
        signed = sum(1 for _, sig in described if sig is not None)
        if counts.get("versions") != len(described) or counts.get("signatures") != signed:
            raise mismatch("counts differ from its packages list")
    key = description.get("public_key")
    if key is not None:
        _check_key(root, where, sums, key)
    return described, _check_changes(where, description, keys)


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _pairs(where: Path, description: Mapping[str, Any], field: str) -> tuple[tuple[str, str], ...]:
    items = description.get(field, [])
    if not isinstance(items, list):
        raise _refuse(where, f"{field} is not a list", "bundle-json-invalid")
    pairs: list[tuple[str, str]] = []
    for number, item in enumerate(items, 1):
        name = _text(item.get("name")) if isinstance(item, dict) else None
        version = _text(item.get("version")) if isinstance(item, dict) else None
        if name is None or version is None:
            raise _refuse(
                where, f"{field} item {number} lacks name or version", "bundle-json-invalid"
            )
        pairs.append((name, version))
    return tuple(pairs)


def _digest_field(where: Path, data: Mapping[str, Any], field: str, what: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _refuse(where, f"{what} is not a sha256 hex digest", "bundle-json-invalid")
    return value


def _check_changes(
    where: Path, description: Mapping[str, Any], keys: list[tuple[str, str, str]]
) -> BundleChanges:
    kind = description.get("kind", "full")
    if kind not in ("full", "delta"):
        raise _refuse(where, f"kind {kind!r} is neither full nor delta", "bundle-json-invalid")
    removes = _pairs(where, description, "removes")
    yanks = _pairs(where, description, "yanks")
    unyanks = _pairs(where, description, "unyanks")
    added = {(n, v) for n, v, _ in keys}
    for name, version in removes:
        if (name, version) in added:
            raise _refuse(where, f"both adds and removes {name}-{version}", "bundle-json-mismatch")
    selection = ""
    if "selection_digest" in description:
        selection = _digest_field(where, description, "selection_digest", "selection_digest")
    base: BundleBase | None = None
    raw = description.get("base")
    if kind == "delta":
        if not isinstance(raw, dict):
            raise _refuse(where, "a delta bundle without its base", "bundle-json-invalid")
        distribution, ref, revision = (
            _text(raw.get("distribution")),
            _text(raw.get("ref")),
            raw.get("revision"),
        )
        if distribution is None or ref is None or not isinstance(revision, int):
            raise _refuse(where, "base lacks distribution, ref or revision", "bundle-json-invalid")
        base = BundleBase(
            distribution=distribution,
            ref=ref,
            revision=revision,
            revision_digest=_digest_field(where, raw, "digest", "base digest"),
            selection_digest=_digest_field(where, raw, "selection_digest", "base selection_digest"),
        )
        if not selection:
            raise _refuse(where, "a delta bundle without selection_digest", "bundle-json-invalid")
    else:
        if raw is not None:
            raise _refuse(where, "a full bundle names a base", "bundle-json-invalid")
        if removes or unyanks:
            raise _refuse(where, "a full bundle removes or unyanks", "bundle-json-invalid")
        if selection and content_digest(keys) != selection:
            raise _refuse(
                where,
                "selection_digest differs from the digest of its packages",
                "bundle-json-mismatch",
            )
    return BundleChanges(base, selection, removes, yanks, unyanks)


def _check_key(root: Path, where: Path, sums: Mapping[str, str], key: Any) -> None:
    file = _text(key.get("file")) if isinstance(key, dict) else None
    fingerprint = _text(key.get("fingerprint")) if isinstance(key, dict) else None
    if file is None or fingerprint is None:
        raise _refuse(where, "public_key lacks file or fingerprint", "bundle-json-invalid")
    if file not in sums:
        raise _refuse(
            where, f"describes {file}, which the bundle does not hold", "bundle-json-mismatch"
        )
    try:
        public = load_public_key(_read_limited(root / file, MAX_KEY_BYTES))
    except PackageStorageError as exc:
        raise _refuse(root / file, f"is not a public key: {exc}", "bundle-json-mismatch") from None
    if public.fingerprint != fingerprint.replace(" ", "").upper():
        raise _refuse(
            where, f"gives {file} another fingerprint than the key has", "bundle-json-mismatch"
        )


def _check_signatures(
    root: Path, keyring: StoreKeyring, described: list[tuple[str, str | None]]
) -> None:
    for file, signature in described:
        if signature is None:
            raise _refuse(
                root / file,
                "has no signature, and this store trusts signed packages only",
                "bundle-signature-missing",
            )
        data = (root / file).read_bytes()
        sig = (root / signature).read_bytes()
        try:
            check_imported_signature(keyring, data, sig, label=str(root / signature))
        except SignatureError as exc:
            raise BundleError(exc.message, rule="bundle-signature-refused") from None


def check_bundle(source: Path, keyring: StoreKeyring | None = None) -> BundleCheck | None:
    """Verify the bundle ``source`` is (or is the ``packages/`` of) before it is imported; see
    the module docstring. None when ``source`` is not a bundle; BundleError when it does not
    verify. Signatures are checked when ``keyring`` has trusted keys."""
    root = bundle_root(source)
    if root is None:
        return None
    sums_path = root / SUMS_FILE
    if not os.path.lexists(sums_path):
        raise _refuse(
            sums_path, "missing: a bundle lists its files with their sha256", "bundle-sums-missing"
        )
    if not stat.S_ISREG(os.lstat(sums_path).st_mode):
        raise _refuse(sums_path, "is not a regular file", "bundle-file-unsafe")
    try:
        text = _read_limited(sums_path, MAX_SUMS_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(sums_path, "is not UTF-8 text", "bundle-sums-invalid") from None
    sums = parse_sums(text, str(sums_path))
    sizes = _check_files(root, sums)
    described, changes = _check_description(root, sums, sizes)
    trusted = keyring is not None and bool(keyring.trusted_keys())
    if trusted:
        assert keyring is not None
        _check_signatures(root, keyring, described)
    return BundleCheck(root=root, sums=dict(sums), signatures_verified=trusted, changes=changes)
