"""Shared plumbing of the store commands: the ``--store`` option, opening a store, error
handling and output (rich tables for people, stable JSON for scripts).

A store is one directory (``--store DIR``, env ``PACKAGE_STORAGE_STORE``, default ``./data``;
layout in ``store/directory.py``), a PostgreSQL catalog (``--store
postgresql://USER@HOST:PORT/DB``, whose blob location the catalog records; ``store/locator.py``)
or, for the store commands, the URL of a remote store's management listener (``--store
https://host:port``, token from ``--token`` or ``PACKAGE_STORAGE_TOKEN``):
:func:`open_operations` gives the same interface for all. ``package-storage init`` creates a
store; every other command refuses a location without a catalog (exit 1, with a hint to run
``init``) instead of silently creating an empty store, and a catalog whose schema is older or
newer than this package-storage (with a hint to run ``migrate`` or to upgrade).

Errors: a command declared with ``cls=StoreCommand`` turns any :class:`PackageStorageError` into
``error: <message>`` on stderr and exit status 1. Usage errors stay click's (exit 2).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from package_storage.cli.gcpause import paused_gc
from package_storage.errors import PackageStorageError
from package_storage.store.storage.base import Event, JSONObject, StageEntry, format_time

if TYPE_CHECKING:  # imported when a store is opened: `--help` stays fast
    from rich.console import Console  # imported when a table is printed (not by publish)

    from package_storage.store.access import StoreOperations
    from package_storage.store.directory import Store
    from package_storage.store.keyring import StoreKeyring
    from package_storage.store.service import StoreService, ValidationLevel
    from package_storage.store.storage.base import BlobStore
    from package_storage.store.storage.sqlite import SQLCatalog

# The same values as package_storage.store.directory (not imported here so that building the command line
# does not import the catalog and SQLAlchemy; tests check that they agree).
STORE_ENV = "PACKAGE_STORAGE_STORE"
TOKEN_ENV = "PACKAGE_STORAGE_TOKEN"
DEFAULT_STORE_DIR = "./data"
SHORT_DIGEST = 12

F = TypeVar("F", bound=Callable[..., Any])


# --- errors ----------------------------------------------------------------------------------


class StoreCommand(click.Command):
    """A click command that reports :class:`PackageStorageError` as ``error: ...``, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PackageStorageError as exc:
            fail(str(exc))


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


# --- the store -------------------------------------------------------------------------------


class StoreURL(str):
    """``--store http(s)://host:port``: the management listener of a remote store."""


class CatalogURL(str):
    """``--store postgresql://USER@HOST:PORT/DB``: a store whose catalog is that database
    (opened from this machine, like a directory)."""


CATALOG_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class StoreLocation(click.ParamType):  # type: ignore[type-arg]
    """A store directory (a :class:`Path`), a PostgreSQL catalog URL (:class:`CatalogURL`) or
    the URL of a management listener (:class:`StoreURL`)."""

    name = "DIR|URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path | StoreURL | CatalogURL):
            return value
        text = str(value)
        if text.lower().startswith(("http://", "https://")):
            return StoreURL(text.rstrip("/"))
        if text.lower().startswith(CATALOG_SCHEMES):
            return CatalogURL(text)
        if "://" in text:
            self.fail(
                f"store {text}: give a directory, postgresql://USER@HOST:PORT/DB or the"
                " http(s)://host:port of a management listener",
                param,
                ctx,
            )
        path = Path(text)
        if path.exists() and not path.is_dir():
            self.fail(f"store {text} is a file, not a directory", param, ctx)
        return path


def store_option(func: F) -> F:
    """``--store DIR|URL`` (env ``PACKAGE_STORAGE_STORE``, default ``./data``) and ``--token``
    (env ``PACKAGE_STORAGE_TOKEN``, for a URL)."""
    option = click.option(
        "--store",
        "store_dir",
        type=StoreLocation(),
        envvar=STORE_ENV,
        default=DEFAULT_STORE_DIR,
        show_default=True,
        show_envvar=True,
        help=(
            "The store: a directory, postgresql://USER@HOST:PORT/DB, or the http(s)://host:port"
            " of a management listener."
        ),
    )
    token = click.option(
        "--token",
        "store_token",
        envvar=TOKEN_ENV,
        default=None,
        show_envvar=True,
        expose_value=False,
        callback=_remember_token,
        help="With a store URL: the management API token.",
    )
    return token(option(func))


def _remember_token(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta[TOKEN_ENV] = value


def _token(location: StoreURL) -> str:
    ctx = click.get_current_context(silent=True)
    token = ctx.meta.get(TOKEN_ENV) if ctx is not None else None
    if not token:
        fail(f"store {location} is remote: give a token (--token or {TOKEN_ENV})")
    return str(token)


def shown(store_dir: Path) -> str:
    """``store_dir`` for messages (a catalog URL without its password)."""
    if isinstance(store_dir, CatalogURL):
        from package_storage.store.locator import display

        return display(str(store_dir))
    return str(store_dir)


def require_local(store_dir: Path, command: str) -> Path:
    """``store_dir`` when this process can open it (a directory or a catalog URL); for the URL
    of a management listener fail with a one-line error."""
    if isinstance(store_dir, StoreURL):
        fail(
            f"{command} works on a store directory, not on a remote store ({store_dir}):"
            " run it on the store's machine"
        )
    return store_dir


def require_directory(store_dir: Path, command: str) -> Path:
    """``store_dir`` when it is a store directory; for any URL fail with a one-line error."""
    require_local(store_dir, command)
    if isinstance(store_dir, CatalogURL):
        fail(
            f"{command} works on a store directory, not yet on a store named by URL"
            f" ({shown(store_dir)})"
        )
    return store_dir


def store_exists(store_dir: Path) -> bool:
    from package_storage.store.directory import Store

    if isinstance(store_dir, StoreURL | CatalogURL):
        return True
    return Store.is_store(store_dir)


def store_from_environment() -> bool:
    """True when the running command's ``--store`` came from ``PACKAGE_STORAGE_STORE``."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or "store_dir" not in ctx.params:
        return False
    source = ctx.get_parameter_source("store_dir")
    return source is click.core.ParameterSource.ENVIRONMENT


def note_store_origin(store_dir: Path) -> None:
    """Explicit beats implicit: when ``--store`` came from the environment, say on stderr
    which store the command acts on (stdout, e.g. ``--json``, stays as it is)."""
    if store_from_environment():
        click.echo(f"store: {shown(store_dir)} (from {STORE_ENV})", err=True)


@dataclass
class OpenStore:
    """An opened store: its catalog, blob store and the service acting for the CLI's actor."""

    store: Store
    service: StoreService

    @property
    def directory(self) -> Path:
        """The store directory; fails (one line) for a store named by URL."""
        root = self.store.root
        if root is None:
            fail(
                f"{_command_name()} needs a store directory, not yet a store named by URL"
                f" ({self.store.location})"
            )
        return root

    @property
    def keyring(self) -> StoreKeyring | None:
        """The store's keys (None when the store has none)."""
        return self.service.keyring

    @property
    def catalog(self) -> SQLCatalog:
        return self.store.catalog

    @property
    def blobs(self) -> BlobStore:
        return self.store.blobs


@contextmanager
def open_store(
    store_dir: Path, *, create: bool = False, blobs: str | None = None
) -> Iterator[OpenStore]:
    """Open the store at ``store_dir`` (a directory or catalog URL; ``create`` makes it when
    absent, its blobs at ``blobs``); closes it after.

    Without ``create``, a location that holds no store is refused (NotFoundError, exit 1) with
    a hint to run ``package-storage init``; a schema older or newer than this package-storage
    is refused (SchemaVersionError) with the command to run.
    """
    require_local(store_dir, _command_name())
    note_store_origin(store_dir)
    with paused_gc():  # imports and opening: no collector passes (cli/gcpause.py)
        from package_storage.store.locator import open_store as open_located

        store = open_located(store_dir, create=create, blobs=blobs)
    with store:
        yield OpenStore(store, store.service())


def _command_name() -> str:
    ctx = click.get_current_context(silent=True)
    return ctx.command_path if ctx is not None else "this command"


@dataclass
class OpenOperations:
    """A store opened for the store commands: local (a directory) or remote (a URL)."""

    service: StoreOperations
    location: str
    remote: bool


@contextmanager
def open_operations(store_dir: Path, *, create: bool = False) -> Iterator[OpenOperations]:
    """The store operations of ``store_dir``: the local service of a directory (as
    :func:`open_store`), or the management API client of a URL (token from ``--token`` or
    ``PACKAGE_STORAGE_TOKEN``). Either way the same calls, results and errors."""
    if isinstance(store_dir, StoreURL):
        from package_storage.manage.client import RemoteStore

        note_store_origin(store_dir)
        with RemoteStore(str(store_dir), _token(store_dir)) as remote:
            yield OpenOperations(remote, str(store_dir), remote=True)
        return
    with open_store(store_dir, create=create) as store:
        yield OpenOperations(store.service, str(store_dir), remote=False)


# --- output ----------------------------------------------------------------------------------


def console() -> Console:
    """A rich console on the current stdout (plain text, wide lines when not a terminal)."""
    from rich.console import Console

    out = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out = Console(file=sys.stdout, highlight=False, width=200, no_color=True)
    return out


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table; cells are plain text (no rich markup: ``[staging]`` stays as it is)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(title) if title is not None else None, show_lines=False, title_justify="left"
    )
    for column in columns:
        table.add_column(Text(column), overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console().print(table)


def print_json(value: Any) -> None:
    """Stable machine JSON: two-space indent, keys in the documented order, UTF-8."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def short(digest: str | None) -> str:
    return digest[:SHORT_DIGEST] if digest else ""


def when(value: datetime | None) -> str:
    return format_time(value) if value is not None else ""


def entry_json(entry: StageEntry) -> JSONObject:
    return {
        "name": entry.name,
        "version": entry.version,
        "stage": entry.stage,
        "artifact": entry.artifact,
        "added_at": format_time(entry.added_at),
        "added_by": entry.added_by,
        "yanked": entry.yanked,
    }


def event_json(event: Event, title: str) -> JSONObject:
    return {
        "id": event.id,
        "time": format_time(event.time),
        "actor": event.actor,
        "action": event.action,
        "stage": event.stage,
        "name": event.name,
        "version": event.version,
        "reason": event.reason,
        "title": title,
        "detail": event.detail,
    }


def validation_level(word: str) -> ValidationLevel:
    """The ``--validation`` word (a click Choice of none|load|publish) as the service's level."""
    if word == "publish":
        return "publish"
    if word == "none":
        return "none"
    return "load"
