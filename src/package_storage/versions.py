"""Semantic versions and constraints with Masterminds semver v3 semantics (spec §5.6).

Placeholder API; the implementation is being written.
"""

from __future__ import annotations


class Version:
    """A parsed version. Ordering follows semver precedence; build metadata is ignored."""

    is_prerelease: bool


class Constraint:
    """A parsed constraint such as ``^8.12.0 || ~7.17.0``."""
