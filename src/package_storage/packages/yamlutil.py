"""YAML reading for package files: YAML 1.1 semantics, size limits, dotted keys as paths.

Pure: takes bytes, returns plain Python values.
"""

from __future__ import annotations

from typing import Any

import yaml

from package_storage.errors import PackageError

try:  # the C loader is ~10x faster; fall back to the pure-Python one where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the PyYAML build
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_YAML_BYTES = 4 * 1024 * 1024
"""Largest YAML file accepted (a manifest is a few KB; this stops YAML bombs and mistakes)."""

MAX_YAML_NODES = 200_000
"""Largest number of values a document may expand to (alias bombs expand exponentially)."""


def load_yaml(data: bytes, *, path: str) -> Any:
    """Parse one YAML document; ``path`` names the file in error messages."""
    if len(data) > MAX_YAML_BYTES:
        raise PackageError(
            f"YAML file is {len(data)} bytes, more than the limit of {MAX_YAML_BYTES}", path=path
        )
    try:
        value = yaml.load(data, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise PackageError(f"invalid YAML: {_one_line(str(exc))}", path=path) from None
    _check_size(value, path)
    return value


def expand_dotted(value: Any) -> Any:
    """Turn dotted keys into nested maps at every depth and merge them with nested spellings.

    ``{"owner.github": "x", "owner": {"type": "y"}}`` -> ``{"owner": {"github": "x", "type": "y"}}``.
    Lists are walked; scalars are returned as they are.
    """
    if isinstance(value, list):
        return [expand_dotted(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        item = expand_dotted(item)
        if isinstance(key, str) and "." in key:
            parts = key.split(".")
            target = out
            for part in parts[:-1]:
                nxt = target.get(part)
                if not isinstance(nxt, dict):
                    nxt = {}
                    target[part] = nxt
                target = nxt
            _merge_into(target, parts[-1], item)
        else:
            _merge_into(out, key, item)
    return out


def _merge_into(target: dict[Any, Any], key: Any, item: Any) -> None:
    existing = target.get(key)
    if isinstance(existing, dict) and isinstance(item, dict):
        for k, v in item.items():
            _merge_into(existing, k, v)
    else:
        target[key] = item


def _check_size(value: Any, path: str) -> None:
    seen = 0
    stack = [value]
    while stack:
        item = stack.pop()
        seen += 1
        if seen > MAX_YAML_NODES:
            raise PackageError(
                f"YAML document expands to more than {MAX_YAML_NODES} values", path=path
            )
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _one_line(text: str) -> str:
    return " ".join(text.split())
