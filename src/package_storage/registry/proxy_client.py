"""The upstream registry of the proxy mode: one HTTP client with the reference's retry policy.

Requests (spec §10): ``/search`` and ``/categories`` go to the upstream with the request's own
path and raw query (the upstream URL's scheme, user-info and host replace the request's; its
path is not prepended, as in the reference); a package is looked up as
``GET <origin>/package/<name>/<version>/``. Redirects are followed (registries may be
chained).

Retry policy (the reference's): every attempt has a time limit (``timeout``, 10 s); a
connection error, a time-out, a 429, a 5xx other than 501, or a 2xx whose ``Content-Type`` is
not ``application/json`` is retried, up to ``retries`` (4) more times, waiting
``wait_min * 2**attempt`` (capped at ``wait_max``; ``Retry-After`` of a 429/503 when it gives
seconds) between attempts. A response with a ``Location`` header is never retried.

Unavailable upstream (ours, the reference has no such state): when a request still fails after
its retries, the upstream is *paused* for ``pause`` seconds: requests during the pause fail at
once with :class:`UpstreamUnavailable` instead of each waiting through its retries, so local
answers stay fast. One warning line is logged when the upstream goes away and one info line
when it answers again.

Answers are decoded here (pure functions, tested without a network): upstream /search entries
and package documents keep the keys of the reference's schema, in its order
(``SEARCH_KEY_ORDER``/``FULL_KEY_ORDER``; other keys and nulls are dropped); their name and
version must parse, else the answer is unusable (:class:`UpstreamError`, a 500 for the client).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from package_storage.errors import UpstreamError, VersionError
from package_storage.packages.manifest import FULL_KEY_ORDER, SEARCH_KEY_ORDER
from package_storage.packages.model import JSONObject
from package_storage.packages.versions import Version

if TYPE_CHECKING:  # httpx is imported on first use: the read app starts without it
    import httpx

log = logging.getLogger(__name__)

USER_AGENT = "package-storage proxy mode"


class UpstreamUnavailable(UpstreamError):
    """The upstream failed (after its retries) recently and is paused."""

    code = "upstream_unavailable"


@dataclass(frozen=True, slots=True)
class UpstreamOptions:
    """Time limits and retries of upstream requests (seconds)."""

    timeout: float = 10.0
    retries: int = 4
    wait_min: float = 1.0
    wait_max: float = 15.0
    pause: float = 30.0

    @classmethod
    def for_timeout(cls, timeout: float, retries: int) -> UpstreamOptions:
        """Waits scaled to ``timeout`` (the defaults at 10 s): first wait a tenth of it (at most
        1 s), at most 15 such waits; paused for 3 times the timeout after a failure."""
        wait_min = min(1.0, timeout / 10)
        return cls(
            timeout=timeout,
            retries=retries,
            wait_min=wait_min,
            wait_max=15 * wait_min,
            pause=3 * timeout,
        )


@dataclass(frozen=True, slots=True)
class UpstreamEntry:
    """One decoded upstream /search entry."""

    name: str
    version: Version
    entry: JSONObject


@dataclass(frozen=True, slots=True)
class UpstreamCategory:
    id: str
    title: str
    count: int
    parent_id: str = ""
    parent_title: str = ""


# --- decoding (pure) -----------------------------------------------------------------------


def _ordered(data: Mapping[str, Any], order: Sequence[str]) -> JSONObject:
    return {key: data[key] for key in order if data.get(key) is not None}


def _identity(data: Any, what: str) -> tuple[str, Version]:
    if not isinstance(data, dict):
        raise UpstreamError(f"{what}: expected a JSON object, got {type(data).__name__}")
    name, version = data.get("name"), data.get("version")
    if not isinstance(name, str) or not name:
        raise UpstreamError(f"{what}: no package name")
    if not isinstance(version, str):
        raise UpstreamError(f"{what}: package {name} has no version")
    try:
        return name, Version.parse_lenient(version)
    except VersionError as exc:
        raise UpstreamError(f"{what}: package {name}: {exc.message}") from None


def decode_search(data: Any) -> list[UpstreamEntry]:
    """An upstream /search answer as entries in the reference's search-entry form."""
    if not isinstance(data, list):
        raise UpstreamError("upstream /search: expected a JSON array")
    out: list[UpstreamEntry] = []
    for item in data:
        name, version = _identity(item, "upstream /search")
        out.append(UpstreamEntry(name, version, _ordered(item, SEARCH_KEY_ORDER)))
    return out


def decode_categories(data: Any) -> list[UpstreamCategory]:
    """An upstream /categories answer."""
    if not isinstance(data, list):
        raise UpstreamError("upstream /categories: expected a JSON array")
    out: list[UpstreamCategory] = []
    for item in data:
        if not isinstance(item, dict):
            raise UpstreamError("upstream /categories: expected JSON objects")
        cid, title, count = item.get("id"), item.get("title", ""), item.get("count", 0)
        parent_id, parent_title = item.get("parent_id", ""), item.get("parent_title", "")
        if not isinstance(cid, str) or not all(
            isinstance(v, str) for v in (title, parent_id, parent_title)
        ):
            raise UpstreamError("upstream /categories: id and titles must be strings")
        if isinstance(count, bool) or not isinstance(count, int):
            raise UpstreamError(f"upstream /categories: count of {cid} is not an integer")
        out.append(UpstreamCategory(cid, title, count, parent_id, parent_title))
    return out


def decode_package(data: Any) -> tuple[str, Version, JSONObject]:
    """An upstream package document: (name, version, document in the full form)."""
    name, version = _identity(data, "upstream package")
    return name, version, _ordered(data, FULL_KEY_ORDER)


# --- the client ----------------------------------------------------------------------------


class Upstream:
    """The upstream registry at ``url`` (only its origin is used, see the module doc).

    Made in any thread; used from one event loop at a time (the HTTP client is created on
    first use, again if the loop changes, e.g. in a Granian worker).
    """

    def __init__(
        self,
        url: str,
        options: UpstreamOptions | None = None,
        *,
        strict: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.options = options or UpstreamOptions()
        self.strict = strict
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused_until = 0.0
        self._down = False
        self._ssl: ssl.SSLContext | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def shown(self) -> str:
        """The origin without user-info (for logs)."""
        parts = urlsplit(self.origin)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")

    @property
    def down(self) -> bool:
        """Whether the last request failed after its retries (until one succeeds)."""
        return self._down

    def url(self, path: str, raw_query: str = "") -> str:
        """The upstream URL of ``path`` (a decoded absolute path) and a raw query."""
        target = self.origin + quote(path, safe="/$&+,:;=@")
        return target + ("?" + raw_query if raw_query else "")

    async def fetch(self, path: str, raw_query: str) -> bytes:
        """The body of a 2xx answer to ``path`` and ``raw_query`` (JSON, not decoded)."""
        url = self.url(path, raw_query)
        response = await self._get(url)
        if not 200 <= response.status_code < 300:
            raise UpstreamError(f"upstream {url}: unexpected status {response.status_code}")
        return response.content

    async def search(self, path: str, raw_query: str) -> list[UpstreamEntry]:
        return decode_search(parse_json(await self.fetch(path, raw_query), path))

    async def categories(self, path: str, raw_query: str) -> list[UpstreamCategory]:
        return decode_categories(parse_json(await self.fetch(path, raw_query), path))

    async def package(self, name: str, version: str) -> tuple[str, Version, JSONObject] | None:
        """The upstream's document of ``name`` ``version``; None when it answers 404."""
        url = self.url(f"/package/{name}/{version}/")
        response = await self._get(url)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UpstreamError(f"upstream {url}: unexpected status {response.status_code}")
        return decode_package(parse_json(response.content, url))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- internals --------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._loop = loop
            if self._ssl is None:  # made once: loading the CA certificates takes a while
                self._ssl = httpx.create_ssl_context()
            self._client = httpx.AsyncClient(
                verify=self._ssl,
                timeout=httpx.Timeout(self.options.timeout),
                follow_redirects=True,
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
                headers={"user-agent": USER_AGENT},
                transport=self._transport,
            )
        return self._client

    async def _get(self, url: str) -> httpx.Response:
        if not self.strict and time.monotonic() < self._paused_until:
            raise UpstreamUnavailable(f"upstream {self.shown} is paused after a failure")
        try:
            # In a task of its own: the read server may start a request outside any task
            # (server.py's OneWriteProtocol), and httpx needs one.
            response = await asyncio.get_running_loop().create_task(self._attempts(url))
        except UpstreamError as exc:
            if not self.strict:
                self._paused_until = time.monotonic() + self.options.pause
                if not self._down:
                    self._down = True
                    log.warning(
                        f"proxy mode: upstream {self.shown} unavailable ({exc.message}); "
                        "/search and /categories answer from the local packages only, "
                        f"packages not found locally answer 500; trying again in "
                        f"{self.options.pause:g} s"
                    )
            raise
        if self._down:
            self._down = False
            log.info(f"proxy mode: upstream {self.shown} answers again")
        return response

    async def _attempts(self, url: str) -> httpx.Response:
        import httpx

        client = self._http()
        attempts = self.options.retries + 1
        problem = ""
        for attempt in range(attempts):
            response: httpx.Response | None = None
            try:
                response = await client.get(url)
            except httpx.TransportError as exc:  # connection errors and time-outs: retried
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except httpx.HTTPError as exc:  # too many redirects, bad URL: not retried
                raise UpstreamError(f"{url}: {type(exc).__name__}: {exc}") from None
            else:
                problem = _retry_reason(response)
                if not problem:
                    return response
            if attempt + 1 < attempts:
                wait = _backoff(attempt, response, self.options)
                log.debug(f"proxy mode: {url}: {problem}; retrying in {wait:g} s")
                await asyncio.sleep(wait)
        raise UpstreamError(
            f"{url}: giving up after {attempts} attempt{'s' if attempts > 1 else ''}: {problem}"
        )


def _retry_reason(response: httpx.Response) -> str:
    """Why ``response`` must be retried ("" when it must not)."""
    status = response.status_code
    if status == 429 or (status >= 500 and status != 501):
        return f"status {status}"
    if "location" in response.headers:
        return ""
    content_type = response.headers.get("content-type", "")
    if 200 <= status < 300 and not content_type.startswith("application/json"):
        return f"unexpected content type: {content_type}"
    return ""


def _backoff(attempt: int, response: httpx.Response | None, options: UpstreamOptions) -> float:
    if response is not None and response.status_code in (429, 503):
        after = response.headers.get("retry-after", "")
        if after.isdigit():
            return min(float(after), options.wait_max)
    return float(min(options.wait_min * (2**attempt), options.wait_max))


def parse_json(content: bytes, what: str) -> Any:
    """``content`` parsed; :class:`UpstreamError` naming ``what`` when it is not JSON."""
    try:
        return json.loads(content)
    except ValueError as exc:
        raise UpstreamError(f"upstream {what}: the answer is not JSON: {exc}") from None
