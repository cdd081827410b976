"""Fill a stage from an upstream registry that speaks the EPR API (``package-storage mirror``).

How a mirror runs (:func:`mirror`):

1. **Check** the stage: unknown raises NotFoundError, frozen raises PolicyError, before any
   request goes out.
2. **List** what the filters select: ``GET <url>/search?all=true`` with ``kibana.version``,
   ``package`` (one request per name), ``category`` and ``prerelease``; ``latest`` keeps the N
   newest versions of each package. ``<url>`` keeps any path prefix (``/production``).
3. **Compare** with the stage: a version the stage already holds is *present* and never
   downloaded again (that makes a second run cheap: it fetches only what is new).
4. **Download** the missing zips and their ``.sig`` in parallel threads (one shared
   :class:`httpx.Client`), each from ``<url>`` plus the entry's ``download`` and
   ``signature_path`` fields, as Kibana does, into a temporary folder. 5xx, 429 and connection
   errors are retried with exponential backoff (bounded: ``retries`` attempts more); other
   answers fail that version at once. With ``verify_key`` every zip must carry a signature
   that verifies against that key: one that does not is refused (listed, not imported).
5. **Import** what arrived through :func:`~package_storage.transfer.importer.import_sources`
   (the archive-safety gate, validation at ``validation``, the stage's overwrite rule, the
   store's trusted keys), recorded as ``mirror`` events whose detail names the upstream.

Failed downloads and refused packages do not stop the others; they are listed in the report
(:attr:`MirrorReport.failed`, :attr:`MirrorReport.rejected`) and the command exits 1. What was
recorded stays recorded: running the same mirror again fetches only what is still missing.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from package_storage.errors import InvalidInputError, PackageStorageError, UpstreamError
from package_storage.packages.signing import PublicKey, verify_detached
from package_storage.packages.versions import sort_key_for
from package_storage.store.keyring import StoreKeyring
from package_storage.store.service import (
    MIRROR_ACTION,
    StoreService,
    ValidationLevel,
    check_import,
)
from package_storage.transfer.importer import (
    ImportOptions,
    ImportProgress,
    ImportReport,
    ImportSource,
    import_sources,
)

__all__ = [
    "DownloadProgress",
    "MirrorFilter",
    "MirrorOptions",
    "MirrorReport",
    "RemoteVersion",
    "list_upstream",
    "mirror",
]

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class MirrorFilter:
    """What to select upstream (the parameters of ``/search``)."""

    kibana_version: str | None = None
    packages: tuple[str, ...] = ()
    category: str | None = None
    prerelease: bool = False
    latest: int | None = None  # the N newest versions of each package; None: all


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    validation: ValidationLevel = "load"
    workers: int = 8  # parallel downloads
    retries: int = 4  # attempts after the first, for 5xx/429/connection errors
    backoff: float = 0.5  # seconds before the first retry; doubled each time (plus jitter)
    timeout: float = 60.0
    verify_key: PublicKey | None = None
    dry_run: bool = False
    sign: bool = True  # sign what arrives unsigned with the store's key (as import does)


@dataclass(frozen=True, slots=True)
class RemoteVersion:
    """One version upstream: its name, version and the URLs of its zip and signature."""

    name: str
    version: str
    url: str
    signature_url: str | None


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    done: int
    total: int
    bytes: int
    failed: int


@dataclass
class MirrorReport:
    """What a mirror did: ``selected`` upstream, ``present`` already in the stage, ``new``
    (recorded now), ``failed`` downloads and ``rejected`` packages, each with its reason."""

    upstream: str
    stage: str
    selected: list[RemoteVersion] = field(default_factory=list)
    present: list[RemoteVersion] = field(default_factory=list)
    to_fetch: list[RemoteVersion] = field(default_factory=list)
    failed: list[tuple[RemoteVersion, str]] = field(default_factory=list)
    refused: list[tuple[RemoteVersion, str]] = field(default_factory=list)  # signature
    imported: ImportReport | None = None
    downloaded_bytes: int = 0
    download_seconds: float = 0.0
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def new(self) -> int:
        return len(self.imported.imported) if self.imported is not None else 0

    @property
    def ok(self) -> bool:
        rejected = self.imported.rejected if self.imported is not None else []
        return not (self.failed or self.refused or rejected)


# --- HTTP ------------------------------------------------------------------------------------


def _base(url: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError(f"upstream {url!r} is not an http:// or https:// URL")
    return url.rstrip("/")


class _Fetcher:
    """GET with bounded retries and exponential backoff on 5xx, 429 and connection errors."""

    def __init__(self, client: httpx.Client, options: MirrorOptions) -> None:
        self._client = client
        self._options = options

    def _wait(self, attempt: int, response: httpx.Response | None) -> None:
        delay = self._options.backoff * (2**attempt) * (1 + random.random() / 4)
        if response is not None:
            after = response.headers.get("retry-after", "")
            if after.isdigit():
                delay = max(delay, min(float(after), 30.0))
        time.sleep(delay)

    def get(self, url: str, count: Callable[[int], None] | None = None) -> bytes:
        """The body of ``url`` (``count`` is told the size of every chunk received)."""
        last = ""
        for attempt in range(self._options.retries + 1):
            response: httpx.Response | None = None
            try:
                with self._client.stream("GET", url) as response:
                    if response.status_code in _RETRY_STATUS:
                        last = f"HTTP {response.status_code}"
                    elif response.status_code != 200:
                        raise UpstreamError(f"{url}: HTTP {response.status_code}")
                    else:
                        chunks: list[bytes] = []
                        for chunk in response.iter_bytes(_CHUNK):
                            chunks.append(chunk)
                            if count is not None:
                                count(len(chunk))
                        return b"".join(chunks)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                response = None
            if attempt < self._options.retries:
                self._wait(attempt, response)
        tries = self._options.retries + 1
        raise UpstreamError(f"{url}: {last} (gave up after {tries} attempts)")


def _search_url(base: str, filters: MirrorFilter, package: str | None) -> str:
    params = [("all", "true")]
    if filters.kibana_version:
        params.append(("kibana.version", filters.kibana_version))
    if package:
        params.append(("package", package))
    if filters.category:
        params.append(("category", filters.category))
    if filters.prerelease:
        params.append(("prerelease", "true"))
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
    return f"{base}/search?{query}"


def _entries(base: str, body: bytes, url: str) -> list[RemoteVersion]:
    import json

    try:
        data: Any = json.loads(body)
    except ValueError:
        raise UpstreamError(f"{url}: the answer is not JSON") from None
    if not isinstance(data, list):
        raise UpstreamError(f"{url}: the answer is not a list of packages")
    found: list[RemoteVersion] = []
    for entry in data:
        if not isinstance(entry, dict):
            raise UpstreamError(f"{url}: an entry is not an object")
        name, version, download = entry.get("name"), entry.get("version"), entry.get("download")
        if not (isinstance(name, str) and isinstance(version, str) and isinstance(download, str)):
            raise UpstreamError(f"{url}: an entry lacks name, version or download")
        if not download.startswith("/"):
            raise UpstreamError(f"{url}: {name!r} {version!r}: download {download!r} is not a path")
        sig = entry.get("signature_path")
        sig_url = base + sig if isinstance(sig, str) and sig.startswith("/") else None
        found.append(RemoteVersion(name, version, base + download, sig_url))
    return found


def _select(found: Iterable[RemoteVersion], latest: int | None) -> list[RemoteVersion]:
    by_name: dict[str, dict[str, RemoteVersion]] = {}
    for v in found:
        by_name.setdefault(v.name, {}).setdefault(v.version, v)
    selected: list[RemoteVersion] = []
    for name in sorted(by_name):
        versions = sorted(by_name[name].values(), key=lambda v: sort_key_for(v.version))
        if latest is not None:
            versions = versions[-latest:] if latest > 0 else []
        selected.extend(versions)
    return selected


def list_upstream(
    client: httpx.Client, url: str, filters: MirrorFilter, options: MirrorOptions | None = None
) -> list[RemoteVersion]:
    """The versions the filters select upstream, by name then version (oldest first)."""
    base = _base(url)
    fetch = _Fetcher(client, options or MirrorOptions())
    found: list[RemoteVersion] = []
    for package in filters.packages or (None,):
        search = _search_url(base, filters, package)
        found.extend(_entries(base, fetch.get(search), search))
    return _select(found, filters.latest)


# --- downloading -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Downloaded:
    remote: RemoteVersion
    source: ImportSource | None
    error: str = ""
    refused: bool = False
    size: int = 0


def _download(
    fetch: _Fetcher,
    remote: RemoteVersion,
    folder: Path,
    stage: str,
    options: MirrorOptions,
    count: Callable[[int], None],
) -> _Downloaded:
    stem = f"{remote.name}-{remote.version}.zip"
    zip_path = folder / stem
    sig_path = folder / (stem + ".sig")
    try:
        data = fetch.get(remote.url, count)  # a retry mid-body starts the body again
        size = len(data)
        zip_path.write_bytes(data)
        signature = None
        if remote.signature_url is not None:
            signature = fetch.get(remote.signature_url)
            sig_path.write_bytes(signature)
    except UpstreamError as exc:
        return _Downloaded(remote, None, exc.message)
    except OSError as exc:
        return _Downloaded(remote, None, f"cannot write {zip_path}: {exc.strerror or exc}")
    if options.verify_key is not None:
        reason = _verify(options.verify_key, zip_path, signature)
        if reason:
            return _Downloaded(remote, None, reason, refused=True, size=size)
    source = ImportSource(
        stage,
        "zip",
        remote.url,
        remote.name,
        remote.version,
        path=str(zip_path),
        signature_path=str(sig_path) if signature is not None else None,
    )
    return _Downloaded(remote, source, size=size)


def _verify(key: PublicKey, zip_path: Path, signature: bytes | None) -> str:
    """Empty when the signature verifies against ``key``, else why not (one line)."""
    if signature is None:
        return "signature refused: the upstream has no signature for it (--verify-key)"
    try:
        result = verify_detached([key], zip_path.read_bytes(), signature)
    except PackageStorageError as exc:
        return f"signature refused: {exc.message}"
    return "" if result.ok else f"signature refused: {result.reason}"


# --- the mirror ------------------------------------------------------------------------------


def mirror(
    service: StoreService,
    url: str,
    stage: str,
    filters: MirrorFilter | None = None,
    options: MirrorOptions | None = None,
    *,
    keyring: StoreKeyring | None = None,
    client: httpx.Client | None = None,
    on_listed: Callable[[MirrorReport], None] | None = None,
    download_progress: Callable[[DownloadProgress], None] | None = None,
    import_progress: Callable[[ImportProgress], None] | None = None,
) -> MirrorReport:
    """Mirror ``url`` into ``stage`` (see the module docstring)."""
    started = time.perf_counter()
    filters = filters or MirrorFilter()
    opts = options or MirrorOptions()
    if opts.workers < 1:
        raise InvalidInputError(f"workers {opts.workers} must be at least 1")
    if filters.latest is not None and filters.latest < 1:
        raise InvalidInputError(f"--latest {filters.latest} must be at least 1")
    base = _base(url)
    check_import(service.catalog.stages(), stage)  # unknown or frozen: before any request
    report = MirrorReport(upstream=base, stage=stage, dry_run=opts.dry_run)
    own = client is None
    http = client or httpx.Client(
        timeout=opts.timeout,
        follow_redirects=True,
        limits=httpx.Limits(max_connections=opts.workers, max_keepalive_connections=opts.workers),
        headers={"user-agent": "package-storage-mirror"},
    )
    try:
        report.selected = list_upstream(http, base, filters, opts)
        held = {(e.name, e.version) for e in service.catalog.entries(stage)}
        for remote in report.selected:
            target = report.present if (remote.name, remote.version) in held else report.to_fetch
            target.append(remote)
        if on_listed is not None:
            on_listed(report)
        if opts.dry_run or not report.to_fetch:
            report.seconds = time.perf_counter() - started
            return report
        with tempfile.TemporaryDirectory(prefix="package-storage-mirror-") as tmp:
            sources = _download_all(http, report, Path(tmp), opts, download_progress)
            if sources:
                report.imported = import_sources(
                    service,
                    sources,
                    options=ImportOptions(
                        on_invalid="report",
                        validation=opts.validation,
                        sign=opts.sign,
                        action=MIRROR_ACTION,
                        detail={"upstream": base},
                    ),
                    keyring=keyring,
                    progress=import_progress,
                )
    finally:
        if own:
            http.close()
    report.seconds = time.perf_counter() - started
    return report


def _download_all(
    http: httpx.Client,
    report: MirrorReport,
    folder: Path,
    opts: MirrorOptions,
    progress: Callable[[DownloadProgress], None] | None,
) -> list[ImportSource]:
    fetch = _Fetcher(http, opts)
    lock = threading.Lock()
    state = {"bytes": 0, "done": 0, "failed": 0}
    total = len(report.to_fetch)

    def tell() -> None:
        if progress is not None:
            progress(DownloadProgress(state["done"], total, state["bytes"], state["failed"]))

    def count(n: int) -> None:
        with lock:
            state["bytes"] += n
            tell()

    def one(remote: RemoteVersion) -> _Downloaded:
        result = _download(fetch, remote, folder, report.stage, opts, count)
        with lock:
            state["done"] += 1
            state["failed"] += 0 if result.source is not None else 1
            tell()
        return result

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=opts.workers, thread_name_prefix="mirror") as pool:
        results: Sequence[_Downloaded] = list(pool.map(one, report.to_fetch))
    report.download_seconds = time.perf_counter() - t0
    report.downloaded_bytes = state["bytes"]
    sources: list[ImportSource] = []
    for r in results:
        if r.source is not None:
            sources.append(r.source)
        elif r.refused:
            report.refused.append((r.remote, r.error))
        else:
            report.failed.append((r.remote, r.error))
    return sources
