"""The web UI end to end in a real browser: Debian's Chromium driven by Playwright against a
real ``package-storage serve --store DIR --manage-address ...`` on loopback.

Skipped, loudly, when Chromium or Playwright is missing outside CI; in CI (``CI=true``) a
missing browser fails the run instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chromium_browser import chromium, in_ci, missing
from web_helpers import HOSTILE_TITLE, build_store

from live_manage import LiveServer, start_server

pytestmark = pytest.mark.slow

WAIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = missing()
    if reason is not None:
        if in_ci():
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(f"BROWSER TESTS SKIPPED: {reason}")
    with chromium() as launched:
        yield launched


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    store = build_store(tmp_path / "store", tmp_path / "packages")
    svc = store.service("setup")
    tokens = {
        "release": svc.create_token("release", ["promote:*", "rollback:*", "tag:*"])[1],
        "viewer": svc.create_token("viewer", ["read"])[1],
    }
    store.close()
    with start_server(tmp_path / "store", tmp_path / "server.log") as server:
        yield server, tokens


def search_versions(server: LiveServer, stage: str, name: str) -> list[str]:
    answer = httpx.get(f"{server.read_url}/{stage}/search", params={"all": "true"}, timeout=30)
    answer.raise_for_status()
    return [p["version"] for p in answer.json() if p["name"] == name]


def wait_for(check: Any, what: str) -> None:
    """Until ``check()`` is true (bounded: the server learns of a change within ms)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {WAIT_SECONDS} s: {what}")
        time.sleep(0.05)


def sign_in(page: Any, url: str, secret: str) -> None:
    page.goto(url + "/")
    assert page.url.startswith(url + "/signin")
    page.get_by_label("Token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for()


def test_release_flow_in_a_real_browser(
    browser: Any, live: tuple[LiveServer, dict[str, str]]
) -> None:
    server, tokens = live
    url = server.manage_url
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    sign_in(page, url, tokens["release"])
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["ps_session"]["httpOnly"] and cookies["ps_session"]["sameSite"] == "Strict"

    # browse: a stage from the navigation, a package from the stage
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="staging").click()
    page.get_by_role("heading", name="Stage staging").wait_for()
    page.get_by_role("link", name="hello_nginx", exact=True).click()
    page.get_by_role("heading", level=1, name=re.compile("Hello NGINX")).wait_for()
    matrix = page.get_by_role("table", name=re.compile("Versions of hello_nginx by stage"))
    assert matrix.get_by_role("button", name="Promote to production").count() == 1

    # preview the promotion (the form's defaults: the last step of the path)
    nav.get_by_role("link", name="Promotion preview").click()
    page.get_by_role("button", name="Compare").click()
    page.get_by_role("heading", name="Only in staging: 1").wait_for()
    assert page.get_by_text("Release 1.1.0.").count() >= 1

    # promote with a reason, from the preview
    page.get_by_role("button", name="Promote to production").click()
    page.get_by_role("heading", name="Promote hello_nginx 1.1.0 to production").wait_for()
    assert page.get_by_text("moves from staging to production").count() == 1
    page.get_by_label("Reason").fill("release for Kibana 8.13")
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("status").filter(
        has_text="promoted hello_nginx 1.1.0 from staging to production"
    ).wait_for()

    # in the history, and served by the read API
    nav.get_by_role("link", name="History").click()
    row = page.get_by_role("row").filter(has_text="[production] Promote hello_nginx-1.1.0")
    assert row.count() == 1
    assert "release for Kibana 8.13" in row.inner_text() and "release" in row.inner_text()
    wait_for(
        lambda: "1.1.0" in search_versions(server, "production", "hello_nginx"),
        "hello_nginx 1.1.0 in /production/search",
    )

    # roll back
    page.goto(url + "/distributions/production")
    page.get_by_role("button", name="Roll back to revision 1").click()
    page.get_by_role("heading", name="Roll back production to revision 1").wait_for()
    assert page.get_by_text("goes back to staging").count() == 1
    page.get_by_label("Reason").fill("bad release")
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("heading", name="Rolled production back to revision 1").wait_for()
    wait_for(
        lambda: "1.1.0" not in search_versions(server, "production", "hello_nginx"),
        "hello_nginx 1.1.0 gone from /production/search",
    )

    # sign out with the keyboard alone
    page.goto(url + "/")
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement && document.activeElement.textContent")
        if focused and focused.strip() == "Sign out":
            break
    else:
        raise AssertionError("Sign out is not reachable with Tab")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Sign in").wait_for()
    page.goto(url + "/history")
    assert page.url.startswith(url + "/signin")
    assert not dialogs and not errors
    context.close()


def test_refusal_for_a_token_without_the_scope(
    browser: Any, live: tuple[LiveServer, dict[str, str]]
) -> None:
    server, tokens = live
    page = browser.new_page()
    sign_in(page, server.manage_url, tokens["viewer"])
    page.goto(server.manage_url + "/packages/hello_nginx")
    page.get_by_role("button", name="Promote to production").click()
    page.get_by_label("Reason").fill("trying")
    page.get_by_role("button", name="Confirm").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "token viewer lacks the scope promote:production (it has: read)" in alert.inner_text()
    assert "1.1.0" not in search_versions(server, "production", "hello_nginx")
    page.goto(server.manage_url + "/distributions/production")
    page.get_by_label("Tag name").fill("8.13.0")
    page.get_by_role("button", name="Tag revision").click()
    page.get_by_role("button", name="Confirm").click()
    assert "lacks the scope tag:production" in page.get_by_role("alert").inner_text()
    page.close()


def test_hostile_package_content_is_shown_as_text(
    browser: Any, live: tuple[LiveServer, dict[str, str]]
) -> None:
    server, tokens = live
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, server.manage_url, tokens["viewer"])
    for path in ("/packages/xss_pkg", "/stages/snapshot", "/diff?a=snapshot&b=staging"):
        page.goto(server.manage_url + path)
        page.wait_for_load_state("load")
    page.goto(server.manage_url + "/packages/xss_pkg")
    heading = page.get_by_role("heading", level=1).inner_text()
    assert HOSTILE_TITLE in heading  # the markup as text
    readme = page.locator(".readme").inner_text()
    assert "<script>alert('readme')</script>" in readme
    assert page.locator(".readme script, .readme img[onerror]").count() == 0
    assert page.evaluate("document.scripts.length") == 0
    assert not dialogs
