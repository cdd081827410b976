"""The package-spec versions a package may name as ``format_version``.

The spec's validator accepts a format_version only when it equals, prerelease ignored, one of the
versions its changelog lists; a GA package (from format_version 3.0.1 on) must not use a spec
version that is itself unreleased (``-next``).
"""

from __future__ import annotations

from typing import Any

from package_storage.errors import VersionError
from package_storage.packages.validation.core import MANIFEST, Problem
from package_storage.packages.versions import Version

SPEC_VERSIONS = [
    "3.7.0-next",
    "3.6.6",
    "3.6.5",
    "3.6.4",
    "3.6.3",
    "3.6.2",
    "3.6.1",
    "3.6.0",
    "3.5.8",
    "3.5.7",
    "3.5.6",
    "3.5.5",
    "3.5.4",
    "3.5.3",
    "3.5.2",
    "3.5.1",
    "3.5.0",
    "3.4.2",
    "3.4.1",
    "3.4.0",
    "3.3.5",
    "3.3.4",
    "3.3.3",
    "3.3.2",
    "3.3.1",
    "3.3.0",
    "3.2.3",
    "3.2.2",
    "3.2.1",
    "3.2.0",
    "3.1.5",
    "3.1.4",
    "3.1.3",
    "3.1.2",
    "3.1.1",
    "3.1.0",
    "3.0.4",
    "3.0.3",
    "3.0.2",
    "3.0.1",
    "3.0.0",
    "2.13.0",
    "2.12.0",
    "2.11.0",
    "2.10.0",
    "2.9.0",
    "2.8.1",
    "2.8.0",
    "2.7.0",
    "2.6.0",
    "2.5.1",
    "2.5.0",
    "2.4.0",
    "2.3.0",
    "2.2.0",
    "2.1.0",
    "2.0.0",
    "2.0.0-rc2",
    "2.0.0-rc1",
    "1.18.0",
    "1.17.0",
    "1.16.0",
    "1.15.0",
    "1.14.0",
    "1.13.0",
    "1.12.1",
    "1.12.0",
    "1.11.0",
    "1.10.0",
    "1.9.0",
    "1.8.1",
    "1.8.0",
    "1.7.0",
    "1.6.0",
    "1.5.0",
    "1.4.1",
    "1.4.0",
    "1.3.0",
    "1.2.0",
    "1.1.0",
    "1.0.0",
    "1.0.0-alpha1",
]
"""Every version in the package-spec's changelog (newest first), as of spec 3.7.0-next."""


def _release(text: str) -> str:
    v = Version.parse_strict(text)
    return f"{v.major}.{v.minor}.{v.patch}"


_RELEASE_OF = {_release(v): v for v in reversed(SPEC_VERSIONS)}
GA_CHECK_SINCE = Version.parse_strict("3.0.1")


def spec_version_for(format_version: str) -> str | None:
    """The spec version implementing ``format_version``, or None when the spec has none."""
    try:
        version = Version.parse_strict(format_version)
    except VersionError:
        return None
    if version.prerelease:
        return None
    return _RELEASE_OF.get(f"{version.major}.{version.minor}.{version.patch}")


def format_version_problem(manifest: dict[str, Any]) -> Problem | None:
    """Why the manifest's format_version cannot be validated, or None."""
    raw = manifest.get("format_version")
    text = "" if raw is None or isinstance(raw, (dict, list)) else str(raw)
    if not text:
        return Problem(
            MANIFEST,
            "format-version-missing",
            "could not read specification version: no format_version set",
        )
    spec = spec_version_for(text)
    if spec is None:
        newest = SPEC_VERSIONS[0]
        return Problem(
            MANIFEST,
            "format-version-unknown",
            f"could not load specification for version [{text}]: spec version not found "
            f"(known: 1.0.0 up to {newest})",
        )
    version = Version.parse_strict(text)
    package_version = manifest.get("version")
    if "-" in spec and version >= GA_CHECK_SINCE and package_version is not None:
        try:
            pv = Version.parse_strict(str(package_version))
        except VersionError:
            return None
        if not pv.prerelease and pv.major >= 1:
            return Problem(
                MANIFEST,
                "format-version-unreleased",
                f"package with GA version ({pv}) is using an unreleased version of the spec "
                f"({spec}) (PSR00001)",
            )
    return None
