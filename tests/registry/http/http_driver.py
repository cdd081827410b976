"""A tiny in-process ASGI driver and helpers for the read-API tests."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from package_storage.registry.http.app import AppOptions, ASGIApp, RegistryIndex
from package_storage.registry.index import RegistryIndex as Index
from package_storage.registry.sources import load_sources

FIXTURES = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "epr"
GOLDENS = FIXTURES / "generated"

# The conformance setups' cache times (cases.md): every cache time 1 s.
ONE_SECOND = AppOptions(
    cache_time_index=1.0,
    cache_time_search=1.0,
    cache_time_categories=1.0,
    cache_time_catch_all=1.0,
)


@dataclass
class Result:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    messages: int
    pathsend: str | None = None

    def values(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def header(self, name: str) -> str | None:
        values = self.values(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
        return values[0] if values else None

    @property
    def text(self) -> str:
        return self.body.decode()


async def call_app(
    app: ASGIApp,
    target: str | bytes,
    *,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    raw_path: bool = True,
    extensions: dict[str, Any] | None = None,
) -> Result:
    """Run one request through ``app``; ``target`` is the raw request target (path?query)."""
    raw = target.encode("latin-1") if isinstance(target, str) else target
    path_part, _, query = raw.partition(b"?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote_to_bytes(path_part).decode("utf-8", "replace"),
        "query_string": query,
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    if raw_path:
        scope["raw_path"] = path_part
    if extensions is not None:
        scope["extensions"] = extensions
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent, "no response"
    start = sent[0]
    assert start["type"] == "http.response.start"
    bodies = sent[1:]
    if bodies and bodies[-1]["type"] == "http.response.pathsend":
        assert len(bodies) == 1
        return Result(
            status=start["status"],
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]],
            body=Path(bodies[0]["path"]).read_bytes(),
            messages=0,
            pathsend=bodies[0]["path"],
        )
    assert bodies and all(m["type"] == "http.response.body" for m in bodies)
    assert all(m.get("more_body", False) for m in bodies[:-1])
    assert not bodies[-1].get("more_body", False)
    return Result(
        status=start["status"],
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]],
        body=b"".join(m.get("body", b"") for m in bodies),
        messages=len(bodies),
    )


def request(app: ASGIApp, target: str | bytes, **kwargs: Any) -> Result:
    return asyncio.run(call_app(app, target, **kwargs))


class PrefixRegistry:
    """Serves ``default`` un-prefixed and each of ``prefixes`` under ``/<prefix>/``."""

    def __init__(self, default: RegistryIndex | None, prefixes: dict[str, RegistryIndex]) -> None:
        self.default = default
        self.prefixes = prefixes

    def resolve(self, prefix: str | None) -> RegistryIndex | None:
        return self.default if prefix is None else self.prefixes.get(prefix)


def load_index(*paths: Path) -> Index:
    return Index(load_sources([str(p) for p in paths]))
