"""Helpers of the management API tests (a plain module, imported by name)."""

from __future__ import annotations

from pathlib import Path

import httpx
from test_service import make_package

from live_manage import LiveServer
from package_storage.store.directory import Store
from token_fixtures import MakeToken as MakeToken


def build_store(root: Path, packages: Path) -> Store:
    """hello_nginx 1.0.0 in production, 1.1.0 in staging, 1.2.0 in snapshot; production
    tagged ``first``."""
    store = Store.init(root)
    svc = store.service("setup")
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        svc.publish(make_package(packages, version))
    svc.promote("hello_nginx", "1.0.0", to="staging")
    svc.promote("hello_nginx", "1.0.0", to="production")
    svc.promote("hello_nginx", "1.1.0", to="staging")
    svc.tag("production", "first")
    return store


def auth(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def live_client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.manage_url, timeout=60)
