"""YAML reading for package files: YAML 1.1 semantics, size/depth/alias limits, dotted keys as paths.

Pure: takes bytes, returns plain Python values.
"""

from __future__ import annotations

from typing import Any

import yaml

from package_storage.errors import PackageError, UnsafePackageError
from package_storage.packages.limits import Limits, active

try:  # the C loader is ~10x faster; fall back to the pure-Python one where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the PyYAML build
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_YAML_BYTES = Limits().yaml_bytes
"""Default largest YAML file accepted (the limit in force is :func:`limits.active`'s)."""

MAX_YAML_NODES = Limits().yaml_nodes
"""Default most values a document may expand to (alias bombs expand exponentially)."""


def load_yaml(data: bytes, *, path: str, limits: Limits | None = None) -> Any:
    """Parse one YAML document; ``path`` names the file in error messages.

    Bounded before anything is built: the file size (``manifest_bytes`` for a
    ``manifest.yml``, ``yaml_bytes`` otherwise), then, on the composed node graph, the nesting
    depth (``yaml_depth``) and the number of values with aliases expanded (``yaml_nodes``).
    Refusals are :class:`UnsafePackageError` with a ``limit-yaml-*`` rule code.
    """
    lim = limits or active()
    is_manifest = path.rpartition("/")[2] == "manifest.yml"
    max_bytes = lim.manifest_bytes if is_manifest else lim.yaml_bytes
    if len(data) > max_bytes:
        rule = "limit-manifest-size" if is_manifest else "limit-yaml-size"
        raise UnsafePackageError(
            f"YAML file is {len(data)} bytes, more than the limit of {max_bytes}",
            path=path,
            rule=rule,
        )
    loader = _Loader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_shape(node, path, lim)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        text = _one_line(str(exc))
        if "maximum nesting depth" in text:
            raise UnsafePackageError(
                f"YAML nests deeper than {lim.yaml_depth} levels",
                path=path,
                rule="limit-yaml-depth",
            ) from None
        raise PackageError(f"invalid YAML: {text}", path=path) from None
    finally:
        loader.dispose()


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


def _check_shape(root: yaml.Node, path: str, lim: Limits) -> None:
    """Depth and expanded size of the node graph, walked without recursion; an alias is a
    node met again, so the walk counts what construction would expand (and stops early)."""
    seen: set[int] = set()
    aliases = False
    count = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > lim.yaml_nodes:
            what = "expands through aliases" if aliases else "holds"
            raise UnsafePackageError(
                f"YAML document {what} more than {lim.yaml_nodes} values",
                path=path,
                rule="limit-yaml-aliases" if aliases else "limit-yaml-nodes",
            )
        if isinstance(node, yaml.ScalarNode):
            continue
        if id(node) in seen:
            aliases = True
        else:
            seen.add(id(node))
        if depth > lim.yaml_depth:
            raise UnsafePackageError(
                f"YAML nests deeper than {lim.yaml_depth} levels",
                path=path,
                rule="limit-yaml-depth",
            )
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def _one_line(text: str) -> str:
    return " ".join(text.split())
