"""Prometheus metrics of the read API (spec §2.10) and the ``/metrics`` ASGI app.

Metrics are registered on a ``CollectorRegistry`` passed in (never the global one), so tests
and several apps in one process do not collide. HTTP metrics are recorded only when the read
app was given a :class:`Metrics` (i.e. when the metrics listener is enabled).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

NAMESPACE = "epr"
SIZE_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 65536, 262144)
HTTP_LABELS = ("code", "method", "path")

# Indexer label values of epr_indexer_get_duration_seconds (spec §2.10).
INDEXER_ZIP = "ZipFileSystemIndexer"
INDEXER_FOLDER = "FileSystemIndexer"


class Metrics:
    """The ``epr_*`` metric families, registered on ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        version: str,
        instance: str | None = None,
    ) -> None:
        self.registry = registry
        self.service_info = Gauge(
            "service_info",
            "Version information about this binary",
            ("version", "instance"),
            namespace=NAMESPACE,
            registry=registry,
        )
        self.service_info.labels(version, instance or socket.gethostname()).set(1)
        self.in_flight = Gauge(
            "in_flight_requests",
            "A gauge of requests currently being served by the http server.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.requests = Counter(
            "http_requests",
            "A counter for requests to the http server.",
            HTTP_LABELS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "A histogram of latencies for requests to the http server.",
            HTTP_LABELS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.request_size = Histogram(
            "http_request_size_bytes",
            "A histogram of sizes of requests to the http server.",
            HTTP_LABELS,
            buckets=SIZE_BUCKETS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.response_size = Histogram(
            "http_response_size_bytes",
            "A histogram of response sizes for requests.",
            HTTP_LABELS,
            buckets=SIZE_BUCKETS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.indexed_packages = Gauge(
            "number_indexed_packages",
            "Number of indexed packages.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.storage_requests = Counter(
            "storage_requests",
            "A counter for requests done to the storage.",
            ("location", "component"),
            namespace=NAMESPACE,
            registry=registry,
        )
        self.indexer_get_duration = Histogram(
            "indexer_get_duration_seconds",
            "A histogram of latencies for get processes run by the indexer.",
            ("indexer",),
            namespace=NAMESPACE,
            registry=registry,
        )
        self.storage_update_duration = Histogram(
            "storage_indexer_update_index_duration_seconds",
            "A histogram of latencies for update index processes run by the storage indexer.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.storage_update_success = Counter(
            "storage_indexer_update_index_success",
            "A counter for all the update index processes that finished successfully.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.storage_update_error = Counter(
            "storage_indexer_update_index_error",
            "A counter for all the update index processes that finished with error.",
            namespace=NAMESPACE,
            registry=registry,
        )

    def observe_request(
        self,
        *,
        method: str,
        path: str,
        code: int,
        duration: float,
        request_size: int,
        response_size: int,
    ) -> None:
        """Record one answered request; ``path`` is the matched route template."""
        labels = (str(code), method.lower(), path)
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(duration)
        self.request_size.labels(*labels).observe(request_size)
        self.response_size.labels(*labels).observe(response_size)

    def storage_request(self, *, component: str, location: str = "local") -> None:
        """Count a served artifact/static/signature (``component``: artifacts|statics|signatures)."""
        self.storage_requests.labels(location, component).inc()


def metrics_app(registry: CollectorRegistry) -> Callable[..., Awaitable[None]]:
    """ASGI app of the metrics listener: ``/metrics`` only, ``404 page not found`` elsewhere."""
    not_found = b"404 page not found\n"

    async def app(scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics":
            status, ctype, body = 200, CONTENT_TYPE_LATEST.encode(), generate_latest(registry)
        else:
            status, ctype, body = 404, b"text/plain; charset=utf-8", not_found
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        if status != 200:
            headers.append((b"x-content-type-options", b"nosniff"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        body_out = b"" if scope.get("method") == "HEAD" else body
        await send({"type": "http.response.body", "body": body_out})

    return app
