"""Size and shape limits for packages: one frozen dataclass, safe defaults, one place to set them.

Every way a package comes in (publish, import, import-git, ``serve --config`` folder and zip
sources) is checked against the same :class:`Limits` by the archive-safety gate
(:mod:`package_storage.packages.safety`) and by the YAML reader
(:mod:`package_storage.packages.yamlutil`). The limits are checked while reading (declared zip
sizes before anything is decompressed, actual sizes while streaming with a bounded buffer, folder
file sizes from ``stat`` before anything is read), never after a whole file has been expanded.

Configuration: environment variables ``PACKAGE_STORAGE_MAX_<FIELD>`` (upper-case field name,
e.g. ``PACKAGE_STORAGE_MAX_FILE_BYTES=536870912``), read once per process by :func:`active`;
the command line's ``--limit FIELD=VALUE`` option sets the same variables, so worker processes
see them too. ``docs/safety.md`` lists the fields, defaults and why they were chosen.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from package_storage.errors import ConfigError

__all__ = ["ENV_PREFIX", "Limits", "active", "field_names", "parse_assignment", "set_active"]

ENV_PREFIX = "PACKAGE_STORAGE_MAX_"

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True)
class Limits:
    """What one package may hold. The defaults are far above any real integration package
    (the largest, ``security_detection_engine``, is a few tens of MB zipped with tens of
    thousands of small JSON files) and far below what would hurt a server."""

    artifact_bytes: int = 256 * MiB
    """Largest package zip (compressed bytes, the file as uploaded)."""
    total_bytes: int = 1 * GiB
    """Largest sum of the uncompressed sizes of every file of a package."""
    file_bytes: int = 256 * MiB
    """Largest uncompressed size of one file of a package."""
    entries: int = 50_000
    """Most entries (files and directories) in one package."""
    ratio: int = 200
    """Largest compression ratio (uncompressed / compressed) of one zip entry; only checked for
    entries larger than :attr:`ratio_min_bytes` (tiny files compress oddly and harm nobody)."""
    ratio_min_bytes: int = 1 * MiB
    """Entries up to this uncompressed size are exempt from the ratio limit."""
    manifest_bytes: int = 1 * MiB
    """Largest ``manifest.yml`` (real ones are a few KB)."""
    yaml_bytes: int = 4 * MiB
    """Largest other YAML file read from a package."""
    yaml_depth: int = 64
    """Deepest nesting of mappings and sequences in one YAML document."""
    yaml_nodes: int = 200_000
    """Most values a YAML document may expand to, aliases expanded (stops alias bombs)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        """The defaults, with every ``PACKAGE_STORAGE_MAX_<FIELD>`` of ``env`` applied."""
        values: dict[str, int] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _positive(ENV_PREFIX + f.name.upper(), raw)
        return cls(**values)

    def replace(self, **changes: int) -> Limits:
        return dataclasses.replace(self, **changes)


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Limits))


def parse_assignment(text: str) -> tuple[str, int]:
    """``FIELD=VALUE`` (``file_bytes=1048576``) -> (environment variable, value); ConfigError
    for an unknown field or a value that is not a positive integer."""
    name, sep, raw = text.partition("=")
    name = name.strip().lower().replace("-", "_")
    if not sep or name not in field_names():
        raise ConfigError(
            f"--limit {text!r}: expected FIELD=VALUE with FIELD one of {', '.join(field_names())}"
        )
    var = ENV_PREFIX + name.upper()
    return var, _positive(f"--limit {name}", raw)


def _positive(what: str, raw: str) -> int:
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise ConfigError(f"{what}={raw!r}: not an integer") from None
    if value <= 0:
        raise ConfigError(f"{what}={raw!r}: must be greater than 0")
    return value


_active: Limits | None = None


def active() -> Limits:
    """The limits of this process: the environment's, read on first use (see the module
    docstring), unless :func:`set_active` chose others."""
    global _active
    if _active is None:
        _active = Limits.from_env(os.environ)
    return _active


def set_active(limits: Limits | None) -> None:
    """Use ``limits`` in this process from now on (None: read the environment again)."""
    global _active
    _active = limits
