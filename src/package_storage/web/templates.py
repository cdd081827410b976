"""The Jinja2 environment of the web UI: templates in ``web/templates/``, autoescape on for
every template (each value is HTML-escaped unless a page marks it safe, which only the
sanitized README is), undefined names an error, and the small formatting filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined


def format_time(value: datetime | None) -> str:
    """``2026-12-01 10:43:05 UTC``."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_size(value: int | None) -> str:
    """``532 B``, ``12.4 KiB``, ``3.1 MiB``."""
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"  # pragma: no cover


def short_digest(value: str | None) -> str:
    """The first 12 hex digits of a sha256 (the full one is in the element's title)."""
    return (value or "")[:12]


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("package_storage.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = format_time
    env.filters["size"] = format_size
    env.filters["short"] = short_digest
    return env


def render(env: Environment, template: str, values: dict[str, Any]) -> str:
    return env.get_template(template).render(values)


__all__ = ["environment", "format_size", "format_time", "render", "short_digest"]
