"""Package files as the package-spec's validator reads them: YAML or JSON turned into JSON values.

Before format_version 3.0.0 the spec expands dotted keys (``a.b: 1`` is ``a: {b: 1}``); from 3.0.0
on it takes keys as written, so a dotted key where the schema has no such property is refused.
"""

from __future__ import annotations

import datetime
from typing import Any

from package_storage.errors import PackageError
from package_storage.packages.validation.core import _Package
from package_storage.packages.versions import Version
from package_storage.packages.yamlutil import load_yaml

DOTTED_KEYS_REFUSED_SINCE = Version.parse_strict("3.0.0")
"""From format_version 3.0.0 on the spec validates YAML keys as written (``a.b:`` is one key)."""

UNREADABLE: Any = object()
"""What :func:`raw_document` returns for a file that is absent or does not parse."""


def raw_document(pkg: _Package, path: str, fv: Version) -> Any:
    """The YAML/JSON file at ``path`` as the spec's validator sees it (JSON values; dotted keys
    expanded only before format_version 3.0.0); ``UNREADABLE`` when it does not parse."""
    data = pkg.read(path)
    if data is None:
        return UNREADABLE
    try:
        value = load_yaml(data, path=path)
    except PackageError:
        return UNREADABLE
    value = _jsonish(value)
    if fv < DOTTED_KEYS_REFUSED_SINCE:
        value = _expand(value)
    return value


def _jsonish(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            str(k) if not isinstance(k, bool) else str(k).lower(): _jsonish(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_jsonish(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def _expand(value: Any) -> Any:
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        item = _expand(item)
        parts = key.split(".")
        target = out
        for part in parts[:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                target[part] = nxt
            target = nxt
        last = parts[-1]
        if isinstance(target.get(last), dict) and isinstance(item, dict):
            target[last].update(item)
        else:
            target[last] = item
    return out
