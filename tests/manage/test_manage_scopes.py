"""The scope matrix: every scope x every operation of the management API is either allowed or
``403 missing_scope`` naming the scope, and a refused call changes nothing. In-process and
through a real server on loopback. Also the 401 cases, expiry and revocation."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from manage_helpers import MakeToken, auth, live_client

from live_manage import LiveServer
from package_storage.store.directory import Store

Call = tuple[str, str, dict[str, Any], str]  # method, path, request kwargs, needed scope

_tag_numbers = itertools.count(1)


def operations(zip_path: Path) -> list[Call]:
    """Every operation, with the scope it needs (docs/api.md)."""
    v = "/api/v1"
    pkg = f"{v}/packages/hello_nginx"
    tag = f"t{next(_tag_numbers)}"

    def files() -> dict[str, Any]:
        return {"files": {"package": (zip_path.name, zip_path.read_bytes(), "application/zip")}}

    def yank(stage: str) -> dict[str, str]:
        return {"stage": stage, "reason": "test"}

    def new_stage(name: str) -> dict[str, Any]:
        rank = 100 + next(_tag_numbers)  # above every stage; it takes no publish
        return {"name": name, "rank": rank, "publish": False, "reason": "test"}

    return [
        ("GET", f"{v}/stages", {}, "read"),
        ("GET", f"{v}/packages", {}, "read"),
        ("GET", f"{v}/packages", {"params": {"distribution": "production"}}, "read"),
        ("GET", pkg, {}, "read"),
        ("GET", f"{pkg}/1.0.0", {}, "read"),
        ("GET", f"{pkg}/1.0.0/signatures", {}, "read"),
        ("GET", f"{v}/diff", {"params": {"a": "snapshot", "b": "staging"}}, "read"),
        ("GET", f"{v}/history", {"params": {"limit": 5}}, "read"),
        ("GET", f"{v}/events", {"params": {"after": 0}}, "read"),
        ("GET", f"{v}/events/stream", {"params": {"timeout": 0.2}}, "read"),
        ("GET", f"{v}/distributions/production", {}, "read"),
        ("GET", f"{v}/distributions/production/revisions", {}, "read"),
        ("GET", f"{v}/distributions/production/revisions/first", {}, "read"),
        ("GET", f"{v}/tags", {}, "read"),
        ("GET", f"{v}/whoami", {}, "read"),
        ("POST", f"{v}/packages", {**files(), "data": {"stage": "snapshot"}}, "publish:snapshot"),
        ("POST", f"{v}/packages", files(), "publish:snapshot"),
        ("POST", f"{pkg}/1.2.0/promote", {"json": {"to": "staging"}}, "promote:staging"),
        ("POST", f"{pkg}/1.1.0/promote", {"json": {"to": "production"}}, "promote:production"),
        ("POST", f"{pkg}/1.2.0/remove", {"json": {"stage": "snapshot"}}, "remove:snapshot"),
        ("POST", f"{pkg}/1.1.0/remove", {"json": {"stage": "staging"}}, "remove:staging"),
        ("POST", f"{v}/distributions/production/tags", {"json": {"tag": tag}}, "tag:production"),
        ("POST", f"{v}/distributions/staging/rollback", {"json": {"revision": 1}}, "rollback:staging"),
        ("POST", f"{pkg}/1.0.0/yank", {"json": yank("production")}, "yank:production"),
        ("POST", f"{pkg}/1.0.0/unyank", {"json": yank("production")}, "yank:production"),
        ("POST", f"{pkg}/1.2.0/yank", {"json": yank("snapshot")}, "yank:snapshot"),
        ("POST", f"{pkg}/1.2.0/unyank", {"json": yank("snapshot")}, "yank:snapshot"),
        ("GET", f"{v}/stages/production/events", {}, "read"),
        ("POST", f"{v}/stages", {"json": new_stage(f"s{tag}")}, "admin"),
        ("POST", f"{v}/stages/s{tag}/freeze", {"json": {"reason": "test"}}, "admin"),
        ("POST", f"{v}/stages/s{tag}/unfreeze", {"json": {"reason": "test"}}, "admin"),
        ("GET", f"{v}/fsck", {}, "admin"),
        ("GET", f"{v}/tokens", {}, "admin"),
        ("POST", f"{v}/tokens", {"json": {"name": f"n{tag}", "scopes": ["read"]}}, "admin"),
        ("POST", f"{v}/tokens/nobody/revoke", {}, "admin"),
    ]  # fmt: skip


SCOPES = [
    "read",
    "admin",
    "publish:snapshot",
    "publish:staging",
    "publish:*",
    "promote:staging",
    "promote:production",
    "promote:*",
    "remove:snapshot",
    "remove:*",
    "tag:production",
    "tag:staging",
    "tag:*",
    "rollback:staging",
    "rollback:*",
    "yank:production",
    "yank:*",
]


def allowed(held: str, needed: str) -> bool:
    """The rule of docs/api.md, written out: admin has everything, every scope reads,
    ACTION:* covers every stage."""
    if held == "admin" or needed == "read":
        return True
    if needed == "admin":
        return False
    h_action, _, h_target = held.partition(":")
    n_action, _, n_target = needed.partition(":")
    return h_action == n_action and h_target in ("*", n_target)


def state(st: Store) -> tuple[Any, ...]:
    """Everything an operation could change (read from the store's files)."""
    cat = st.catalog
    names = cat.stages().names
    return (
        cat.stages().as_config(),
        {s: cat.entries(s) for s in names},
        {d: cat.revisions(d) for d in names},
        cat.distributions(),
        cat.events(),
        cat.tags(),
        cat.tokens(),
        cat.change_counter(),
        sorted(st.blobs.iter_digests()),
    )


def check_matrix(
    send: Callable[..., httpx.Response], store: Store, make_token: MakeToken, zip_path: Path
) -> None:
    for held in SCOPES:
        headers = auth(make_token(held))
        for method, path, kwargs, needed in operations(zip_path):
            before = None if allowed(held, needed) else state(store)
            response = send(method, path, headers=headers, **kwargs)
            label = f"{held} {method} {path} (needs {needed}): {response.status_code}"
            assert response.status_code != 401, label
            assert response.status_code < 500, f"{label} {response.text}"
            body = response.json() if "json" in response.headers.get("content-type", "") else {}
            refused = response.status_code == 403 and body["error"]["code"] == "missing_scope"
            if allowed(held, needed):
                assert not refused, f"{label} {response.text}"
            else:
                assert refused, f"{label} {response.text}"
                assert f"lacks the scope {needed}" in body["error"]["message"], label
                assert state(store) == before, f"{label}: a refused call changed the store"


def test_scope_matrix_in_process(
    app_client: Any, store: Store, make_token: MakeToken, upload: Callable[..., Path]
) -> None:
    check_matrix(app_client.request, store, make_token, upload("1.3.0"))


@pytest.mark.slow
def test_scope_matrix_through_a_real_server(
    live: LiveServer, store: Store, make_token: MakeToken, upload: Callable[..., Path]
) -> None:
    with live_client(live) as client:
        check_matrix(client.request, store, make_token, upload("1.3.0"))


def test_events_record_the_token_name_as_actor(
    app_client: Any, store: Store, make_token: MakeToken
) -> None:
    headers = auth(make_token("promote:*", name="release-bot"))
    r = app_client.post(
        "/api/v1/packages/hello_nginx/1.2.0/promote", json={"to": "staging"}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["event"]["actor"] == "release-bot"
    assert store.catalog.events()[-1].actor == "release-bot"
    entry = store.catalog.get_entry("staging", "hello_nginx", "1.2.0")
    assert entry is not None and entry.added_by == "release-bot"


# --- 401 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-token",
        "Bearer pst_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_missing_or_unknown_tokens_are_401(app_client: Any, header: str | None) -> None:
    headers = {} if header is None else {"authorization": header}
    r = app_client.get("/api/v1/stages", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_a_wrong_secret_for_a_known_id_is_401(app_client: Any, make_token: MakeToken) -> None:
    secret = make_token("admin")
    wrong = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    assert app_client.get("/api/v1/stages", headers=auth(wrong)).status_code == 401
    assert app_client.get("/api/v1/stages", headers=auth(secret)).status_code == 200


def test_expired_token_is_401(app_client: Any, store: Store, make_token: MakeToken) -> None:
    secret = make_token("admin", name="old", lifetime=timedelta(minutes=1))
    assert app_client.get("/api/v1/stages", headers=auth(secret)).status_code == 200
    record = next(t for t in store.catalog.tokens() if t.name == "old")
    assert record.expires is not None
    # Move the expiry into the past in the catalog (what an hour of waiting would do).
    from sqlalchemy import update

    from package_storage.store.storage import schema

    with store.catalog.engine.begin() as conn:
        conn.execute(
            update(schema.tokens)
            .where(schema.tokens.c.id == record.id)
            .values(expires=record.created - timedelta(seconds=1))
        )
    r = app_client.get("/api/v1/stages", headers=auth(secret))
    assert r.status_code == 401 and r.json()["error"]["message"] == "token old expired"


def test_revocation_takes_effect_on_the_next_request(
    app_client: Any, make_token: MakeToken
) -> None:
    admin = auth(make_token("admin", name="root"))
    victim = make_token("read", name="ci")
    assert app_client.get("/api/v1/stages", headers=auth(victim)).status_code == 200
    r = app_client.post("/api/v1/tokens/ci/revoke", headers=admin)
    assert r.status_code == 200 and r.json()["changed"] is True
    r = app_client.get("/api/v1/stages", headers=auth(victim))
    assert r.status_code == 401 and r.json()["error"]["message"] == "token ci was revoked"
