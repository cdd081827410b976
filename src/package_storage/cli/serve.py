"""``package-storage serve``: a drop-in replacement for the reference registry binary.

Flags are the reference's (spec §9.2), in any of the Go spellings: ``-address x``,
``-address=x``, ``--address x``, ``--address=x``; booleans as ``-dry-run``, ``-dry-run=false``.
Each flag also comes from its ``EPR_*`` environment variable (command line > environment >
default). Startup is blocking: the listener opens only after every package loaded, so a 200 from
``/health`` means ready.

Exit status: 0 after a clean stop (SIGTERM/SIGINT) or a successful ``-dry-run``; 1 for startup
errors (one clear log line each); 2 for usage errors.

The steps are separate functions (:func:`load_settings`, :func:`load_registry`,
:func:`build_app`) so that another mode (for example serving a staged store) can reuse them.

Store mode. ``--store DIR`` (or ``PACKAGE_STORAGE_STORE``) serves a package store instead of the
config file's ``package_paths``: ``/{distribution}/...``, ``/{distribution}@{tag}/...``,
``/{distribution}@{revision}/...`` and the default distribution (``--default-distribution``,
``PACKAGE_STORAGE_DEFAULT_DISTRIBUTION``, ``production``) un-prefixed. Changes made by other
processes are picked up at once from file-change events on the catalog, with polling as the
fallback (``--store-watch/--no-store-watch``, ``--store-poll SECONDS``; see ``store_registry.py``). The other flags
apply as in EPR mode (address, TLS, metrics, logs, cache times from the config file when it
exists). :func:`serve_store` is the same as a function (the ``demo`` command uses it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from package_storage import EPR_COMPAT_VERSION
from package_storage.cli.serve_manage import (
    ManageOptions,
    manage_listener,
    manage_options,
    parse_manage_options,
)
from package_storage.errors import ConfigError, PackageStorageError
from package_storage.logs import FATAL, SERVICE_NAME, flush_logs, get_logger, setup_logging
from package_storage.packages.model import Package
from package_storage.registry.config import (
    DEFAULT_PROXY_TO,
    FLAGS,
    FLAGS_BY_NAME,
    FlagOrigin,
    FlagValueError,
    Settings,
    check_flags,
    check_settings,
    describe,
    load_config_file,
    settings_from_flags,
)

log = get_logger()

# While packages load, a progress line every this many seconds.
PROGRESS_SECONDS = 5.0


# --- Go-style flags ----------------------------------------------------------------------------


def normalize_go_flags(args: Sequence[str]) -> list[str]:
    """Rewrite Go ``flag`` spellings into click's: ``-name[=v]`` -> ``--name[=v]``.

    Booleans without a value become ``--name=true`` (Go: ``-name`` alone sets true and never
    consumes the next argument). A non-boolean flag without ``=`` takes the next argument as is,
    even if it starts with ``-``. ``--`` ends the flags.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            out.append(arg)
            out.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            out.append(arg)
            continue
        body = arg[2:] if arg.startswith("--") else arg[1:]
        name, eq, value = body.partition("=")
        if name in ("h", "help") and not eq:
            out.append("--help")
            continue
        flag = FLAGS_BY_NAME.get(name)
        if flag is None:
            out.append(arg if arg.startswith("--") or len(name) == 1 else "-" + arg)
            continue
        if eq:
            out.append(f"--{name}={value}")
        elif flag.is_bool:
            out.append(f"--{name}=true")
        elif i < len(args):
            out.append(f"--{name}={args[i]}")
            i += 1
        else:
            out.append(f"--{name}")  # click reports the missing value
    return out


class GoFlagCommand(click.Command):
    """A click command that also accepts the Go spellings of its long options."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalize_go_flags(args))


def _flag_options(func: Any) -> Any:
    for flag in reversed(FLAGS):
        kwargs: dict[str, Any] = {
            "default": None,
            "help": f"{flag.help} [env {flag.env}]",
            "metavar": "BOOL" if flag.is_bool else "VALUE",
        }
        if flag.is_bool:
            kwargs["is_flag"] = False
            kwargs["flag_value"] = "true"
        func = click.option(f"--{flag.name}", flag.attr, type=str, **kwargs)(func)
    return func


# --- steps -------------------------------------------------------------------------------------


class StartupError(Exception):
    """Ends the command with ``code`` after the message has been reported."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _plain_fatal(message: str) -> NoReturn:
    """Errors before logging is set up: plain lines on stderr, exit 1 (reference: log.Fatal)."""
    for line in message.splitlines() or [message]:
        click.echo(line, err=True)
    raise StartupError(1)


def _fatal(message: str) -> NoReturn:
    log.log(FATAL, message)
    raise StartupError(1)


def load_settings(
    command_line: Mapping[str, str | None],
    environ: Mapping[str, str],
    *,
    store: str | None = None,
) -> Settings:
    """Flags + environment + config file, with the reference's checks in its order.

    With ``store`` (store mode) the config file is optional unless named explicitly
    (``-config`` / ``EPR_CONFIG``): it only contributes cache times there.
    """
    try:
        settings = settings_from_flags(command_line, environ)
    except FlagValueError as exc:
        if exc.origin is FlagOrigin.COMMAND_LINE:
            raise click.UsageError(exc.message) from None
        _plain_fatal(exc.message)
    try:
        check_flags_before_version(settings)
    except ConfigError as exc:
        _plain_fatal(exc.message)
    if settings.print_version:
        click.echo(f"Elastic Package Registry version {EPR_COMPAT_VERSION}")
        raise StartupError(0)
    try:
        check_flags(settings)
    except ConfigError as exc:
        _plain_fatal(exc.message)
    setup_logging(
        settings.log_level,
        settings.log_type,
        service_name=environ.get("ELASTIC_APM_SERVICE_NAME") or SERVICE_NAME,
    )
    explicit_config = command_line.get("config") is not None or bool(environ.get("EPR_CONFIG"))
    try:
        if store is None or explicit_config or os.path.exists(settings.config_path):
            settings = load_config_file(settings)
        if store is None:
            check_settings(settings)
    except ConfigError as exc:
        _fatal(exc.message)
    if store is None:
        for line in describe(settings):
            log.info(line)
    else:
        if settings.package_paths:
            log.info("package_paths of the config file are not served in store mode")
        for line in describe(settings)[1:]:
            log.info(line)
    if settings.httpprof:
        log.warning("-httpprof is not supported by this server; ignored")
    if settings.proxy_to != DEFAULT_PROXY_TO and not settings.feature_proxy_mode:
        log.warning("-proxy-to is ignored without -feature-proxy-mode")
    return settings


def check_flags_before_version(settings: Settings) -> None:
    """The reference checks the TLS flags before it handles ``-version``."""
    if settings.tls_min_version and not settings.tls_enabled:
        raise ConfigError(
            "-tls-min-version set but missing TLS cert and key files (-tls-cert and -tls-key)"
        )


def load_packages(settings: Settings) -> list[list[Package]]:
    """Load the zip and folder sources of ``settings.package_paths`` (fatal on any error)."""
    from package_storage.registry.sources import count_packages, load_sources

    try:
        sources = load_sources(
            settings.package_paths,
            validate=not settings.disable_package_validation,
            require_signatures=settings.require_package_signatures,
            workers=settings.package_paths_workers,
            cache=package_cache(settings),
        )
    except PackageStorageError as exc:
        _fatal(exc.message)
    count = count_packages(sources)
    if count > 0:
        log.info(f"{count} local package manifests loaded.")
    elif settings.feature_proxy_mode:
        log.info("No local packages found: proxy mode serves the upstream's packages.")
    elif settings.package_paths_enable_watcher:
        log.info("No local packages found, but the package paths watcher is enabled.")
    else:
        _fatal("No local packages found.")
    return sources


def package_cache(settings: Settings) -> Any:
    """The cache of read packages by content (``-cache-dir``; ``packages/doccache.py``), or
    None when it is off: a restart over unchanged package folders reads it, not the YAML."""
    from package_storage.packages.doccache import DocCache

    folder = settings.package_cache_dir
    return None if folder is None else DocCache(folder)


def build_app(
    settings: Settings,
    sources: list[list[Package]] | None = None,
    *,
    metrics: Any = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Any, Any]:
    """The read app over the package sources: ``(asgi_app, registry)``.

    The registry is a ``SingleIndexRegistry``; ``registry.swap(RegistryIndex(...))`` replaces
    what is served. ``sources=None`` loads them from the settings.
    """
    from package_storage.registry.http.app import (
        AppOptions,
        SingleIndexRegistry,
        create_app,
        service_name_from_env,
    )
    from package_storage.registry.index import RegistryIndex

    if sources is None:
        sources = load_packages(settings)
    registry = SingleIndexRegistry(RegistryIndex(sources))
    served = with_proxy(settings, registry)
    options = AppOptions(
        cache_time_index=settings.cache_time_index.total_seconds(),
        cache_time_search=settings.cache_time_search.total_seconds(),
        cache_time_categories=settings.cache_time_categories.total_seconds(),
        cache_time_catch_all=settings.cache_time_catch_all.total_seconds(),
        allow_unknown_query_parameters=settings.allow_unknown_query_parameters,
        service_name=service_name_from_env(os.environ if environ is None else environ),
        metrics=metrics,
    )
    return create_app(served, options), registry


def with_proxy(settings: Settings, registry: Any) -> Any:
    """``registry`` as served: wrapped for the proxy mode (spec §10) when it is on."""
    if not settings.feature_proxy_mode:
        return registry
    from package_storage.registry.proxy import ProxyRegistry
    from package_storage.registry.proxy_client import Upstream, UpstreamOptions

    options = UpstreamOptions.for_timeout(settings.proxy_timeout, settings.proxy_retries)
    upstream = Upstream(settings.proxy_to, options, strict=settings.proxy_strict)
    log.info(
        f"Proxy mode: versions not found locally come from {upstream.shown}"
        f" (time limit {options.timeout:g} s, {options.retries} retries"
        + (")" if settings.proxy_strict else "; local answers while it is unavailable)")
    )
    return ProxyRegistry(registry, upstream)


def granian_app() -> Any:
    """Granian worker entry point: the app rebuilt from the settings in the environment."""
    from package_storage.logs import RequestLogMiddleware
    from package_storage.registry.http.server import settings_from_environment

    app, _registry = build_app(settings_from_environment())
    return RequestLogMiddleware(app)


def _metrics(settings: Settings, package_count: int) -> tuple[Any, Any] | None:
    """(metrics object for the app, metrics ASGI app) when the metrics listener is on."""
    if not settings.metrics_address:
        return None
    from prometheus_client import CollectorRegistry

    from package_storage.registry.http.metrics import Metrics, metrics_app

    registry = CollectorRegistry()
    metrics = Metrics(registry, version=EPR_COMPAT_VERSION)
    metrics.indexed_packages.set(package_count)
    return metrics, metrics_app(registry)


def run(settings: Settings) -> int:
    """Load, then serve until stopped (or print the dry-run summary)."""
    from package_storage.registry.sources import (
        PackagePathsWatcher,
        check_signed,
        count_packages,
        load_sources,
    )

    if settings.require_package_signatures:  # an unsigned bundle fails here, before loading
        try:
            check_signed(settings.package_paths)
        except PackageStorageError as exc:
            _fatal(exc.message)
    if settings.dry_run:
        log.info("Running dry-run mode")
        sources = load_packages(settings)
        click.echo(
            f"dry run: {count_packages(sources)} packages loaded "
            f"({len(sources[0])} zip, {len(sources[1])} folder) "
            f"from {len(settings.package_paths)} package paths"
        )
        return 0
    if settings.server == "granian":
        from package_storage.registry.http.server import run_granian

        load_packages(settings)  # fail fast here; the Granian worker loads again
        try:
            run_granian(settings, f"{__name__}:granian_app")
        except ConfigError as exc:
            _fatal(exc.message)
        return 0

    from package_storage.registry.http.app import SingleIndexRegistry
    from package_storage.registry.http.loading import LoadingRegistry
    from package_storage.registry.http.server import Loading, run_server
    from package_storage.registry.index import RegistryIndex

    # The listener opens at once; /health answers 503 until the packages are loaded.
    pending = LoadingRegistry()
    metrics = _metrics(settings, 0)
    app = create_store_app(
        settings, pending, metrics=metrics[0] if metrics else None, ready=pending.is_ready
    )
    watchers: list[PackagePathsWatcher] = []

    def load() -> None:
        with _progress(f"Loading packages from {len(settings.package_paths)} package paths"):
            sources = load_packages(settings)
        registry = SingleIndexRegistry(RegistryIndex(sources))
        if metrics is not None:
            metrics[0].indexed_packages.set(count_packages(sources))
        gc.collect()
        gc.freeze()  # the loaded packages live as long as the server (see run_store)
        if settings.package_paths_enable_watcher:
            loader = functools.partial(
                load_sources,
                settings.package_paths,
                validate=not settings.disable_package_validation,
                require_signatures=settings.require_package_signatures,
                workers=settings.package_paths_workers,
                executor="serial",  # no fork while the server's threads run
                cache=package_cache(settings),
            )

            def swap(new: list[list[Package]]) -> None:
                registry.swap(RegistryIndex(new))
                if metrics is not None:
                    metrics[0].indexed_packages.set(count_packages(new))

            watcher = PackagePathsWatcher(settings.package_paths, loader, swap)
            watcher.start()
            watchers.append(watcher)
        pending.set(registry)
        log.info("Package registry started")

    loading = Loading(load)
    log.info(f"Listening on {settings.address}; /health answers 503 until loaded")
    try:
        run_server(app, settings, metrics_app=metrics[1] if metrics else None, loading=loading)
    except ConfigError as exc:
        _fatal(exc.message)
    finally:
        for watcher in watchers:
            watcher.stop()
    _stopped(loading)
    return 0


@contextlib.contextmanager
def _progress(what: str, every: float = PROGRESS_SECONDS) -> Iterator[None]:
    """Log ``what`` now, ``... still loading (N s)`` every ``every`` seconds while the block
    runs, and the time it took at the end."""
    start = time.monotonic()
    done = threading.Event()
    log.info(what)

    def report() -> None:
        while not done.wait(every):
            log.info(f"{what}: still loading ({time.monotonic() - start:.0f} s)")

    ticker = threading.Thread(target=report, name="load-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
    log.info(f"{what}: done in {time.monotonic() - start:.1f} s")


def _stopped(loading: Any) -> None:
    """After the server stopped: the last line; a stop during the load ends the process at
    once (the load's pool would otherwise be waited for at exit)."""
    log.info("Package registry stopped")
    if not loading.done:
        flush_logs()
        os._exit(0)


# --- store mode --------------------------------------------------------------------------------

STORE_ENV = "PACKAGE_STORAGE_STORE"
DEFAULT_DISTRIBUTION_ENV = "PACKAGE_STORAGE_DEFAULT_DISTRIBUTION"
STORE_WATCH_ENV = "PACKAGE_STORAGE_STORE_WATCH"
STORE_POLL_ENV = "PACKAGE_STORAGE_STORE_POLL"
DEFAULT_DISTRIBUTION = "production"
CACHE_DIR_ENV = "PACKAGE_STORAGE_CACHE_DIR"
CACHE_SIZE_ENV = "PACKAGE_STORAGE_CACHE_SIZE"
ARTIFACT_REDIRECT_ENV = "PACKAGE_STORAGE_ARTIFACT_REDIRECT"
DEFAULT_CACHE_SIZE = "10GiB"
BLOB_CACHE_SUBDIR = "blobs"
"""The blob cache's folder inside ``--cache-dir`` (other caches use other folders there)."""
REDIRECT_EXPIRY = 900
"""Seconds a pre-signed artifact URL of ``--artifact-redirect`` stays valid."""


@dataclasses.dataclass(frozen=True)
class BlobOptions:
    """How a replica reads blobs: a local disk cache in front (``--cache-dir``,
    ``--cache-size``) and/or redirects to pre-signed URLs (``--artifact-redirect``)."""

    cache_dir: Path | None = None
    cache_size: int = 10 << 30
    artifact_redirect: bool = False


def serving_blobs(blobs: Any, options: BlobOptions) -> tuple[Any, Callable[[str], str] | None]:
    """``(blob store to serve from, artifact URL function or None)`` for ``options``.

    The cache wraps a remote store only (a local folder is already a local file); a redirect
    needs blobs in S3. ConfigError (one line) otherwise."""
    from package_storage.store.storage.blobcache import BlobCache
    from package_storage.store.storage.localfs import LocalBlobStore
    from package_storage.store.storage.s3 import S3BlobStore

    served = blobs
    if options.cache_dir is not None:
        if isinstance(blobs, LocalBlobStore):
            log.info(
                f"blobs are in a local folder ({blobs.root}): --cache-dir is not needed, ignored"
            )
        else:
            folder = options.cache_dir / BLOB_CACHE_SUBDIR
            served = BlobCache(blobs, folder, options.cache_size)
            log.info(
                f"blob cache {folder}: {options.cache_size} bytes at most,"
                f" {served.cached_bytes} cached"
            )
    url: Callable[[str], str] | None = None
    if options.artifact_redirect:
        if not isinstance(blobs, S3BlobStore):
            raise ConfigError(
                "--artifact-redirect needs a store whose blobs are in S3"
                " (package-storage init --blobs s3://BUCKET/PREFIX); this store's are not"
            )
        url = functools.partial(blobs.presigned_url, expires=REDIRECT_EXPIRY)
    return served, url


def parse_blob_options(
    cache_dir: str | None, cache_size: str | None, artifact_redirect: bool
) -> BlobOptions:
    """The serve flags as :class:`BlobOptions`; a bad size is a usage error (one line)."""
    from package_storage.manage.uploads import parse_size

    try:
        size = parse_size(cache_size or DEFAULT_CACHE_SIZE)
    except PackageStorageError as exc:
        raise click.UsageError(f"--cache-size: {exc.message}") from None
    if cache_size is not None and cache_dir is None:
        raise click.UsageError("--cache-size needs --cache-dir DIR")
    return BlobOptions(Path(cache_dir) if cache_dir else None, size, artifact_redirect)


def _shown(store_dir: str | os.PathLike[str]) -> str:
    """The store for logs: a catalog URL without its password."""
    from package_storage.store.locator import display

    return display(store_dir if isinstance(store_dir, str) else Path(store_dir))


def open_store(store_dir: str | os.PathLike[str]) -> tuple[Any, Any, Callable[[], None]]:
    """``(catalog, blobs, close)`` of the store at ``store_dir`` (a directory or a
    ``postgresql://`` URL); raises ``NotFoundError`` when it holds no store (nothing is
    created) and ``SchemaVersionError`` when its schema is not this package-storage's."""
    from package_storage.store.locator import open_store as open_located

    store = open_located(store_dir if isinstance(store_dir, str) else Path(store_dir))
    return store.catalog, store.blobs, store.close


def store_derived(store_dir: str | os.PathLike[str], cache_dir: Path | None = None) -> Any:
    """The derived-document folder of the store at ``store_dir`` (``DIR/derived``): package
    documents computed at publish, so serving never parses a zip (``packages/doccache.py``).
    A store named by a URL has no directory: ``--cache-dir``'s ``derived`` folder when given
    (documents derived once there, on first start), else None (derived in memory)."""
    from package_storage.packages.doccache import DocCache
    from package_storage.store.directory import DERIVED_DIR
    from package_storage.store.locator import is_store_url

    if isinstance(store_dir, str) and is_store_url(store_dir):
        return None if cache_dir is None else DocCache(cache_dir / DERIVED_DIR)
    return DocCache(Path(store_dir) / DERIVED_DIR)


def run_store(
    settings: Settings,
    store_dir: str | os.PathLike[str],
    *,
    default_distribution: str = DEFAULT_DISTRIBUTION,
    poll_interval: float | None = None,
    notify: bool = True,
    on_listening: Callable[[Sequence[socket.socket]], None] | None = None,
    manage: ManageOptions | None = None,
    blob_options: BlobOptions | None = None,
) -> int:
    """Serve the store at ``store_dir`` until stopped (logging must be set up), with the
    management API on its own listener when ``manage`` is given and the blobs read as
    ``blob_options`` say. Startup problems end with one fatal log line
    (:class:`StartupError`)."""
    from package_storage.registry.http.loading import LoadingRegistry
    from package_storage.registry.http.server import Loading, run_server
    from package_storage.serving.store_registry import StoreRegistry

    if settings.server != "uvicorn":
        _fatal(f"-server {settings.server} is not supported with --store (use uvicorn)")
    try:
        catalog, blobs, close = open_store(store_dir)
    except PackageStorageError as exc:
        _fatal(exc.message)
    try:
        try:
            blobs, artifact_url = serving_blobs(blobs, blob_options or BlobOptions())
        except PackageStorageError as exc:
            _fatal(exc.message)
        try:
            stages = catalog.stages()
            if default_distribution not in stages:
                _fatal(
                    f"default distribution {default_distribution} is not a stage of the store"
                    f" (stages: {', '.join(stages.names)})"
                )
        except PackageStorageError as exc:
            _fatal(exc.message)

        def build() -> Any:
            try:
                with _progress(f"Loading package store {_shown(store_dir)}"):
                    registry = StoreRegistry(
                        catalog,
                        blobs,
                        default_distribution=default_distribution,
                        poll_interval=poll_interval,
                        notify=notify,
                        derived=store_derived(store_dir, (blob_options or BlobOptions()).cache_dir),
                        artifact_url=artifact_url,
                    )
            except PackageStorageError as exc:
                _fatal(exc.message)
            # Everything loaded so far lives as long as the server: keep it out of the cyclic
            # garbage collector's full passes (a full pass over a 10,000-version store's
            # objects takes ~0.4 s and would stall requests; reference counting still frees
            # what is dropped later).
            gc.collect()
            gc.freeze()
            current = registry.current
            for name, built in sorted(current.items()):
                log.info(
                    f"{name}: revision {built.revision.number}, "
                    f"{built.index.package_count} packages"
                )
            if default_distribution not in current:
                log.info(
                    f"{default_distribution} has no revision yet: / serves it empty until it has"
                )
            return registry

        if settings.dry_run:
            current = build().current
            click.echo(
                f"dry run: store {_shown(store_dir)}: "
                + (
                    ", ".join(
                        f"{name}@{built.revision.number} ({built.index.package_count} packages)"
                        for name, built in sorted(current.items())
                    )
                    or "no revisions"
                )
            )
            return 0
        # The listener opens at once; /health answers 503 until the store is loaded.
        pending = LoadingRegistry()
        metrics = _metrics(settings, 0)
        app = create_store_app(
            settings, pending, metrics=metrics[0] if metrics else None, ready=pending.is_ready
        )

        def load() -> None:
            registry = build()
            if metrics is not None:
                gauge = metrics[0].indexed_packages
                default = registry.current.get(default_distribution)
                gauge.set(default.index.package_count if default else 0)

                def count(distribution: str, built: Any) -> None:
                    if distribution == default_distribution:
                        gauge.set(built.index.package_count)

                registry.add_listener(count)
            registry.start()
            pending.set(registry)
            log.info("Package registry started")

        loading = Loading(load)
        log.info(f"Listening on {settings.address}; /health answers 503 until loaded")
        extra: list[Any] = []
        close_manage: Callable[[], None] = lambda: None  # noqa: E731
        if manage is not None:
            try:
                listener, close_manage = manage_listener(manage, settings, store_dir)
            except PackageStorageError as exc:
                _fatal(exc.message)
            extra.append(listener)
        try:
            run_server(
                app,
                settings,
                metrics_app=metrics[1] if metrics else None,
                on_listening=on_listening,
                extra=extra,
                loading=loading,
            )
        except ConfigError as exc:
            _fatal(exc.message)
        finally:
            if pending.inner is not None:
                pending.inner.stop()
            close_manage()
        _stopped(loading)
        return 0
    finally:
        close()


def create_store_app(
    settings: Settings, registry: Any, *, metrics: Any = None, ready: Any = None
) -> Any:
    """The read app over a registry with the options of ``settings`` (``ready``: see
    ``AppOptions.ready``)."""
    from package_storage.registry.http.app import AppOptions, create_app, service_name_from_env

    options = AppOptions(
        cache_time_index=settings.cache_time_index.total_seconds(),
        cache_time_search=settings.cache_time_search.total_seconds(),
        cache_time_categories=settings.cache_time_categories.total_seconds(),
        cache_time_catch_all=settings.cache_time_catch_all.total_seconds(),
        allow_unknown_query_parameters=settings.allow_unknown_query_parameters,
        service_name=service_name_from_env(os.environ),
        metrics=metrics,
        ready=ready,
    )
    return create_app(with_proxy(settings, registry), options)


def serve_store(
    store_dir: str | os.PathLike[str],
    address: str = "localhost:8080",
    *,
    default_distribution: str = DEFAULT_DISTRIBUTION,
    poll_interval: float | None = None,
    notify: bool = True,
    log_level: str = "info",
    log_type: str = "dev",
    settings: Settings | None = None,
    on_listening: Callable[[Sequence[socket.socket]], None] | None = None,
    manage: ManageOptions | None = None,
    blob_options: BlobOptions | None = None,
) -> int:
    """Serve the store at ``store_dir`` on ``address`` until SIGTERM/SIGINT; returns the exit
    status (0 after a clean stop, 1 after a startup error, which is logged). ``manage`` adds
    the management listener.

    ``settings`` (default: the serve defaults) gives TLS, metrics and cache times; ``address``
    replaces its address. Logging is set up with ``log_level``/``log_type``.
    """
    base = settings or Settings()
    base = dataclasses.replace(base, address=address)
    setup_logging(log_level, log_type)
    try:
        return run_store(
            base,
            store_dir,
            default_distribution=default_distribution,
            poll_interval=poll_interval,
            notify=notify,
            on_listening=on_listening,
            manage=manage,
            blob_options=blob_options,
        )
    except StartupError as exc:
        return exc.code


@click.command(cls=GoFlagCommand, context_settings={"help_option_names": ["-h", "--help"]})
@_flag_options
@click.option(
    "--store",
    "store_dir",
    default=None,
    envvar=STORE_ENV,
    metavar="DIR|URL",
    help=(
        "Serve this package store (a directory or postgresql://USER@HOST:PORT/DB) instead of"
        f" package_paths [env {STORE_ENV}]"
    ),
)
@click.option(
    "--default-distribution",
    "default_distribution",
    default=DEFAULT_DISTRIBUTION,
    envvar=DEFAULT_DISTRIBUTION_ENV,
    metavar="NAME",
    help=(
        "Store mode: the distribution served without prefix "
        f"[env {DEFAULT_DISTRIBUTION_ENV}; default {DEFAULT_DISTRIBUTION}]"
    ),
)
@click.option(
    "--store-watch/--no-store-watch",
    "store_watch",
    default=True,
    envvar=STORE_WATCH_ENV,
    help=(
        "Store mode: learn of catalog changes from file-change events (off: poll only)"
        f" [env {STORE_WATCH_ENV}; default on]"
    ),
)
@click.option(
    "--store-poll",
    "store_poll",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    envvar=STORE_POLL_ENV,
    metavar="SECONDS",
    help=(
        "Store mode: read the catalog's change counter at least this often"
        f" [env {STORE_POLL_ENV}; default 5 with file-change events, 0.1 without]"
    ),
)
@click.option(
    "--cache-dir",
    "cache_dir",
    default=None,
    envvar=CACHE_DIR_ENV,
    metavar="DIR",
    type=click.Path(file_okay=False),
    help=(
        "Local cache folder. Store mode, blobs in S3: downloaded artifacts are kept in"
        " DIR/blobs and served from there. Drop-in mode: packages read (and validated) are"
        " kept in DIR/packages by content, so a restart over unchanged folders reads no YAML"
        " (default: .package-storage-cache beside the config file; off: none)"
        f" [env {CACHE_DIR_ENV}]"
    ),
)
@click.option(
    "--cache-size",
    "cache_size",
    default=None,
    envvar=CACHE_SIZE_ENV,
    metavar="SIZE",
    help=(
        "Store mode: at most this many bytes in --cache-dir, least recently used evicted"
        f" first (e.g. 20GiB) [env {CACHE_SIZE_ENV}; default {DEFAULT_CACHE_SIZE}]"
    ),
)
@click.option(
    "--artifact-redirect/--no-artifact-redirect",
    "artifact_redirect",
    default=False,
    envvar=ARTIFACT_REDIRECT_ENV,
    help=(
        "Store mode, blobs in S3: answer zip and .sig downloads with a 302 to a pre-signed"
        f" S3 URL ({REDIRECT_EXPIRY // 60} min) instead of sending the bytes"
        f" [env {ARTIFACT_REDIRECT_ENV}; default off]"
    ),
)
@manage_options
def serve(
    store_dir: str | None,
    default_distribution: str,
    store_watch: bool,
    store_poll: float | None,
    cache_dir: str | None,
    cache_size: str | None,
    artifact_redirect: bool,
    manage_address: str | None,
    max_upload_size: str,
    manage_tls_cert: str | None,
    manage_tls_key: str | None,
    **flags: str | None,
) -> None:
    """Serve the packages of the config file's package_paths (or of a store) over the EPR API."""
    command_line = {flag.name: flags.get(flag.attr) for flag in FLAGS}
    store_dir, store_note = _choose_mode(store_dir, command_line.get("config") is not None)
    manage = parse_manage_options(
        store_dir, manage_address, max_upload_size, manage_tls_cert, manage_tls_key
    )
    blob_options = parse_blob_options(cache_dir, cache_size, artifact_redirect)
    try:
        settings = load_settings(command_line, os.environ, store=store_dir or None)
        if store_note:
            log.info(store_note)
        if store_dir:
            code = run_store(
                settings,
                store_dir,
                default_distribution=default_distribution,
                poll_interval=store_poll,
                notify=store_watch,
                manage=manage,
                blob_options=blob_options,
            )
        else:
            # Drop-in mode: read packages are cached by content in DIR/packages (default:
            # .package-storage-cache beside the config file; "off": no cache).
            code = run(dataclasses.replace(settings, cache_dir=cache_dir or ""))
    except StartupError as exc:
        sys.exit(exc.code)
    sys.exit(code)


def _choose_mode(store_dir: str | None, config_flag: bool) -> tuple[str | None, str]:
    """Explicit beats implicit: ``(store to serve or None, note to log)``.

    ``--config FILE`` on the command line with ``PACKAGE_STORAGE_STORE`` exported serves the
    config file (the flag wins over the environment); ``--store`` and ``--config`` both on the
    command line are refused with one line (exit 2). A store taken from the environment is
    named in the log.
    """
    if not store_dir:
        return None, ""
    source = click.get_current_context().get_parameter_source("store_dir")
    from_env = source is click.core.ParameterSource.ENVIRONMENT
    if config_flag and not from_env:
        click.echo(
            "error: --store and --config both given: serve either a store (--store DIR) or"
            " the package_paths of a config file (--config FILE), not both",
            err=True,
        )
        sys.exit(2)
    if config_flag:
        return None, f"serving the --config file: {STORE_ENV}={_shown(store_dir)} is ignored"
    if from_env:
        return store_dir, f"serving store {_shown(store_dir)} (from {STORE_ENV})"
    return store_dir, ""
