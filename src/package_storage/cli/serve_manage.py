"""The management listener of ``serve --store DIR --manage-address HOST:PORT``.

Its own listener (never the read API's port, so a CDN or a firewall can expose one and not the
other) on the same event loop as the read API. The operator web UI (``package_storage.web``)
answers every path outside ``/api/`` on the same listener. TLS: ``--manage-tls-cert``/``--manage-tls-key``,
or else the read listener's ``-tls-cert``/``-tls-key`` when those are set. Uploads are limited
to ``--max-upload-size`` (default 512 MiB).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from package_storage.errors import ConfigError, PackageStorageError

MANAGE_ADDRESS_ENV = "PACKAGE_STORAGE_MANAGE_ADDRESS"
MAX_UPLOAD_ENV = "PACKAGE_STORAGE_MAX_UPLOAD_SIZE"
DEFAULT_MAX_UPLOAD_TEXT = "512MiB"


@dataclass(frozen=True)
class ManageOptions:
    address: str
    max_upload: int
    tls_cert: str = ""
    tls_key: str = ""


def manage_options(func: Any) -> Any:
    """The click options of the management listener."""
    for option in reversed(
        (
            click.option(
                "--manage-address",
                "manage_address",
                default=None,
                envvar=MANAGE_ADDRESS_ENV,
                metavar="HOST:PORT",
                help="Store mode: serve the management API (/api/v1/) on this address"
                f" [env {MANAGE_ADDRESS_ENV}]",
            ),
            click.option(
                "--max-upload-size",
                "max_upload_size",
                default=DEFAULT_MAX_UPLOAD_TEXT,
                envvar=MAX_UPLOAD_ENV,
                metavar="SIZE",
                help="Largest package upload of the management API, e.g. 512MiB"
                f" [env {MAX_UPLOAD_ENV}; default {DEFAULT_MAX_UPLOAD_TEXT}]",
            ),
            click.option(
                "--manage-tls-cert",
                "manage_tls_cert",
                default=None,
                metavar="FILE",
                help="TLS certificate of the management listener (default: -tls-cert)",
            ),
            click.option(
                "--manage-tls-key",
                "manage_tls_key",
                default=None,
                metavar="FILE",
                help="TLS key of the management listener (default: -tls-key)",
            ),
        )
    ):
        func = option(func)
    return func


def parse_manage_options(
    store_dir: str | None,
    manage_address: str | None,
    max_upload_size: str,
    manage_tls_cert: str | None,
    manage_tls_key: str | None,
) -> ManageOptions | None:
    """The checked options (None without ``--manage-address``); usage errors name the flag."""
    from package_storage.manage.uploads import parse_size
    from package_storage.registry.http.server import parse_address

    if not manage_address:
        return None
    if not store_dir:
        raise click.UsageError("--manage-address needs --store DIR (the store to manage)")
    try:
        parse_address(manage_address)
    except PackageStorageError as exc:
        raise click.UsageError(f"--manage-address: {exc}") from None
    try:
        limit = parse_size(max_upload_size)
    except PackageStorageError as exc:
        raise click.UsageError(f"--max-upload-size: {exc}") from None
    if bool(manage_tls_cert) != bool(manage_tls_key):
        raise click.UsageError("--manage-tls-cert and --manage-tls-key go together")
    return ManageOptions(manage_address, limit, manage_tls_cert or "", manage_tls_key or "")


def manage_listener(
    options: ManageOptions, settings: Any, store_dir: str | os.PathLike[str]
) -> Any:
    """``(ExtraListener, close)``: the management app over the store at ``store_dir``."""
    from package_storage.manage.app import create_app, stop
    from package_storage.registry.http.server import ExtraListener, build_ssl_context
    from package_storage.store.locator import open_store
    from package_storage.web.app import beside_api, create_ui

    if options.address == settings.address:
        raise ConfigError(
            f"--manage-address {options.address} is the read API's address: management never"
            " shares its port"
        )
    ssl_context = None
    if options.tls_cert:
        ssl_context = build_ssl_context(options.tls_cert, options.tls_key, settings.tls_minimum)
    elif settings.tls_enabled:
        ssl_context = build_ssl_context(settings.tls_cert, settings.tls_key, settings.tls_minimum)
    store = open_store(store_dir if isinstance(store_dir, str) else Path(store_dir))
    app = create_app(store, max_upload=options.max_upload)
    ui = create_ui(store, tls=ssl_context is not None)  # the web UI at the listener's root
    listener = ExtraListener(
        "management API",
        beside_api(ui, app),
        options.address,
        ssl_context,
        on_stop=lambda: stop(app),
    )
    return listener, store.close


__all__ = ["ManageOptions", "manage_listener", "manage_options", "parse_manage_options"]
