"""Helpers of the web UI tests (a plain module, imported by name; also by the browser tests
and the screenshot script)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from test_service import make_package

from package_storage.store.directory import Store
from token_fixtures import MakeToken as MakeToken

HOSTILE_TITLE = '<script>alert("title")</script><img src=x onerror=alert(2)>'
HOSTILE_README = (
    "# Hostile README\n\n<script>alert('readme')</script>\n\n<img src=x onerror=alert(3)>\n\n"
    "[click me](javascript:alert(4))\n\nPlain **bold** text.\n"
)


def hostile_package(root: Path, version: str = "2.0.0") -> Path:
    """A valid package whose title and README try to run script."""
    folder = make_package(root, version, name="xss_pkg")
    manifest = folder / "manifest.yml"
    quoted = HOSTILE_TITLE.replace('"', '\\"')
    manifest.write_text(
        re.sub(r"(?m)^title: .*$", f'title: "{quoted}"', manifest.read_text(), count=1)
    )
    (folder / "docs" / "README.md").write_text(HOSTILE_README)
    return folder


def build_store(root: Path, packages: Path) -> Store:
    """hello_nginx 1.0.0 in production, 1.1.0 in staging, 1.2.0 in snapshot; production
    tagged ``first``; xss_pkg 2.0.0 (hostile title and README) in snapshot."""
    store = Store.init(root)
    svc = store.service("setup")
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        svc.publish(make_package(packages, version))
    svc.promote("hello_nginx", "1.0.0", to="staging")
    svc.promote("hello_nginx", "1.0.0", to="production", reason="first release")
    svc.promote("hello_nginx", "1.1.0", to="staging")
    svc.tag("production", "first")
    svc.publish(hostile_package(packages))
    return store


CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found is not None, "no CSRF field in the page"
    return found.group(1)


def sign_in(client: Any, secret: str) -> Any:
    """Sign ``client`` (a test client or httpx.Client) in; the answer of the POST."""
    page = client.get("/signin")
    answer = client.post(
        "/signin",
        data={"csrf": csrf_of(page.text), "token": secret, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return answer
