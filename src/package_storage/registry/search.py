"""Search, categories and exact lookup over ordered package sources (spec §3, §4, §5).

Pure: takes the loaded packages (one sequence per source, in precedence order) and a parsed
:class:`Query`, returns plain JSON-ready values. Rendering to bytes and caching live in
``index.py``.

A request is answered the reference's way: every source is filtered on its own (§4.1/§4.2),
including latest-version selection and the category filter; the per-source results are then
joined (earlier source wins on equal name+version, §4.3), reduced to the newest version per
name again unless ``all=true``, and sorted by name then version (§4.5).

Errors: :class:`QueryError` for bad parameters (exact §3.3 texts); :class:`PackageError` when
``spec.min``/``spec.max`` is asked for and a package that reaches that test has no spec
version (the reference's "indexer error": the HTTP layer answers it with 404
``fetching package failed: <message>`` on /search and 404 ``<message>`` on /categories).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_to_bytes

from package_storage.errors import PackageError, QueryError, VersionError
from package_storage.packages.categories import CATEGORIES, SUBCATEGORIES
from package_storage.packages.model import JSONObject, Package
from package_storage.packages.versions import Version

Endpoint = Literal["search", "categories"]

MAX_QUERY_LENGTH = 8 * 1024
"""Longest raw query string accepted (characters)."""

MAX_QUERY_PARAMETERS = 100
"""Most ``&``-separated pairs accepted in one query string."""

_COMMON_PARAMETERS = frozenset(
    {
        "kibana.version",
        "agent.version",
        "prerelease",
        "experimental",
        "capabilities",
        "spec.min",
        "spec.max",
        "discovery",
    }
)

KNOWN_PARAMETERS: dict[str, frozenset[str]] = {
    "search": _COMMON_PARAMETERS | {"all", "package", "type", "category", "internal"},
    "categories": _COMMON_PARAMETERS | {"include_policy_templates"},
}
"""Parameters each endpoint understands (spec §3.2); everything else is "unknown"."""

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


# --- query ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiscoveryFilter:
    """One ``discovery`` parameter: ``fields:a,b`` (all package fields in the set) or
    ``datasets:a,b`` (at least one package dataset in the set). Exactly one is set."""

    fields: frozenset[str] | None = None
    datasets: frozenset[str] | None = None

    def matches(self, pkg: Package) -> bool:
        if self.fields is not None:
            if not pkg.discovery_fields:
                return False
            if not all(f in self.fields for f in pkg.discovery_fields):
                return False
        if self.datasets is not None:
            if not pkg.discovery_datasets:
                return False
            if not any(d in self.datasets for d in pkg.discovery_datasets):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Query:
    """A validated /search or /categories query (spec §3).

    Parameters unknown to ``endpoint`` are never set (``/categories`` has no ``all``,
    ``package``, ``type`` or ``category``); ``include_policy_templates`` only means something
    on ``/categories``.
    """

    endpoint: Endpoint = "search"
    kibana_version: Version | None = None
    agent_version: Version | None = None
    prerelease: bool = False
    experimental: bool = False
    all: bool = False
    package: str = ""
    type: str = ""
    category: str = ""
    capabilities: tuple[str, ...] | None = None
    spec_min: Version | None = None
    spec_max: Version | None = None
    discovery: tuple[DiscoveryFilter, ...] = ()
    include_policy_templates: bool = False


def go_quote(text: str) -> str:
    """``text`` quoted like Go's ``%q`` / ``strconv.Quote`` (used in the §3.3 messages)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch in _GO_SHORT_ESCAPES:
            out.append(_GO_SHORT_ESCAPES[ch])
        elif ch.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _unescape(text: str) -> str:
    """Go ``url.QueryUnescape``: ``%XX`` escapes and ``+`` for space; bad escapes are errors."""
    if "%" not in text and text.isascii():
        return text.replace("+", " ")
    bad = _BAD_ESCAPE.search(text)
    if bad is not None:
        escape = text[bad.start() : bad.start() + 3]
        raise QueryError(
            f"invalid query string: invalid URL escape {go_quote(escape)}"
            " (a '%' must be followed by two hexadecimal digits)"
        )
    # Go works on bytes: decode escapes to bytes, then read them as UTF-8 (invalid -> U+FFFD).
    # A surrogateescape-decoded request line gives its raw bytes back; other lone surrogates
    # become U+FFFD too.
    spaced = text.replace("+", " ")
    try:
        encoded = spaced.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        encoded = spaced.encode("utf-8", errors="surrogatepass")
    return unquote_to_bytes(encoded).decode("utf-8", errors="replace")


def parse_pairs(raw_query: str) -> dict[str, list[str]]:
    """Split a raw query string like Go's ``url.ParseQuery``: pairs separated by ``&``, pairs
    containing ``;`` dropped, keys and values percent-decoded, values kept in order.

    Raises :class:`QueryError` for a query longer than :data:`MAX_QUERY_LENGTH`, with more
    than :data:`MAX_QUERY_PARAMETERS` pairs, or with a malformed ``%`` escape.
    """
    if len(raw_query) > MAX_QUERY_LENGTH:
        raise QueryError(
            f"query string too long: {len(raw_query)} characters, the limit is {MAX_QUERY_LENGTH}"
        )
    params: dict[str, list[str]] = {}
    if not raw_query:
        return params
    segments = [s for s in raw_query.split("&") if s]
    if len(segments) > MAX_QUERY_PARAMETERS:
        raise QueryError(
            f"too many query parameters: {len(segments)}, the limit is {MAX_QUERY_PARAMETERS}"
        )
    for segment in segments:
        if ";" in segment:
            continue
        raw_key, _, raw_value = segment.partition("=")
        key = _unescape(raw_key)
        value = _unescape(raw_value)
        params.setdefault(key, []).append(value)
    return params


def _parse_bool(name: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise QueryError(f"invalid '{name}' query param: '{value}'")


def _parse_version(label: str, value: str) -> Version:
    try:
        return Version.parse_lenient(value)
    except VersionError as exc:
        raise QueryError(f"invalid {label} version '{value}': {exc.message}") from None


def _parse_spec(name: str, value: str) -> Version:
    if len(value.split(".")) != 2:
        raise QueryError(
            f"invalid '{name}' version: invalid version '{value}': it should be <major.version>"
        )
    try:
        return Version.parse_lenient(value)
    except VersionError as exc:
        raise QueryError(
            f"invalid '{name}' version: invalid spec version '{value}': {exc.message}"
        ) from None


def _parse_discovery(value: str) -> DiscoveryFilter:
    kind, found, args = value.partition(":")
    if not found:
        raise QueryError(
            f"invalid 'discovery' query param: '{value}': could not parse filter {go_quote(value)}"
        )
    items = frozenset(args.split(","))
    if kind == "fields":
        return DiscoveryFilter(fields=items)
    if kind == "datasets":
        return DiscoveryFilter(datasets=items)
    raise QueryError(
        f"invalid 'discovery' query param: '{value}': unknown discovery filter {go_quote(kind)}"
    )


def parse_query(raw_query: str, endpoint: Endpoint, *, allow_unknown: bool = True) -> Query:
    """Parse and validate the raw query string of ``/search`` or ``/categories`` (spec §3).

    Only the first occurrence of a parameter counts (``discovery``: every occurrence); an
    empty value means "not set" (``discovery``: an error). Parameters are validated in the
    order they first appear, ``include_policy_templates`` last. Unknown parameters are
    ignored unless ``allow_unknown`` is false. Raises :class:`QueryError` with the §3.3 text.
    """
    known = KNOWN_PARAMETERS[endpoint]
    params = parse_pairs(raw_query)
    kibana: Version | None = None
    agent: Version | None = None
    flags = {"prerelease": False, "experimental": False, "all": False}
    texts = {"package": "", "type": "", "category": ""}
    capabilities: tuple[str, ...] | None = None
    spec_min: Version | None = None
    spec_max: Version | None = None
    discovery: tuple[DiscoveryFilter, ...] = ()
    for name, values in params.items():
        if name not in known:
            if not allow_unknown:
                raise QueryError(f"unknown query parameter: {go_quote(name)}")
            continue
        if name == "discovery":
            discovery = tuple(_parse_discovery(v) for v in values)
            continue
        value = values[0]
        if not value or name == "include_policy_templates":
            continue
        if name == "kibana.version":
            kibana = _parse_version("Kibana", value)
        elif name == "agent.version":
            agent = _parse_version("agent", value)
        elif name in flags:
            flags[name] = _parse_bool(name, value)
        elif name == "capabilities":
            capabilities = tuple(value.split(","))
        elif name == "spec.min":
            spec_min = _parse_spec(name, value)
        elif name == "spec.max":
            spec_max = _parse_spec(name, value)
        elif name in texts:
            texts[name] = value
        # "internal": accepted and ignored (a removed feature, spec §3.2)
    include_templates = False
    if "include_policy_templates" in known:
        value = params.get("include_policy_templates", [""])[0]
        if value:
            include_templates = _parse_bool("include_policy_templates", value)
    return Query(
        endpoint=endpoint,
        kibana_version=kibana,
        agent_version=agent,
        prerelease=flags["prerelease"],
        experimental=flags["experimental"],
        all=flags["all"],
        package=texts["package"],
        type=texts["type"],
        category=texts["category"],
        capabilities=capabilities,
        spec_min=spec_min,
        spec_max=spec_max,
        discovery=discovery,
        include_policy_templates=include_templates,
    )


# --- filtering -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    """One selected package and the search entry to show for it.

    ``entry`` is the package's own ``search_entry`` unless the category filter reduced its
    policy templates (``reduced``), in which case it is a new dict (the package is untouched).
    The package's own entry is only looked up when asked for (it may be decoded from bytes:
    the index renders unreduced hits from its cached fragments instead).
    """

    package: Package
    reduced_entry: JSONObject | None = None

    @property
    def entry(self) -> JSONObject:
        reduced = self.reduced_entry
        return self.package.search_entry if reduced is None else reduced

    @property
    def reduced(self) -> bool:
        return self.reduced_entry is not None


def has_category(categories: Iterable[str], category: str) -> bool:
    """§4.4 ``has``: ``category`` is listed, or it is a top-level category and one of its
    sub-categories is listed."""
    listed = tuple(categories)
    if category in listed:
        return True
    subs = SUBCATEGORIES.get(category)
    return subs is not None and any(c in subs for c in listed)


def _canonical(version: Version | None) -> str:
    """A version printed like Go's ``%s`` of a ``*semver.Version`` (``<nil>`` for none)."""
    return "<nil>" if version is None else version.canonical()


def _spec_ok(pkg: Package, query: Query) -> bool:
    spec = pkg.spec_version
    if spec is None:
        raise PackageError(
            f"can't compare spec version for {pkg.name} "
            f"({_canonical(query.spec_min)}-{_canonical(query.spec_max)}): "
            "package spec version is not set"
        )
    mm = spec.major_minor
    if query.spec_min is not None and mm < query.spec_min:
        return False
    return not (query.spec_max is not None and query.spec_max < mm)


def _passes(pkg: Package, query: Query) -> bool:
    """The per-package tests of spec §4.1 (normal mode), in the reference's order."""
    if not query.prerelease and (pkg.release == "experimental" or pkg.version.is_prerelease):
        return False
    kv = query.kibana_version
    if kv is not None and pkg.kibana_version is not None and not pkg.kibana_version.check(kv):
        return False
    av = query.agent_version
    if av is not None and pkg.agent_version is not None and not pkg.agent_version.check(av):
        return False
    if query.package and query.package != pkg.name:
        return False
    if query.type and query.type != pkg.type:
        return False
    caps = query.capabilities
    pkg_caps = pkg.capabilities
    if caps is not None and pkg_caps is not None and any(c not in caps for c in pkg_caps):
        return False
    if query.discovery and not all(d.matches(pkg) for d in query.discovery):
        return False
    if query.spec_min is None and query.spec_max is None:
        return True
    return _spec_ok(pkg, query)


def _passes_legacy(pkg: Package, query: Query) -> bool:
    """The tests kept in legacy mode (spec §4.2): Kibana version, name, type (the version
    test only matters for exact lookups, done by :func:`lookup`)."""
    kv = query.kibana_version
    if kv is not None and pkg.kibana_version is not None and not pkg.kibana_version.check(kv):
        return False
    if query.package and query.package != pkg.name:
        return False
    return not (query.type and query.type != pkg.type)


def _legacy_prerelease(pkg: Package) -> bool:
    """The legacy notion of "prerelease": a prerelease tag or major version 0."""
    return pkg.version.is_prerelease or pkg.version.major < 1


def _filter_source(source: Sequence[Package], query: Query) -> list[Package]:
    """Filter one source and select the latest version per name (unless ``all``)."""
    if query.experimental:
        return _filter_source_legacy(source, query)
    if query.all:
        return [p for p in source if _passes(p, query)]
    latest: dict[str, Package] = {}
    for pkg in source:
        if not _passes(pkg, query):
            continue
        current = latest.get(pkg.name)
        if current is None or current.version < pkg.version:
            latest[pkg.name] = pkg
    return list(latest.values())


def _filter_source_legacy(source: Sequence[Package], query: Query) -> list[Package]:
    survivors = [p for p in source if _passes_legacy(p, query)]
    if query.all:
        stable_names = {p.name for p in survivors if not _legacy_prerelease(p)}
        return [p for p in survivors if p.name not in stable_names or not _legacy_prerelease(p)]
    latest: dict[str, Package] = {}
    for pkg in survivors:
        current = latest.get(pkg.name)
        if current is None:
            latest[pkg.name] = pkg
            continue
        cur_pre = _legacy_prerelease(current)
        new_pre = _legacy_prerelease(pkg)
        if cur_pre == new_pre:
            if current.version < pkg.version:
                latest[pkg.name] = pkg
        elif cur_pre:  # a non-prerelease beats a prerelease
            latest[pkg.name] = pkg
    return list(latest.values())


def _reduce_templates(pkg: Package, category: str) -> JSONObject:
    """A copy of the search entry keeping only policy templates listing ``category`` exactly."""
    entry = dict(pkg.search_entry)
    templates = entry.get("policy_templates") or []
    refs = pkg.policy_templates
    if len(refs) == len(templates):
        kept = [t for t, ref in zip(templates, refs, strict=True) if category in ref.categories]
    else:  # the entry and the filter attributes disagree: trust the entry's own lists
        kept = [t for t in templates if category in (t.get("categories") or ())]
    if kept:
        entry["policy_templates"] = kept
    else:
        entry.pop("policy_templates", None)
    return entry


def _category_filter(packages: Sequence[Package], category: str) -> list[Hit]:
    if not category:
        return [Hit(p) for p in packages]
    hits: list[Hit] = []
    for pkg in packages:
        if has_category(pkg.categories, category):
            hits.append(Hit(pkg))
        elif any(has_category(t.categories, category) for t in pkg.policy_templates):
            hits.append(Hit(pkg, _reduce_templates(pkg, category)))
    return hits


def _merge(per_source: Iterable[list[Hit]], all_versions: bool) -> list[Hit]:
    """Join per-source results (earlier source wins on equal name+version, §4.3), keep the
    newest version per name unless ``all_versions``, and sort by name then version (§4.5)."""
    seen: set[tuple[str, str]] = set()
    joined: list[Hit] = []
    for hits in per_source:
        for hit in hits:
            key = hit.package.key
            if key in seen:
                continue
            seen.add(key)
            joined.append(hit)
    if not all_versions:
        newest: dict[str, Hit] = {}
        for hit in joined:
            current = newest.get(hit.package.name)
            if current is None or current.package.version < hit.package.version:
                newest[hit.package.name] = hit
        joined = list(newest.values())
    joined.sort(key=lambda h: (h.package.name, h.package.version.sort_key))
    return joined


def select(sources: Sequence[Sequence[Package]], query: Query) -> list[Hit]:
    """The packages a /search (or /categories) request returns, in answer order."""
    category = query.category if query.endpoint == "search" else ""
    per_source = (_category_filter(_filter_source(src, query), category) for src in sources)
    return _merge(per_source, query.all)


def search(sources: Sequence[Sequence[Package]], query: Query) -> list[JSONObject]:
    """The /search answer: search entries of the selected packages (spec §4)."""
    return [hit.entry for hit in select(sources, query)]


def count_categories(packages: Iterable[Package], include_policy_templates: bool) -> dict[str, int]:
    """Category counts over ``packages`` (spec §5.2)."""
    counts: dict[str, int] = {}
    for pkg in packages:
        for c in pkg.categories:
            counts[c] = counts.get(c, 0) + 1
        if not include_policy_templates:
            continue
        extra: list[str] = []
        templates = pkg.policy_templates
        for template in templates:
            if not template.categories and len(templates) == 1:
                break
            for c in pkg.categories:
                counts[c] = counts.get(c, 0) + 1
            for c in template.categories:
                if c not in extra and not has_category(pkg.categories, c):
                    extra.append(c)
                    counts[c] = counts.get(c, 0) + 1
                counts[c] = counts.get(c, 0) + 1
    return counts


def category_objects(counts: dict[str, int]) -> list[JSONObject]:
    """The /categories output objects for ``counts``, sorted by id (spec §5.3)."""
    result: list[JSONObject] = []
    for cid in sorted(counts):
        known = CATEGORIES.get(cid)
        obj: JSONObject = {"id": cid, "title": known.title if known else cid, "count": counts[cid]}
        if known is not None and known.parent_id:
            parent = CATEGORIES.get(known.parent_id)
            obj["parent_id"] = known.parent_id
            obj["parent_title"] = parent.title if parent else known.parent_id
        result.append(obj)
    return result


def categories(sources: Sequence[Sequence[Package]], query: Query) -> list[JSONObject]:
    """The /categories answer (spec §5): counts over the packages the filter selects."""
    packages = (hit.package for hit in select(sources, query))
    return category_objects(count_categories(packages, query.include_policy_templates))


def lookup(sources: Sequence[Sequence[Package]], name: str, version_str: str) -> Package | None:
    """Exact lookup by name and version string (spec §4.2): every release and prerelease;
    the earliest source holding that name+version wins (within a source, the first one)."""
    for source in sources:
        for pkg in source:
            if pkg.name == name and str(pkg.version) == version_str:
                return pkg
    return None
