"""The web UI in-process: every page and action, sign-in, cookies, CSRF, CSP, scope refusals,
hostile package content shown as text."""

from __future__ import annotations

import re
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from web_helpers import HOSTILE_TITLE, MakeToken, csrf_of, sign_in

from package_storage.manage.app import create_app
from package_storage.store.directory import Store
from package_storage.store.storage.base import EventFilter
from package_storage.web.app import beside_api, create_ui
from package_storage.web.headers import CONTENT_SECURITY_POLICY

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PAGES = (
    "/",
    "/stages/production",
    "/stages/staging",
    "/stages/snapshot",
    "/stages/snapshot?q=hello&category=web",
    "/packages/hello_nginx",
    "/packages/hello_nginx?version=1.2.0",
    "/packages/xss_pkg",
    "/diff",
    "/diff?a=staging&b=production",
    "/diff?a=production@first&b=production",
    "/history",
    "/history?stage=production&package=hello_nginx&actor=setup",
    "/events/1",
    "/distributions/production",
    "/distributions/production/revisions/1",
    "/distributions/production/revisions/first",
)


class Page(HTMLParser):
    """The parts of a page the tests look at: tables and their captions, buttons, labels,
    links, forms and their fields, scripts, event-handler attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables = 0
        self.captions = 0
        self.buttons: list[str] = []
        self.labels: dict[str, str] = {}  # for= -> text
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (text, href)
        self.forms: list[dict[str, Any]] = []
        self.scripts = 0
        self.handlers: list[str] = []
        self._text: list[str] | None = None
        self._tag: tuple[str, dict[str, str]] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.handlers += [k for k in a if k.startswith("on")]
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "table":
            self.tables += 1
        elif tag == "script":
            self.scripts += 1
        elif tag == "form":
            self.forms.append({"method": a.get("method", "get"), "fields": {}})
        elif tag in ("input", "textarea") and self.forms:
            self.forms[-1]["fields"][a.get("name", "")] = a.get("value", "")
        if tag in ("caption", "button", "label", "a"):
            self._text, self._tag = [], (tag, a)

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._tag is None or self._tag[0] != tag or self._text is None:
            return
        text = " ".join("".join(self._text).split())
        attrs = self._tag[1]
        if tag == "caption":
            self.captions += 1
        elif tag == "button":
            self.buttons.append(text)
        elif tag == "label":
            self.labels[attrs.get("for", "")] = text
        elif tag == "a":
            self.links.append((text, attrs.get("href", "")))
        self._text = self._tag = None


@pytest.fixture
def admin(client: TestClient, make_token: MakeToken) -> TestClient:
    sign_in(client, make_token("admin", name="alice"))
    return client


def post(client: TestClient, url: str, page: str, **fields: str) -> Any:
    """POST a form of this UI with the CSRF value of ``page`` (a URL to read it from)."""
    csrf = csrf_of(client.get(page).text)
    return client.post(url, data={"csrf": csrf, **fields}, follow_redirects=False)


# --- sign-in, cookies, headers ---------------------------------------------------------------


def test_every_page_redirects_to_sign_in_without_a_token(client: TestClient) -> None:
    for url in PAGES:
        answer = client.get(url, follow_redirects=False)
        assert answer.status_code == 303, url
        assert answer.headers["location"].startswith("/signin"), url
    answer = client.get("/stages/production", follow_redirects=False)
    assert answer.headers["location"] == "/signin?next=%2Fstages%2Fproduction"


def test_sign_in_page_has_the_token_field_and_button(client: TestClient) -> None:
    answer = client.get("/signin")
    page = Page(answer.text)
    assert answer.status_code == 200
    assert page.labels["token"] == "Token" and "token" in page.ids
    assert page.buttons == ["Sign in"]
    assert page.forms[0]["method"] == "post" and page.forms[0]["fields"]["csrf"]
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY  # default-src 'none': no script at all
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert page.scripts == 0


def test_sign_in_sets_strict_http_only_cookies(client: TestClient, make_token: MakeToken) -> None:
    answer = sign_in(client, make_token("read"))
    cookies = answer.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("ps_session="))
    for cookie in cookies:
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http here
    assert answer.headers["location"] == "/"
    assert client.get("/").status_code == 200
    assert session


def test_cookies_are_secure_under_tls(store: Store, make_token: MakeToken) -> None:
    with TestClient(create_ui(store, tls=True), base_url="https://testserver") as tls:
        answer = sign_in(tls, make_token("read"))
        cookies = answer.headers.get_list("set-cookie")
        assert cookies and all("Secure" in c for c in cookies)
        assert "strict-transport-security" in tls.get("/").headers


def test_sign_in_refuses_a_wrong_token_with_the_reason(client: TestClient) -> None:
    page = client.get("/signin")
    answer = client.post("/signin", data={"csrf": csrf_of(page.text), "token": "pst_0_nope"})
    assert answer.status_code == 401
    assert "sign-in refused" in answer.text
    assert "ps_session" not in answer.headers.get("set-cookie", "")


def test_sign_in_needs_the_csrf_field(client: TestClient, make_token: MakeToken) -> None:
    client.get("/signin")
    answer = client.post("/signin", data={"token": make_token("read")}, follow_redirects=False)
    assert answer.status_code == 403
    assert "ps_session" not in answer.headers.get("set-cookie", "")


def test_sign_in_goes_back_only_to_a_page_of_this_site(
    client: TestClient, make_token: MakeToken
) -> None:
    secret = make_token("read")
    csrf = csrf_of(client.get("/signin").text)
    for target, expected in (("/history", "/history"), ("//evil.example", "/"), ("https://x", "/")):
        answer = client.post(
            "/signin",
            data={"csrf": csrf, "token": secret, "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == expected
        csrf = csrf_of(client.get("/signin").text)


def test_sign_out_ends_the_session(admin: TestClient) -> None:
    answer = post(admin, "/signout", "/")
    assert answer.status_code == 303 and answer.headers["location"] == "/signin"
    assert (
        'ps_session=""' in answer.headers["set-cookie"]
        or "Max-Age=0" in answer.headers["set-cookie"]
    )
    assert admin.get("/", follow_redirects=False).status_code == 303


def test_a_revoked_token_signs_out_on_the_next_page(
    client: TestClient, store: Store, make_token: MakeToken
) -> None:
    sign_in(client, make_token("read", name="bob"))
    assert client.get("/").status_code == 200
    store.service("setup").revoke_token("bob")
    answer = client.get("/history", follow_redirects=False)
    assert answer.status_code == 303 and "expired=1" in answer.headers["location"]
    assert "no longer signs in" in client.get(answer.headers["location"]).text


# --- pages -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", PAGES)
def test_every_page_answers_with_captioned_tables_and_the_navigation(
    client: TestClient, make_token: MakeToken, url: str
) -> None:
    sign_in(client, make_token("read"))
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    page = Page(answer.text)
    assert page.tables == page.captions, "every table has a caption"
    nav = [text for text, _ in page.links]
    for name in ("Overview", "History", "snapshot", "staging", "production"):
        assert name in nav
    assert ("History", "/history") in page.links and ("Overview", "/") in page.links
    assert "Sign out" in page.buttons
    assert page.scripts == 0 and not page.handlers
    for form in page.forms:
        if form["method"] == "post":
            assert form["fields"].get("csrf"), "every POST form carries the CSRF field"
    for label_for in page.labels:
        assert label_for in page.ids, f"label for={label_for} names a field"


def test_overview_shows_rules_counts_revisions_last_change_and_tags(admin: TestClient) -> None:
    text = admin.get("/").text
    assert "overwrite: never" in text and "remove: only when forced, with a reason" in text
    assert "revision 1" in text and ">first</a>" in text
    assert "setup, <time" in text
    assert "/diff?a=staging&amp;b=production" in text


def test_stage_page_lists_packages_and_filters_by_name_and_category(admin: TestClient) -> None:
    text = admin.get("/stages/snapshot").text
    assert 'href="/packages/hello_nginx"' in text and 'href="/packages/xss_pkg"' in text
    assert "Hello NGINX" in text and ">1.2.0</a>" in text
    assert '<option value="web">' in text
    only = admin.get("/stages/snapshot?q=nginx").text
    assert "hello_nginx" in only and "xss_pkg" not in only
    none = admin.get("/stages/snapshot?category=security").text
    assert "No package matches the filter" in none


def test_package_page_shows_the_matrix_readme_changelog_and_events(admin: TestClient) -> None:
    answer = admin.get("/packages/hello_nginx")
    page = Page(answer.text)
    text = answer.text
    assert "Promote to staging" in page.buttons and "Promote to production" in page.buttons
    assert "Remove from snapshot" in page.buttons and "Remove from staging" in page.buttons
    assert "Remove from production" not in page.buttons  # production never removes
    assert "served by production, staging, snapshot" in text
    assert "^8.13.0 || ^9.0.0" in text and "Release 1.2.0." in text
    assert '<div class="readme">' in text and "<h4>" in text  # README headings shifted
    chosen = admin.get("/packages/hello_nginx?version=1.0.0").text
    assert "first release" in chosen  # the promote event's reason
    icon = re.search(r"/artifacts/([0-9a-f]{64})/icon", text)
    assert icon is not None
    image = admin.get(icon.group(0))
    assert image.headers["content-type"].startswith("image/svg+xml")
    assert "sandbox" in image.headers["content-security-policy"]


def test_hostile_title_and_readme_are_shown_as_text(admin: TestClient) -> None:
    for url in ("/packages/xss_pkg", "/stages/snapshot", "/diff?a=snapshot&b=staging"):
        text = admin.get(url).text
        page = Page(text)
        assert page.scripts == 0 and not page.handlers, url
        assert "<script" not in text.lower() and 'href="javascript' not in text
    text = admin.get("/packages/xss_pkg").text
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in text
    assert "&lt;script&gt;alert('readme')&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(3)&gt;" in text
    assert "<strong>bold</strong>" in text  # Markdown is still rendered
    assert "[click me](javascript:alert(4))" in text  # no link made of it
    assert HOSTILE_TITLE not in text


def test_promotion_preview_lists_differences_with_changelog_and_buttons(admin: TestClient) -> None:
    answer = admin.get("/diff?a=staging&b=production")
    text = answer.text
    assert "Only in staging: 1" in text and "Only in production: 0" in text
    assert "Release 1.1.0." in text
    assert Page(text).buttons.count("Promote to production") == 1
    since = admin.get("/diff?a=production@first&b=production").text
    assert "production@first and production serve the same versions" in since
    bad = admin.get("/diff?a=nope&b=production")
    assert bad.status_code == 404 and "stage nope does not exist" in bad.text


def test_history_filters_and_links_events_to_their_revisions(admin: TestClient) -> None:
    text = admin.get("/history?stage=production").text
    assert "[production] Promote hello_nginx-1.0.0 from staging" in text
    assert "[snapshot]" not in text
    assert "Publish" not in admin.get("/history?actor=nobody").text
    promote = re.search(
        r'href="/events/(\d+)">\d+</a></td>\s*<td><time[^<]*</time></td>\s*<td>'
        r"<a[^>]*>setup</a></td>\s*<td><a[^>]*>\[production\] Promote",
        text,
    )
    assert promote is not None
    assert f'href="/events/{promote.group(1)}">revisions made' in text
    detail = admin.get(f"/events/{promote.group(1)}").text
    assert 'href="/distributions/production/revisions/1"' in detail
    assert admin.get("/events/999999").status_code == 404
    assert admin.get("/history?page=x").status_code == 400


def test_revisions_page_lists_revisions_tags_and_actions(admin: TestClient) -> None:
    answer = admin.get("/distributions/staging")
    page = Page(answer.text)
    assert page.labels["tag-name"] == "Tag name"
    assert "Tag revision" in page.buttons
    assert "Roll back to revision 1" in page.buttons
    assert "Roll back to revision 2" in page.buttons
    assert "Roll back to revision 3" not in page.buttons  # the current one
    first = admin.get("/distributions/production/revisions/first").text
    assert "production revision 1" in first


# --- actions ---------------------------------------------------------------------------------


def test_promote_confirms_then_promotes_with_the_reason(admin: TestClient, store: Store) -> None:
    preview = post(
        admin, "/packages/hello_nginx/1.1.0/promote", "/packages/hello_nginx",
        to="production", **{"from": "staging"},
    )  # fmt: skip
    page = Page(preview.text)
    assert preview.status_code == 200 and page.buttons[-1] == "Confirm"
    assert page.labels["reason"].startswith("Reason")
    assert "moves from staging to production" in preview.text
    assert store.catalog.get_entry("production", "hello_nginx", "1.1.0") is None  # not yet
    done = post(
        admin, "/packages/hello_nginx/1.1.0/promote", "/packages/hello_nginx",
        to="production", confirm="1", reason="release 8.13", **{"from": "staging"},
    )  # fmt: skip
    assert done.status_code == 200
    assert "promoted hello_nginx 1.1.0 from staging to production" in done.text
    assert store.catalog.get_entry("production", "hello_nginx", "1.1.0") is not None
    event = store.catalog.events(EventFilter(action="promote", newest_first=True, limit=1))[0]
    assert event.actor == "alice" and event.reason == "release 8.13"


def test_remove_where_the_rule_asks_for_a_reason(admin: TestClient, store: Store) -> None:
    preview = post(
        admin, "/packages/hello_nginx/1.1.0/remove", "/packages/hello_nginx", stage="staging"
    )
    assert "asks for a reason" in preview.text and "required" in preview.text
    refused = post(
        admin, "/packages/hello_nginx/1.1.0/remove", "/packages/hello_nginx",
        stage="staging", force="1", confirm="1",
    )  # fmt: skip
    assert refused.status_code == 403
    assert "stage staging removes a version only with a reason" in refused.text
    assert store.catalog.get_entry("staging", "hello_nginx", "1.1.0") is not None
    done = post(
        admin, "/packages/hello_nginx/1.1.0/remove", "/packages/hello_nginx",
        stage="staging", force="1", confirm="1", reason="broken build",
    )  # fmt: skip
    assert "removed hello_nginx 1.1.0 from staging" in done.text
    assert store.catalog.get_entry("staging", "hello_nginx", "1.1.0") is None


def test_a_rule_refusal_shows_the_service_message(admin: TestClient) -> None:
    refused = post(
        admin, "/packages/hello_nginx/1.0.0/remove", "/packages/hello_nginx",
        stage="production", confirm="1",
    )  # fmt: skip
    assert refused.status_code == 403
    assert "stage production never removes a version: cannot remove hello_nginx 1.0.0" in (
        refused.text
    )


def test_tag_confirms_records_the_reason_and_refuses_a_taken_name(
    admin: TestClient, store: Store
) -> None:
    preview = post(
        admin, "/distributions/production/tag", "/distributions/production", tag="8.12.0"
    )
    assert "production@8.12.0 names revision 1" in preview.text
    assert store.catalog.tags("production")[-1].tag == "first"
    done = post(
        admin, "/distributions/production/tag", "/distributions/production",
        tag="8.12.0", revision="1", confirm="1", reason="Kibana 8.12 release",
    )  # fmt: skip
    assert "tagged revision 1 of production as 8.12.0" in done.text
    event = store.catalog.events(EventFilter(action="tag", newest_first=True, limit=1))[0]
    assert event.reason == "Kibana 8.12 release" and event.actor == "alice"
    again = post(
        admin, "/distributions/production/tag", "/distributions/production",
        tag="8.12.0", confirm="1",
    )  # fmt: skip
    assert again.status_code == 409 and "8.12.0" in again.text
    bad = post(admin, "/distributions/production/tag", "/distributions/production", tag="123")
    assert bad.status_code == 400


def test_rollback_shows_the_plan_then_rolls_back(admin: TestClient, store: Store) -> None:
    post(
        admin, "/packages/hello_nginx/1.1.0/promote", "/packages/hello_nginx",
        to="production", confirm="1", **{"from": "staging"},
    )  # fmt: skip
    preview = post(
        admin, "/distributions/production/rollback", "/distributions/production", revision="1"
    )
    assert "production serves revision 1 again (now revision 2)" in preview.text
    assert "goes back to staging, where it was promoted from" in preview.text
    done = post(
        admin, "/distributions/production/rollback", "/distributions/production",
        revision="1", confirm="1", reason="bad release",
    )  # fmt: skip
    assert done.status_code == 200
    current = store.catalog.current_revision("production")
    assert current is not None and current.number == 1
    assert store.catalog.get_entry("staging", "hello_nginx", "1.1.0") is not None


def test_a_token_without_the_scope_is_refused_with_the_service_message(
    client: TestClient, store: Store, make_token: MakeToken
) -> None:
    sign_in(client, make_token("read", name="viewer"))
    preview = post(
        client, "/packages/hello_nginx/1.1.0/promote", "/packages/hello_nginx",
        to="production", **{"from": "staging"},
    )  # fmt: skip
    assert preview.status_code == 200  # looking is a read
    refused = post(
        client, "/packages/hello_nginx/1.1.0/promote", "/packages/hello_nginx",
        to="production", confirm="1", **{"from": "staging"},
    )  # fmt: skip
    assert refused.status_code == 403
    assert "token viewer lacks the scope promote:production (it has: read)" in refused.text
    assert store.catalog.get_entry("production", "hello_nginx", "1.1.0") is None
    for url, fields in (
        ("/distributions/production/tag", {"tag": "x1", "confirm": "1"}),
        ("/distributions/production/rollback", {"revision": "1", "confirm": "1"}),
    ):
        answer = post(client, url, "/", **fields)
        assert answer.status_code == 403 and "lacks the scope" in answer.text


def test_forms_without_a_valid_csrf_field_change_nothing(admin: TestClient, store: Store) -> None:
    fields = {"to": "production", "from": "staging", "confirm": "1"}
    url = "/packages/hello_nginx/1.1.0/promote"
    assert admin.post(url, data=fields).status_code == 403
    assert admin.post(url, data={**fields, "csrf": "0" * 64}).status_code == 403
    csrf = csrf_of(admin.get("/").text)
    other = admin.post(url, data={**fields, "csrf": csrf}, headers={"origin": "https://evil.test"})
    assert other.status_code == 403
    cross = admin.post(url, data={**fields, "csrf": csrf}, headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403
    assert store.catalog.get_entry("production", "hello_nginx", "1.1.0") is None
    assert admin.post(url, data={**fields, "csrf": csrf}).status_code == 200


def test_the_csrf_value_is_bound_to_the_session(
    client: TestClient, store: Store, make_token: MakeToken
) -> None:
    sign_in(client, make_token("admin", name="first"))
    old = csrf_of(client.get("/").text)
    sign_in(client, make_token("admin", name="second"))
    assert csrf_of(client.get("/").text) != old
    answer = client.post(
        "/packages/hello_nginx/1.1.0/promote",
        data={"csrf": old, "to": "production", "from": "staging", "confirm": "1"},
    )
    assert answer.status_code == 403


def test_bad_input_is_one_clear_line(admin: TestClient) -> None:
    assert admin.get("/stages/nope").status_code == 404
    answer = admin.get("/packages/hello_nginx?version=9.9.9")
    assert answer.status_code == 400 and "has no such version" in answer.text
    assert admin.get("/nowhere").status_code == 404
    assert admin.get("/stages/snapshot?q=" + "x" * 300).status_code == 400


def test_the_ui_sits_beside_the_management_api(store: Store, make_token: MakeToken) -> None:
    both = beside_api(create_ui(store), create_app(store))
    secret = make_token("read")
    with TestClient(both) as combined:
        api = combined.get("/api/v1/whoami", headers={"authorization": f"Bearer {secret}"})
        assert api.status_code == 200 and api.json()["name"]
        assert combined.get("/api/v1/nope").json()["error"]["code"] == "not_found"
        assert combined.get("/", follow_redirects=False).headers["location"] == "/signin"


def test_static_stylesheet(client: TestClient) -> None:
    answer = client.get("/static/ui.css")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/css")
    assert client.get("/static/nope.js").status_code == 404


def test_pages_of_an_empty_store(tmp_path: Path) -> None:
    with Store.init(tmp_path / "empty") as empty:
        _, secret = empty.service("setup").create_token("viewer", ["read"])
        with TestClient(create_ui(empty)) as client:
            sign_in(client, secret)
            for url in ("/", "/stages/production", "/history", "/distributions/production"):
                assert client.get(url).status_code == 200, url
            answer = client.get("/diff?a=staging&b=production")
            assert answer.status_code == 404 and "has no revision yet" in answer.text
