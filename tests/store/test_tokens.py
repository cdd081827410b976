"""Tokens of the management API: the scope model (``store/tokens.py``), the tokens table of the
catalog, the service's create/list/revoke/authenticate and the scope guard
(``store/access.py``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from package_storage.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PolicyError,
)
from package_storage.store.access import GuardedService
from package_storage.store.directory import Store
from package_storage.store.locator import migrate_store
from package_storage.store.service import StoreService, event_title
from package_storage.store.storage import schema
from package_storage.store.tokens import (
    SECRET_PREFIX,
    Scope,
    check_granted,
    hash_secret,
    new_secret,
    parse_lifetime,
    parse_scope,
    parse_scopes,
    secret_matches,
    split_secret,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st_ = Store.init(tmp_path / "store")
    try:
        yield st_
    finally:
        st_.close()


@pytest.fixture
def svc(store: Store) -> StoreService:
    return store.service("admin-user")


# --- scopes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("read", Scope("read")),
        ("admin", Scope("admin")),
        ("publish:snapshot", Scope("publish", "snapshot")),
        ("promote:*", Scope("promote", "*")),
        (" remove:staging ", Scope("remove", "staging")),
        ("yank:production", Scope("yank", "production")),
        ("yank:*", Scope("yank", "*")),
        ("tag:production", Scope("tag", "production")),
        ("rollback:production-7.9", Scope("rollback", "production-7.9")),
    ],
)
def test_parse_scope_accepts_every_form(text: str, scope: Scope) -> None:
    assert parse_scope(text) == scope
    assert str(parse_scope(str(scope))) == str(scope)


@pytest.mark.parametrize(
    "text",
    ["", "write", "publish", "publish:", "publish:a b", "read:x", "admin:*", "tag:-x", "x:y", ":"],
)
def test_parse_scope_refuses_with_one_line_naming_the_input(text: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_scope(text)
    assert repr(text) in str(info.value) and "\n" not in str(info.value)


@given(st.text(max_size=40))
def test_parse_scope_either_round_trips_or_refuses(text: str) -> None:
    try:
        scope = parse_scope(text)
    except InvalidInputError:
        return
    assert parse_scope(str(scope)) == scope


def test_parse_scopes_deduplicates_sorts_and_needs_one() -> None:
    assert parse_scopes(["read", "publish:snapshot", "read"]) == (
        Scope("publish", "snapshot"),
        Scope("read"),
    )
    with pytest.raises(InvalidInputError, match="at least one scope"):
        parse_scopes([])


ALL_NEEDED = [
    Scope("read"),
    Scope("admin"),
    *(
        Scope(a, t)
        for a in ("publish", "promote", "remove", "yank", "tag", "rollback")
        for t in ("x", "y")
    ),
]


@pytest.mark.parametrize("held", ["read", "admin", "publish:x", "publish:*", "tag:y", "rollback:*"])
def test_grants_matrix(held: str) -> None:
    scope = parse_scope(held)
    for needed in ALL_NEEDED:
        expected = (
            scope.action == "admin"
            or needed.action == "read"
            or (
                needed.action == scope.action
                and needed.action != "admin"
                and scope.target in ("*", needed.target)
            )
        )
        assert scope.grants(needed) is expected, (held, str(needed))


def test_check_granted_names_the_missing_scope() -> None:
    with pytest.raises(ForbiddenError) as info:
        check_granted((Scope("publish", "snapshot"),), Scope("promote", "production"), token="ci")
    assert info.value.scope == "promote:production"
    assert "token ci lacks the scope promote:production" in str(info.value)


# --- secrets and lifetimes -------------------------------------------------------------------


def test_secrets_are_random_256_bits_and_only_hashed() -> None:
    made = {new_secret().text for _ in range(50)}
    assert len(made) == 50
    one = new_secret()
    token_id, secret = split_secret(one.text)
    assert one.text.startswith(SECRET_PREFIX) and token_id == one.token_id
    assert len(secret) >= 43  # 32 bytes in URL-safe base64
    assert one.secret_hash == hash_secret(secret) and secret not in one.secret_hash
    assert secret_matches(secret, one.secret_hash)
    assert not secret_matches(secret + "x", one.secret_hash)


@pytest.mark.parametrize("text", ["", "pst_", "pst_xyz_abc", "Bearer x", "pst_0123456789abcdef_"])
def test_split_secret_refuses_what_is_not_a_token(text: str) -> None:
    with pytest.raises(AuthenticationError):
        split_secret(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90))],
)
def test_parse_lifetime(text: str, value: timedelta) -> None:
    assert parse_lifetime(text) == value


@pytest.mark.parametrize("text", ["", "30", "d", "0d", "-1d", "1y", "99999w", "1.5d"])
def test_parse_lifetime_refuses(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_lifetime(text)


# --- the service and the catalog ---------------------------------------------------------------


def test_create_stores_only_the_hash_and_authenticates(store: Store, svc: StoreService) -> None:
    record, secret = svc.create_token("ci", ["publish:snapshot", "read"])
    assert record.scopes == ("publish:snapshot", "read")
    assert record.created_by == "admin-user" and record.expires is None
    stored = store.catalog.tokens()
    assert [t.name for t in stored] == ["ci"]
    raw = (store.root / "catalog.db").read_bytes()
    assert secret.encode() not in raw and split_secret(secret)[1].encode() not in raw
    assert svc.authenticate(secret).name == "ci"
    event = store.catalog.events()[-1]
    assert event.action == "token_create" and event.actor == "admin-user"
    assert event_title(event) == "Create token ci (publish:snapshot, read)"


def test_unknown_and_wrong_secrets_are_refused(svc: StoreService) -> None:
    _, secret = svc.create_token("ci", ["read"])
    token_id, _ = split_secret(secret)
    with pytest.raises(AuthenticationError, match="unknown token"):
        svc.authenticate(f"{SECRET_PREFIX}{token_id}_{'A' * 43}")
    with pytest.raises(AuthenticationError, match="unknown token"):
        svc.authenticate(f"{SECRET_PREFIX}{'0' * 16}_{'A' * 43}")


def test_expiry(svc: StoreService) -> None:
    record, secret = svc.create_token("short", ["read"], lifetime=timedelta(hours=1))
    assert record.expires is not None
    assert svc.authenticate(secret, now=record.expires - timedelta(seconds=1)).name == "short"
    with pytest.raises(AuthenticationError, match="token short expired"):
        svc.authenticate(secret, now=record.expires)


def test_revocation_is_effective_at_once_and_idempotent(store: Store, svc: StoreService) -> None:
    _, secret = svc.create_token("ci", ["read"])
    record, changed = svc.revoke_token("ci")
    assert changed and record.revoked is not None and record.revoked_by == "admin-user"
    with pytest.raises(AuthenticationError, match="token ci was revoked"):
        svc.authenticate(secret)
    again, changed = svc.revoke_token("ci")
    assert not changed and again.revoked == record.revoked
    assert [e.action for e in store.catalog.events()] == ["token_create", "token_revoke"]
    with pytest.raises(NotFoundError, match="there is no token nobody"):
        svc.revoke_token("nobody")


def test_names_are_unique_among_unrevoked_tokens(svc: StoreService) -> None:
    svc.create_token("ci", ["read"])
    with pytest.raises(ConflictError, match="token ci exists: revoke it first"):
        svc.create_token("ci", ["admin"])
    svc.revoke_token("ci")
    _, secret = svc.create_token("ci", ["admin"])  # rotation: the same name again
    assert svc.authenticate(secret).scopes == ("admin",)
    assert [t.revoked is None for t in svc.tokens()] == [False, True]


@pytest.mark.parametrize(
    ("name", "scopes", "message"),
    [
        ("bad name", ["read"], "token name 'bad name' is not valid"),
        ("ci", ["publish:nowhere"], "scope publish:nowhere: there is no stage or distribution"),
        ("ci", ["write"], "scope 'write' is not valid"),
    ],
)
def test_create_refuses_bad_input_and_changes_nothing(
    store: Store, svc: StoreService, name: str, scopes: list[str], message: str
) -> None:
    before = (store.catalog.tokens(), store.catalog.events(), store.catalog.change_counter())
    with pytest.raises(InvalidInputError, match=message):
        svc.create_token(name, scopes)
    assert (store.catalog.tokens(), store.catalog.events(), store.catalog.change_counter()) == (
        before
    )


def test_a_store_from_before_tokens_gets_the_tokens_table(tmp_path: Path) -> None:
    """A schema 2 store (before tokens, before Alembic) gets the table from ``migrate``."""
    root = tmp_path / "old"
    Store.init(root).close()
    db = sqlite3.connect(root / "catalog.db")
    for table in ("tokens", "settings", "store_keys", "alembic_version"):
        db.execute(f"DROP TABLE {table}")
    db.execute("UPDATE schema_version SET version = 2")
    db.commit()
    db.close()
    assert migrate_store(root).applied == ("0001", "0002", "0003")
    with Store.open(root) as st_:
        svc = st_.service("x")
        _, secret = svc.create_token("ci", ["read"])
        assert svc.authenticate(secret).name == "ci"
        assert st_.catalog.check() == []
    db = sqlite3.connect(root / "catalog.db")
    assert db.execute("SELECT version FROM schema_version").fetchone()[0] == (
        schema.LEGACY_SCHEMA_VERSION
    )
    db.close()


# --- the guard -------------------------------------------------------------------------------


def test_guarded_service_checks_scope_before_acting_and_acts_as_the_token(
    store: Store, svc: StoreService
) -> None:
    record, _ = svc.create_token("ci-reader", ["read"])
    guarded = GuardedService(store.service(record.name), record)
    assert guarded.stages().names == store.catalog.stages().names
    before = store.catalog.change_counter()
    with pytest.raises(ForbiddenError, match="lacks the scope tag:production"):
        guarded.tag("production", "8.12.0")
    with pytest.raises(ForbiddenError, match="lacks the scope admin"):
        guarded.tokens()
    with pytest.raises(ForbiddenError, match="lacks the scope publish:snapshot"):
        guarded.publish_bytes(b"not even a zip")
    assert store.catalog.change_counter() == before


def test_guarded_fsck_only_reports(store: Store, svc: StoreService) -> None:
    record, _ = svc.create_token("ops", ["admin"])
    guarded = GuardedService(store.service(record.name), record)
    assert guarded.fsck().ok
    with pytest.raises(PolicyError, match="fsck --repair runs only on the store's own machine"):
        guarded.fsck(repair=True)


def test_token_times_are_utc(svc: StoreService) -> None:
    record, _ = svc.create_token("t", ["read"], lifetime=timedelta(days=1))
    assert record.created.utcoffset() == timedelta(0) and record.expires is not None
    assert record.expires - record.created == timedelta(days=1)
    assert record.created <= datetime.now(UTC)
