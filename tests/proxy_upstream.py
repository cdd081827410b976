"""A canned upstream registry on loopback for the proxy-mode tests.

``CannedUpstream`` is a real HTTP server (stdlib, one thread per request) answering ``/search``
and ``/categories`` with fixed JSON bodies, and anything else from ``routes``. Its ``mode``
changes what it does, at any time: ``ok``; ``fail`` (503 every time); ``fail:N`` (503 for the
next N requests, then ``ok``); ``hang`` (never answers within the client's time limit);
``text`` (200 with ``text/html``). Every request target is recorded in ``seen``.

The fixed bodies are the upstream of the reference's proxy goldens (spec §10): ``nginx``
1.15.0 plus a duplicate of the local ``datasources`` 1.0.0 for ``/search``; ``custom`` 10 and
``custom_logs`` 3 for ``/categories``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NGINX_ENTRY: dict[str, Any] = {
    "name": "nginx",
    "title": "Nginx",
    "version": "1.15.0",
    "release": "ga",
    "description": "Collect logs and metrics from Nginx HTTP servers with Elastic Agent.",
    "type": "integration",
    "download": "/epr/nginx/nginx-1.15.0.zip",
    "path": "/package/nginx/1.15.0",
    "icons": [
        {
            "src": "/img/logo_nginx.svg",
            "path": "/package/nginx/1.15.0/img/logo_nginx.svg",
            "title": "logo nginx",
            "size": "32x32",
            "type": "image/svg+xml",
        }
    ],
    "policy_templates": [
        {
            "name": "nginx",
            "title": "Nginx logs and metrics",
            "description": "Collect logs and metrics from Nginx instances",
        }
    ],
    "conditions": {"kibana": {"version": "^8.8.0"}},
    "owner": {"github": "elastic/obs-infraobs-integrations"},
    "categories": ["web", "observability"],
    "signature_path": "/epr/nginx/nginx-1.15.0.zip.sig",
}

DATASOURCES_ENTRY: dict[str, Any] = {
    "name": "datasources",
    "title": "Default datasource Integration",
    "version": "1.0.0",
    "release": "beta",
    "description": "Package with data sources",
    "type": "integration",
    "download": "/epr/datasources/datasources-1.0.0.zip",
    "path": "/package/datasources/1.0.0",
    "policy_templates": [
        {
            "name": "nginx",
            "title": "Datasource title",
            "description": "Details about the data source.",
            "data_streams": [
                "datasources.examplelog1",
                "datasources.examplelog2",
                "datasources.examplemetric",
            ],
        }
    ],
    "categories": ["custom"],
}

SEARCH_BODY = [NGINX_ENTRY, DATASOURCES_ENTRY]
CATEGORIES_BODY = [
    {"id": "custom", "title": "Custom", "count": 10},
    {
        "id": "custom_logs",
        "title": "Custom Logs",
        "count": 3,
        "parent_id": "custom",
        "parent_title": "Custom",
    },
]


class CannedUpstream:
    def __init__(
        self,
        search: Any = SEARCH_BODY,
        categories: Any = CATEGORIES_BODY,
        routes: dict[str, tuple[int, dict[str, str], bytes]] | None = None,
        hang_seconds: float = 5.0,
    ) -> None:
        self.search = search
        self.categories = categories
        self.routes = dict(routes or {})
        self.mode = "ok"
        self.hang_seconds = hang_seconds
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for target in self.seen if target.startswith(prefix))

    def _answer(self, target: str) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.seen.append(target)
            mode = self.mode
            if mode.startswith("fail:"):
                left = int(mode.split(":", 1)[1])
                self.mode = f"fail:{left - 1}" if left > 1 else "ok"
                mode = "fail"
        if mode == "fail":
            return 503, {"content-type": "text/plain"}, b"unavailable\n"
        if mode == "hang":
            self._stop.wait(self.hang_seconds)
            return 503, {"content-type": "text/plain"}, b"late\n"
        if mode == "text":
            return 200, {"content-type": "text/html"}, b"<html>captive portal</html>"
        path = target.partition("?")[0]
        json_type = {"content-type": "application/json"}
        if path == "/search":
            return 200, json_type, (json.dumps(self.search, indent=2) + "\n").encode()
        if path == "/categories":
            return 200, json_type, (json.dumps(self.categories, indent=2) + "\n").encode()
        if path in self.routes:
            return self.routes[path]
        return 404, {"content-type": "text/plain"}, b"404 page not found\n"

    def __enter__(self) -> CannedUpstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = upstream._answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def canned_upstream(**kwargs: Any) -> Iterator[CannedUpstream]:
    with CannedUpstream(**kwargs) as upstream:
        yield upstream


def wait_until(predicate: Any, *, tries: int = 200, every: float = 0.05) -> bool:
    """Poll ``predicate`` a bounded number of times."""
    for _ in range(tries):
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())
