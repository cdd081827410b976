"""``package-storage tokens create|list|revoke``: tokens of the management API.

``tokens create NAME --scope SCOPE [--scope ...] [--expires 30d]`` prints the secret once (it
is stored only as a hash); ``tokens list`` never shows a secret; ``tokens revoke NAME`` takes
effect on the token's next request. Scopes are described in ``store/tokens.py`` and
``docs/api.md``. Against a remote store (``--store URL``) these need a token with ``admin``.

Exit status: 0 when done, 1 when refused (``error: <message>``), 2 for usage errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from package_storage.cli.common import (
    StoreCommand,
    open_operations,
    print_json,
    print_table,
    store_option,
    when,
)
from package_storage.store.storage.base import JSONObject, TokenRecord


def token_state(token: TokenRecord, now: datetime | None = None) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if token.revoked is not None:
        return "revoked"
    if token.expires is not None and (now or datetime.now(UTC)) >= token.expires:
        return "expired"
    return "active"


def token_json(token: TokenRecord) -> JSONObject:
    return {
        "name": token.name,
        "scopes": list(token.scopes),
        "created": when(token.created),
        "created_by": token.created_by,
        "expires": when(token.expires) or None,
        "revoked": when(token.revoked) or None,
        "revoked_by": token.revoked_by,
        "state": token_state(token),
    }


@click.group("tokens")
def tokens() -> None:
    """Tokens of the management API (serve --manage-address): create, list, revoke."""


@tokens.command("create", cls=StoreCommand)
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    metavar="SCOPE",
    help="read, admin, publish:STAGE, promote:STAGE, remove:STAGE, yank:STAGE, tag:DIST,"
    " rollback:DIST (* for every stage); repeat for several.",
)
@click.option(
    "--expires",
    default=None,
    metavar="DURATION",
    help="Lifetime, e.g. 30d, 12h, 90m, 2w (default: until revoked).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@store_option
def create(
    name: str, scopes: Sequence[str], expires: str | None, as_json: bool, store_dir: Path
) -> None:
    """Create the token NAME and print its secret (shown only this once)."""
    from package_storage.store.tokens import parse_lifetime

    lifetime = parse_lifetime(expires) if expires is not None else None
    with open_operations(store_dir) as store:
        record, secret = store.service.create_token(name, scopes, lifetime=lifetime)
    if as_json:
        print_json(
            {
                "name": record.name,
                "token": secret,
                "scopes": list(record.scopes),
                "expires": when(record.expires) or None,
            }
        )
        return
    until = f", expires {when(record.expires)}" if record.expires else ", never expires"
    click.echo(f"created token {record.name} (scopes: {', '.join(record.scopes)}{until})")
    click.echo(secret)
    click.echo(
        "keep the secret now: it is not shown again (send it as Authorization: Bearer SECRET,"
        " or PACKAGE_STORAGE_TOKEN for the CLI)",
        err=True,
    )


@tokens.command("list", cls=StoreCommand)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@store_option
def list_tokens(as_json: bool, store_dir: Path) -> None:
    """Every token with its scopes and state (never a secret)."""
    with open_operations(store_dir) as store:
        found = store.service.tokens()
    if as_json:
        print_json([token_json(t) for t in found])
        return
    if not found:
        click.echo("no tokens")
        return
    print_table(
        f"{len(found)} token" + ("" if len(found) == 1 else "s"),
        ("name", "scopes", "state", "created", "by", "expires"),
        [
            (
                t.name,
                ", ".join(t.scopes),
                token_state(t),
                when(t.created),
                t.created_by,
                when(t.expires) or "never",
            )
            for t in found
        ],
    )


@tokens.command("revoke", cls=StoreCommand)
@click.argument("name")
@store_option
def revoke(name: str, store_dir: Path) -> None:
    """Revoke the token NAME (refused from its next request on)."""
    with open_operations(store_dir) as store:
        record, changed = store.service.revoke_token(name)
    if changed:
        click.echo(f"revoked token {record.name}")
    else:
        click.echo(f"unchanged: token {record.name} was already revoked")


__all__ = ["tokens"]
