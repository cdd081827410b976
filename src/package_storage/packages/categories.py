"""The embedded category table and ingestion-method table (spec §5.4, §5.5).

Both are data files shipped inside the package (``data/*.yml``), read once at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    title: str
    parent_id: str | None


def _load_yaml(name: str) -> Any:
    text = resources.files("package_storage").joinpath("data", name).read_text("utf-8")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # (C: faster)


def _load_categories() -> dict[str, Category]:
    raw: dict[str, dict[str, str]] = _load_yaml("categories.yml")
    return {
        cid: Category(id=cid, title=str(v["title"]), parent_id=v.get("parent"))
        for cid, v in raw.items()
    }


def _load_ingestion_methods() -> dict[str, str]:
    raw: dict[str, list[str]] = _load_yaml("ingestion_methods.yml")
    return {inp: method for method, inputs in raw.items() for inp in inputs}


CATEGORIES: dict[str, Category] = _load_categories()
"""Every known category by id."""

SUBCATEGORIES: dict[str, frozenset[str]] = {
    parent: frozenset(c.id for c in CATEGORIES.values() if c.parent_id == parent)
    for parent in {c.parent_id for c in CATEGORIES.values() if c.parent_id}
}
"""Top-level category id -> ids of its sub-categories."""

_INGESTION_METHODS = _load_ingestion_methods()


def is_known(category_id: str) -> bool:
    return category_id in CATEGORIES


def ingestion_method(input_type: str) -> str | None:
    """The ingestion method shown for an input type, or None when the table has none."""
    return _INGESTION_METHODS.get(input_type)
